import { describe, expect, it } from 'vitest';
import type { ResamplerQuality } from '../src/stream/resampler.ts';
import { filterTableCacheBytes, Resampler, resample } from '../src/stream/resampler.ts';
import { Rng } from '../src/stream/rng.ts';

function sine(n: number, freq: number, rate: number, amp = 0.5, phase = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / rate + phase);
  return x;
}

/** SNR (dB) of y against the analytic tone at the output rate, skipping `skip` samples at each edge. */
function snrDb(y: Float32Array, freq: number, rate: number, amp: number, skip: number): number {
  let s = 0;
  let e = 0;
  for (let i = skip; i < y.length - skip; i++) {
    const r = amp * Math.sin((2 * Math.PI * freq * i) / rate);
    s += r * r;
    e += (y[i]! - r) ** 2;
  }
  return 10 * Math.log10(s / e);
}

/** Amplitude of the `freq` component of y (least-squares fit of sin + cos), away from the edges. */
function toneAmplitude(y: Float32Array, freq: number, rate: number, skip: number): number {
  let ss = 0,
    cc = 0,
    sc = 0,
    ys = 0,
    yc = 0;
  for (let i = skip; i < y.length - skip; i++) {
    const w = (2 * Math.PI * freq * i) / rate;
    const s = Math.sin(w);
    const c = Math.cos(w);
    ss += s * s;
    cc += c * c;
    sc += s * c;
    ys += y[i]! * s;
    yc += y[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (ys * cc - yc * sc) / det;
  const b = (yc * ss - ys * sc) / det;
  return Math.hypot(a, b);
}

function rms(y: Float32Array, skip: number): number {
  let s = 0;
  for (let i = skip; i < y.length - skip; i++) s += y[i]! ** 2;
  return Math.sqrt(s / (y.length - 2 * skip));
}

/** Uniform in [0, 1) from the project's seeded generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function runChunked(r: Resampler, x: Float32Array, sizes: () => number): Float32Array {
  const parts: Float32Array[] = [];
  let at = 0;
  while (at < x.length) {
    const n = Math.min(sizes(), x.length - at);
    parts.push(r.process(x.subarray(at, at + n)));
    at += n;
  }
  parts.push(r.flush());
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('Resampler', () => {
  it('32 kHz -> 48 kHz: a 1 kHz sine matches the analytic 48 kHz sine (SNR > 80 dB, no delay)', () => {
    for (const quality of ['low', 'medium', 'high'] as ResamplerQuality[]) {
      const x = sine(32000, 1000, 32000);
      const y = resample(x, 32000, 48000, { quality });
      expect(y.length).toBe(48000);
      const snr = snrDb(y, 1000, 48000, 0.5, 500);
      console.log(
        `32k->48k 1 kHz sine, quality ${quality}: SNR ${snr.toFixed(1)} dB (taps/phase ${new Resampler(32000, 48000, { quality }).tapsPerPhase})`,
      );
      expect(snr).toBeGreaterThan(80);
    }
    // Other rates used for audio prompts, at the default quality.
    for (const [inRate, outRate] of [
      [44100, 32000],
      [48000, 32000],
      [16000, 32000],
      [22050, 32000],
      [11025, 32000],
      [44056, 32000],
      [24000, 48000],
    ] as const) {
      const y = resample(sine(inRate, 1000, inRate), inRate, outRate);
      const snr = snrDb(y, 1000, outRate, 0.5, 500);
      console.log(`${inRate}->${outRate} 1 kHz sine: SNR ${snr.toFixed(1)} dB`);
      expect(snr).toBeGreaterThan(80);
    }
  });

  it('attenuates tones above the output Nyquist by > 60 dB when downsampling', () => {
    for (const [inRate, outRate, freq] of [
      [48000, 32000, 20000],
      [48000, 32000, 17000],
      [44100, 32000, 20000],
      [44100, 32000, 16500],
    ] as const) {
      const y = resample(sine(inRate, freq, inRate), inRate, outRate);
      const attenuation = -20 * Math.log10(rms(y, 500) / (0.5 / Math.SQRT2));
      console.log(`${inRate}->${outRate} ${freq} Hz tone: attenuated by ${attenuation.toFixed(1)} dB`);
      expect(attenuation).toBeGreaterThan(60);
    }
  });

  it('keeps the passband flat (10 kHz at 32k -> 48k within 0.1 dB)', () => {
    for (const [inRate, outRate, freq] of [
      [32000, 48000, 10000],
      [32000, 48000, 14000],
      [48000, 32000, 10000],
      [44100, 32000, 12000],
    ] as const) {
      const y = resample(sine(inRate, freq, inRate), inRate, outRate);
      const gainDb = 20 * Math.log10(toneAmplitude(y, freq, outRate, 500) / 0.5);
      console.log(`${inRate}->${outRate} ${freq} Hz tone: gain ${gainDb.toFixed(5)} dB`);
      expect(Math.abs(gainDb)).toBeLessThan(0.1);
    }
  });

  it('gives the same output, bit for bit, for any chunking', () => {
    const rand = rng(7);
    for (const [inRate, outRate] of [
      [32000, 48000],
      [44100, 32000],
      [48000, 32000],
      [16000, 32000],
      [11025, 32000],
    ] as const) {
      const x = new Float32Array(inRate / 2 + 37);
      for (let i = 0; i < x.length; i++) x[i] = rand() * 2 - 1;
      const oneShot = resample(x, inRate, outRate);
      const sizes = [() => 640, () => Math.floor(rand() * 3000), () => (rand() < 0.5 ? 0 : 1), () => Math.floor(rand() * 50)];
      for (const size of sizes) {
        const chunked = runChunked(new Resampler(inRate, outRate), x, size);
        expect(chunked.length).toBe(oneShot.length);
        expect(Buffer.from(chunked.buffer).equals(Buffer.from(oneShot.buffer))).toBe(true);
      }
    }
  });

  it('outputs ceil(input length x ratio) samples after flush, and can be reused after flush', () => {
    for (const [inRate, outRate] of [
      [32000, 48000],
      [48000, 32000],
      [44100, 32000],
      [22050, 32000],
      [16000, 32000],
      [11025, 32000],
    ] as const) {
      for (const n of [0, 1, 2, 3, 5, 100, 441, 1000, 32001]) {
        const r = new Resampler(inRate, outRate);
        const total = r.process(new Float32Array(n)).length + r.flush().length;
        const expected = Math.ceil((n * outRate) / inRate);
        expect(total).toBe(expected);
        expect(Math.abs(total - (n * outRate) / inRate)).toBeLessThanOrEqual(1);
      }
    }
    const r = new Resampler(32000, 48000);
    const x = sine(3200, 440, 32000);
    const a = runChunked(r, x, () => 333);
    const b = runChunked(r, x, () => 1000);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(r.delay).toBe(0);
  });

  it('holds back only about taps/2 input samples while streaming', () => {
    for (const [inRate, outRate] of [
      [32000, 48000],
      [48000, 32000],
      [44100, 32000],
      [11025, 32000],
    ] as const) {
      const r = new Resampler(inRate, outRate);
      let total = 0;
      let produced = 0;
      for (let i = 0; i < 300; i++) {
        const n = 1 + ((i * 37) % 200);
        produced += r.process(new Float32Array(n)).length;
        total += n;
        const held = Math.ceil((total * outRate) / inRate) - produced;
        expect(held).toBeLessThanOrEqual(r.latency);
        if (total >= r.tapsPerPhase) expect(held).toBeGreaterThanOrEqual(r.latency - 1);
      }
    }
    const r = new Resampler(32000, 48000);
    console.log(
      `32k->48k: ${r.tapsPerPhase} taps per phase, streaming latency ${r.latency} output samples (${((r.latency / 48000) * 1000).toFixed(2)} ms)`,
    );
  });

  it('costs little per second of audio (32k -> 48k in 20 ms chunks)', () => {
    const seconds = 20;
    const x = sine(32000 * seconds, 440, 32000);
    const r = new Resampler(32000, 48000);
    r.process(x.subarray(0, 32000)); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < x.length; i += 640) r.process(x.subarray(i, i + 640));
    const msPerSecond = (performance.now() - t0) / seconds;
    console.log(`32k->48k cost: ${msPerSecond.toFixed(2)} ms of CPU per second of audio`);
    // Generous bound (CI machines vary): real time needs < 1000.
    expect(msPerSecond).toBeLessThan(100);
  });

  it('bounds its filter-table cache in bytes, whatever rates the inputs come at', () => {
    const x = sine(64, 440, 100_000);
    // 33 odd rates near 100 kHz, each needing its own ~3 MB table (gcd 1 with 32 kHz): over 100 MB if kept.
    for (let k = 0; k < 33; k++) resample(x, 100_001 + 2 * k, 32000);
    expect(filterTableCacheBytes()).toBeGreaterThan(0);
    expect(filterTableCacheBytes()).toBeLessThanOrEqual(32 * 2 ** 20);
    // A table too big to keep (767 999 Hz -> 32 kHz, ~25 MB) is used once and dropped.
    const before = filterTableCacheBytes();
    resample(x, 767_999, 32000);
    expect(filterTableCacheBytes()).toBe(before);
  });

  it('rejects bad rates', () => {
    expect(() => new Resampler(0, 48000)).toThrow(RangeError);
    expect(() => new Resampler(32000.5, 48000)).toThrow(RangeError);
  });
});
