// The audio graph: decode worker -> MessagePort -> jitter-buffer worklet -> analyser -> gain ->
// speakers, created once from a user gesture (browsers refuse to start audio otherwise).
import { log, ui } from './dom.js';
import { renderStatsThrottled } from './now-playing.js';
import { draw } from './spectrogram.js';
import { state, TARGET_MS } from './state.js';

/** The audio graph, created on the first call and resumed on the next ones. */
export async function ensureAudio() {
  if (state.audio) {
    if (state.audio.ctx.state !== 'running') await state.audio.ctx.resume();
    return state.audio;
  }
  state.audioStarting ??= createAudio();
  return state.audioStarting;
}

async function createAudio() {
  const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  const resumed = ctx.resume();
  // The decoder worker lives as long as the page; it compiles its WASM while the first connection opens.
  const worker = new Worker('/decode-worker.js');
  worker.onmessage = (e) => {
    const d = e.data;
    if (d?.type === 'decoded') state.decoder = d;
    else if (d?.type === 'error') log(`Decoder: ${d.message}`, 'error');
  };
  worker.onerror = (e) => log(`Decoder failed: ${e.message}`, 'error');
  state.worker = worker;
  await ctx.audioWorklet.addModule('/jitter-processor.js');
  const node = new AudioWorkletNode(ctx, 'riverrun-jitter', {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [2],
    processorOptions: { targetMs: TARGET_MS },
  });
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  analyser.smoothingTimeConstant = 0.5;
  analyser.minDecibels = -100;
  analyser.maxDecibels = -20;
  const gain = ctx.createGain();
  gain.gain.value = Number(ui.volume.value);
  node.connect(analyser).connect(gain).connect(ctx.destination);
  node.port.onmessage = (e) => {
    if (e.data?.type === 'stats') onStats(e.data);
  };
  await resumed;
  state.audio = { ctx, node, analyser, gain, freq: new Uint8Array(analyser.frequencyBinCount), time: new Float32Array(analyser.fftSize) };
  if (ctx.sampleRate !== 48000) log(`The browser runs audio at ${ctx.sampleRate} Hz instead of 48000 Hz.`, 'warn');
  requestAnimationFrame(draw);
  return state.audio;
}

function onStats(s) {
  s.receivedAt = performance.now();
  state.stats = s;
  if (s.state === 'playing' && state.timeline.firstAudioAt !== null) state.timeline.playingAt ??= s.receivedAt;
  state.statsHistory.push(s);
  if (state.statsHistory.length > 600) state.statsHistory.shift();
  const c = state.change;
  if (c && c.heardAfterMs === null && c.appliedControl !== null && s.playingControl >= c.appliedControl) {
    c.heardAfterMs = s.receivedAt - c.at;
  }
  renderStatsThrottled();
}

/** RMS of the analyser's current window (after the worklet). */
export function analyserRms() {
  const a = state.audio;
  if (!a) return 0;
  a.analyser.getFloatTimeDomainData(a.time);
  let s = 0;
  for (const v of a.time) s += v * v;
  return Math.sqrt(s / a.time.length);
}
