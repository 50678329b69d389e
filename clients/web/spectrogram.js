// The live spectrogram: one column per animation frame, log frequency axis (30 Hz at the bottom to
// 16 kHz), drawn from the AnalyserNode after the jitter buffer.
import { ui } from './dom.js';
import { state } from './state.js';

const palette = (() => {
  const p = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    p[i * 3] = 255 * Math.min(1, Math.max(0, 1.6 * t - 0.3));
    p[i * 3 + 1] = 255 * Math.min(1, Math.max(0, 1.8 * t * t));
    p[i * 3 + 2] = 255 * Math.min(1, Math.max(0, 0.25 + t * 1.4 - 1.5 * t * t));
  }
  return p;
})();
let binForRow = null;
let column = null;
const ctx2d = ui.canvas.getContext('2d', { alpha: false });

export function draw() {
  requestAnimationFrame(draw);
  const a = state.audio;
  if (!a) return;
  const c = ui.canvas;
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
    ctx2d.fillStyle = '#000';
    ctx2d.fillRect(0, 0, w, h);
    binForRow = null;
  }
  if (!binForRow) {
    const nyquist = a.ctx.sampleRate / 2;
    const bins = a.analyser.frequencyBinCount;
    binForRow = new Uint16Array(h);
    for (let y = 0; y < h; y++) {
      const f = 30 * (16000 / 30) ** (1 - y / (h - 1 || 1));
      binForRow[y] = Math.min(bins - 1, Math.round((f / nyquist) * bins));
    }
    column = ctx2d.createImageData(2, h);
  }
  a.analyser.getByteFrequencyData(a.freq);
  ctx2d.drawImage(c, -2, 0);
  const d = column.data;
  for (let y = 0; y < h; y++) {
    const v = a.freq[binForRow[y]];
    for (let x = 0; x < 2; x++) {
      const o = (y * 2 + x) * 4;
      d[o] = palette[v * 3];
      d[o + 1] = palette[v * 3 + 1];
      d[o + 2] = palette[v * 3 + 2];
      d[o + 3] = 255;
    }
  }
  ctx2d.putImageData(column, w - 2, 0);
}
