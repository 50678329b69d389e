// CodecStream (src/stream/codec-stream.ts): chunked EnCodec decoding that carries the LSTM state from
// window to window, compared with one whole-sequence decode, on the tiny preset (written here with a fixed
// seed), the shared musicgen-tiny fixture and the embedded demo model. Set RIVERRUN_CODEC_STREAM_MODEL=<checkpoint
// dir> to measure another model too (e.g. a real musicgen-small).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MODEL_DIR } from '../src/models/default-model.ts';
import { type CodecWindow, ModelBundle } from '../src/models/model-bundle.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import {
  type CodecDecodeFn,
  CodecStream,
  CodecStreamError,
  type CodecStreamOptions,
  type CodecStreamStats,
  DEFAULT_CODEC_STREAM,
} from '../src/stream/codec-stream.ts';
import { Rng } from '../src/stream/rng.ts';
import { FIXTURE_DIR } from './fixture.ts';

const FRAMES = 300;
/**
 * Chunked vs whole-sequence decode: equal up to float rounding. Measured: max abs error 0 on the tiny
 * preset and the fixture, 1.8e-7 (129 dB SNR) on the demo model; 8.9e-7 (122 dB) on a random codec of
 * musicgen-small's shape. One frame too little of any context leaves errors >= 0.017 (<= 49 dB SNR).
 */
const TOLERANCE = { maxErr: 2e-6, snrDb: 110 };

function randomFrames(n: number, codebooks: number, codebookSize: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: codebooks }, () => rng.nextU32() % codebookSize));
}

/** Codes [K, n] (codebook-major) of frames. */
function toCodes(frames: number[][], codebooks: number): BigInt64Array {
  const n = frames.length;
  const codes = new BigInt64Array(codebooks * n);
  for (const [t, f] of frames.entries()) for (const [k, c] of f.entries()) codes[k * n + t] = BigInt(c);
  return codes;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface StreamRun {
  audio: Float32Array;
  stats: CodecStreamStats;
  /** Most frames held at once (history + pending). */
  maxHeld: number;
}

/** Pushes frames in bursts of the given sizes (cycled), decoding every ready chunk after each burst, then flushes. */
async function runStream(stream: CodecStream, frames: number[][], bursts: number[] = [1]): Promise<StreamRun> {
  const parts: Float32Array[] = [];
  let maxHeld = 0;
  let i = 0;
  for (let b = 0; i < frames.length; b++) {
    const size = bursts[b % bursts.length]!;
    for (const end = Math.min(frames.length, i + size); i < end; i++) stream.push(frames[i]!);
    maxHeld = Math.max(maxHeld, stream.heldFrames);
    while (stream.ready()) {
      const chunk = await stream.decodeNext();
      expect(chunk).not.toBeNull();
      parts.push(chunk!);
    }
  }
  expect(await stream.decodeNext()).toBeNull();
  parts.push(await stream.flush());
  return { audio: concat(parts), stats: stream.stats(), maxHeld };
}

interface Accuracy {
  maxErr: number;
  snrDb: number;
}

function accuracy(out: Float32Array, ref: Float32Array): Accuracy {
  expect(out.length).toBe(ref.length);
  let signal = 0;
  let noise = 0;
  let maxErr = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    signal += ref[i]! * ref[i]!;
    noise += d * d;
    maxErr = Math.max(maxErr, Math.abs(d));
  }
  return { maxErr, snrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise) };
}

const fmt = (a: Accuracy) => `max abs err ${a.maxErr.toExponential(2)}, SNR ${a.snrDb.toFixed(1)} dB`;

interface ModelCase {
  name: string;
  /** Returns the checkpoint directory (writes it if needed). */
  dir: (tmp: string) => string;
}

const CASES: ModelCase[] = [
  {
    name: 'tiny preset (seed 1)',
    dir: (tmp) => {
      const dir = join(tmp, 'tiny');
      writeRandomCheckpoint(dir, 'tiny', { seed: 1 });
      return dir;
    },
  },
  { name: 'musicgen-tiny fixture', dir: () => FIXTURE_DIR },
  { name: 'demo model', dir: () => DEMO_MODEL_DIR },
];
const extra = process.env.RIVERRUN_CODEC_STREAM_MODEL;
if (extra) CASES.push({ name: extra, dir: () => extra });

for (const c of CASES) {
  describe(`CodecStream on ${c.name}`, () => {
    let tmp: string;
    let model: ModelBundle;
    let K: number;
    let hop: number;
    let decode: CodecDecodeFn;
    /** One whole-sequence decode. */
    let whole: (frames: number[][]) => Promise<Float32Array>;
    let frames: number[][];
    let full: Float32Array;
    const opts = (o: Partial<CodecStreamOptions> = {}): CodecStreamOptions => ({ ...DEFAULT_CODEC_STREAM, codebooks: K, hop, ...o });
    const streamed = async (o: Partial<CodecStreamOptions> = {}) =>
      accuracy((await runStream(new CodecStream(decode, opts(o)), frames)).audio, full);
    const exact = (a: Accuracy) => {
      expect(a.maxErr).toBeLessThan(TOLERANCE.maxErr);
      expect(a.snrDb).toBeGreaterThan(TOLERANCE.snrDb);
    };

    beforeAll(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'riverrun-codec-stream-'));
      model = await ModelBundle.load(c.dir(tmp), { cacheDir: join(tmp, 'cache'), threads: 1, graphs: ['codec_decoder'] });
      K = model.config.decoder.numCodebooks;
      hop = model.config.codec.hop;
      decode = (w) => model.decodeAudioWindow(w);
      whole = (f) => model.decodeAudio(toCodes(f, K), 1, f.length);
      frames = randomFrames(FRAMES, K, model.config.codec.codebookSize, 7);
      full = await whole(frames);
    }, 120_000);

    afterAll(async () => {
      await model?.close();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('matches the whole-sequence decode with the defaults, within the tolerance', async () => {
      const stream = new CodecStream(decode, opts());
      const r = await runStream(stream, frames);
      expect(r.audio.length).toBe(FRAMES * hop);
      const a = accuracy(r.audio, full);
      const { chunkFrames, leftContextFrames, preLstmFrames, lookaheadFrames } = DEFAULT_CODEC_STREAM;
      console.log(
        `[${c.name}] defaults chunk ${chunkFrames} / left ${leftContextFrames} (${preLstmFrames} before the LSTM) / lookahead ${lookaheadFrames}, ${FRAMES} frames: ${fmt(a)}; ` +
          `${r.stats.framesDecoded} frames decoded for ${r.stats.framesEmitted} emitted (${(r.stats.framesDecoded / r.stats.framesEmitted).toFixed(3)}), ${r.stats.decodeCalls} calls`,
      );
      exact(a);
      expect(r.maxHeld).toBeLessThanOrEqual(leftContextFrames + chunkFrames + lookaheadFrames);
    });

    it('is exact for any chunk size, down to one frame', async () => {
      for (const chunkFrames of [1, 3, 7, 25, 64]) {
        const a = await streamed({ chunkFrames });
        console.log(`[${c.name}] chunk ${chunkFrames}: ${fmt(a)}`);
        exact(a);
      }
    });

    it('needs 4 frames of left context (3 before the LSTM) and 4 of lookahead; more change nothing', async () => {
      const cases: [string, Partial<CodecStreamOptions>][] = [
        ['left 3 (3 before the LSTM)', { leftContextFrames: 3, preLstmFrames: 3 }],
        ['left 3 (2 before the LSTM)', { leftContextFrames: 3, preLstmFrames: 2 }],
        ['left 4 (2 before the LSTM)', { leftContextFrames: 4, preLstmFrames: 2 }],
        ['lookahead 3', { lookaheadFrames: 3 }],
        ['no context, no lookahead', { leftContextFrames: 0, preLstmFrames: 0, lookaheadFrames: 0 }],
      ];
      for (const [name, o] of cases) {
        const a = await streamed(o);
        console.log(`[${c.name}] ${name}: ${fmt(a)}`);
        expect(a.maxErr, name).toBeGreaterThan(0.01);
        expect(a.snrDb, name).toBeLessThan(60);
      }
      exact(await streamed({ leftContextFrames: 6, preLstmFrames: 3 }));
      exact(await streamed({ leftContextFrames: 6, preLstmFrames: 5 }));
      exact(await streamed({ lookaheadFrames: 6 }));
    });

    it('gives the same audio whether frames come one at a time or in bursts, with or without a reset', async () => {
      const one = await runStream(new CodecStream(decode, opts()), frames, [1]);
      const bursts = await runStream(new CodecStream(decode, opts()), frames, [7, 1, 60, 3, 29, 100]);
      const all = await runStream(new CodecStream(decode, opts()), frames, [FRAMES]);
      expect(bursts.audio).toEqual(one.audio);
      expect(all.audio).toEqual(one.audio);
      expect(bursts.stats).toEqual(one.stats);
      expect(all.stats).toEqual(one.stats);
      // A context reset in the middle changes nothing: the codec decodes across it as one sequence.
      const withReset = new CodecStream(decode, opts());
      const parts: Float32Array[] = [];
      frames.forEach((f, t) => {
        if (t === 137) withReset.reset();
        withReset.push(f);
      });
      while (withReset.ready()) parts.push((await withReset.decodeNext())!);
      parts.push(await withReset.flush());
      expect(concat(parts)).toEqual(one.audio);
    });

    it('emits frames x hop samples after flush, whatever the length', async () => {
      for (const n of [0, 1, 3, 4, 5, 13, 14, 15, 28, 29, 30, 54, 101]) {
        const r = await runStream(new CodecStream(decode, opts()), frames.slice(0, n));
        expect(r.audio.length, `${n} frames`).toBe(n * hop);
        expect(r.stats.framesEmitted).toBe(n);
      }
      // A sequence shorter than chunk + lookahead is decoded by flush alone, in one window: exactly its
      // whole-sequence decode.
      const short = frames.slice(0, DEFAULT_CODEC_STREAM.chunkFrames + DEFAULT_CODEC_STREAM.lookaheadFrames - 1);
      const r = await runStream(new CodecStream(decode, opts()), short);
      expect(r.audio).toEqual(await whole(short));
    });

    it('decodes at a cost linear in length: (chunk + left + lookahead) / chunk frames per frame', async () => {
      const long = randomFrames(3000, K, model.config.codec.codebookSize, 11);
      const r300 = await runStream(new CodecStream(decode, opts()), long.slice(0, 300));
      const r3000 = await runStream(new CodecStream(decode, opts()), long);
      const probe = new CodecStream(decode, opts());
      const steady = probe.steadyStateCost;
      const { chunkFrames: C, leftContextFrames: L, lookaheadFrames: A } = DEFAULT_CODEC_STREAM;
      expect(steady).toBeCloseTo((C + L + A) / C, 12);
      const ratio = (s: CodecStreamStats) => s.framesDecoded / s.framesEmitted;
      console.log(
        `[${c.name}] frames decoded / emitted: 300 frames ${ratio(r300.stats).toFixed(4)}, 3000 frames ${ratio(r3000.stats).toFixed(4)}, ` +
          `steady state ${steady.toFixed(4)}; most frames held ${r3000.maxHeld}`,
      );
      // Linear: every extra chunk costs exactly one steady-state window; only the start (no history to
      // re-decode yet) and the flush differ, a constant that fades from the ratio as the stream grows.
      expect((r3000.stats.framesDecoded - r300.stats.framesDecoded) * C).toBe((C + L + A) * 2700);
      expect(Math.abs(ratio(r3000.stats) / steady - 1)).toBeLessThan(0.01);
      expect(Math.abs(ratio(r3000.stats) / ratio(r300.stats) - 1)).toBeLessThan(0.05);
      expect(r3000.maxHeld).toBe(r300.maxHeld); // bounded history
      // The state carried over 300 windows does not drift: the whole long stream is still exact.
      const a = accuracy(r3000.audio, await whole(long));
      console.log(`[${c.name}] 3000 frames: ${fmt(a)}`);
      exact(a);
    }, 60_000);
  });
}

describe('CodecStream bookkeeping and state (stub decoder)', () => {
  const K = 4;
  const hop = 8;
  interface Call {
    /** The window's first frame (its first code: frames here are numbered by their first code). */
    start: number;
    frames: number;
    contextFrames: number;
    stateAt: number;
    /** The frame the given state belongs to (null = zeros). */
    stateFrame: number | null;
  }
  const calls: Call[] = [];
  /**
   * A causal stand-in for the codec's LSTM: sample j of frame t is (sum of the first codes of frames 0..t)
   * * hop + j. The state (h) is the sum before a frame and c names that frame, so a window's audio is right
   * only if it got the state for its LSTM start, and the stub checks that it did.
   */
  const stub: CodecDecodeFn = async (w: CodecWindow) => {
    const first = (t: number) => Number(w.codes[t]!); // codebook 0 of frame t
    calls.push({
      start: first(0),
      frames: w.frames,
      contextFrames: w.contextFrames,
      stateAt: w.stateAt,
      stateFrame: w.state ? w.state.c[0]! : null,
    });
    expect(w.contextFrames).toBeLessThan(w.stateAt);
    expect(w.stateAt).toBeLessThanOrEqual(w.frames);
    if (w.state) expect(w.state.c[0]).toBe(first(w.contextFrames));
    else expect(first(0)).toBe(0);
    let sum = w.state ? w.state.h[0]! : 0;
    const state = { h: new Float32Array(1), c: new Float32Array(1) };
    const audio = new Float32Array((w.frames - w.contextFrames) * hop);
    for (let t = w.contextFrames; t < w.frames; t++) {
      if (t === w.stateAt) state.h[0] = sum;
      sum += first(t);
      for (let j = 0; j < hop; j++) audio[(t - w.contextFrames) * hop + j] = sum * hop + j;
    }
    if (w.stateAt === w.frames) state.h[0] = sum;
    state.c[0] = w.stateAt < w.frames ? first(w.stateAt) : first(w.frames - 1) + 1;
    return { audio, state };
  };
  const seq = (n: number, from = 0) => Array.from({ length: n }, (_, t) => [from + t, 0, 0, 0]);
  /** What a whole-sequence decode of seq(n) gives. */
  const expected = (n: number) => {
    const out = new Float32Array(n * hop);
    for (let t = 0, sum = 0; t < n; t++) {
      sum += t;
      for (let j = 0; j < hop; j++) out[t * hop + j] = sum * hop + j;
    }
    return out;
  };
  const opts: CodecStreamOptions = { codebooks: K, hop, chunkFrames: 10, leftContextFrames: 6, preLstmFrames: 2, lookaheadFrames: 3 };

  it('emits each frame once, in order, from windows of left + chunk + lookahead frames, handing the LSTM state on', async () => {
    calls.length = 0;
    const r = await runStream(new CodecStream(stub, opts), seq(57));
    expect(r.audio).toEqual(expected(57));
    // [0,13) from zeros, then [4,23) [14,33) [24,43) [34,53) with the LSTM from 6, 16, 26, 36, and the
    // flush [44,57) from 46, the last (no state taken for a next window).
    expect(calls).toEqual([
      { start: 0, frames: 13, contextFrames: 0, stateAt: 6, stateFrame: null },
      { start: 4, frames: 19, contextFrames: 2, stateAt: 12, stateFrame: 6 },
      { start: 14, frames: 19, contextFrames: 2, stateAt: 12, stateFrame: 16 },
      { start: 24, frames: 19, contextFrames: 2, stateAt: 12, stateFrame: 26 },
      { start: 34, frames: 19, contextFrames: 2, stateAt: 12, stateFrame: 36 },
      { start: 44, frames: 13, contextFrames: 2, stateAt: 13, stateFrame: 46 },
    ]);
  });

  it('carries the state with any chunk, context and lookahead, including none', async () => {
    for (const o of [
      { chunkFrames: 1, leftContextFrames: 4, preLstmFrames: 3, lookaheadFrames: 4 },
      { chunkFrames: 3, leftContextFrames: 6, preLstmFrames: 6, lookaheadFrames: 0 },
      { chunkFrames: 5, leftContextFrames: 0, preLstmFrames: 0, lookaheadFrames: 0 },
      { chunkFrames: 2, leftContextFrames: 7, preLstmFrames: 1, lookaheadFrames: 1 },
    ]) {
      const r = await runStream(new CodecStream(stub, { ...opts, ...o }), seq(41), [3, 1, 8]);
      expect(r.audio, JSON.stringify(o)).toEqual(expected(41));
    }
  });

  it('keeps the cost ratio and the history bounded over a long stream', async () => {
    const s = new CodecStream(stub, opts);
    let maxHeld = 0;
    const capacity = s.capacityFrames;
    for (let t = 0; t < 100_000; t++) {
      s.push([t, 0, 0, 0]);
      maxHeld = Math.max(maxHeld, s.heldFrames);
      expect(s.capacityFrames).toBe(capacity);
      if (s.ready()) await s.decodeNext();
    }
    await s.flush();
    const st = s.stats();
    expect(st.framesEmitted).toBe(100_000);
    expect(Math.abs(st.framesDecoded / st.framesEmitted / s.steadyStateCost - 1)).toBeLessThan(1e-3);
    expect(maxHeld).toBeLessThanOrEqual(opts.leftContextFrames + opts.chunkFrames + opts.lookaheadFrames);
  });

  it('ends at flush; reset() decodes across the context reset, dropping nothing', async () => {
    const s = new CodecStream(stub, opts);
    const first = await runStream(s, seq(25));
    expect(first.audio).toEqual(expected(25));
    expect(() => s.push([0, 0, 0, 0])).toThrow(CodecStreamError);
    expect(s.ready()).toBe(false);
    expect((await s.flush()).length).toBe(0);

    // A reset with frames pending: same windows and audio as without it, every frame kept in order.
    calls.length = 0;
    const plain = await runStream(new CodecStream(stub, opts), seq(40));
    const plainCalls = [...calls];
    calls.length = 0;
    const r = new CodecStream(stub, opts);
    const parts: Float32Array[] = [];
    for (const f of seq(17)) r.push(f);
    while (r.ready()) parts.push((await r.decodeNext())!);
    r.reset();
    for (const f of seq(23, 17)) r.push(f);
    while (r.ready()) parts.push((await r.decodeNext())!);
    parts.push(await r.flush());
    expect(concat(parts)).toEqual(plain.audio);
    expect(calls).toEqual(plainCalls);
    expect(r.stats()).toEqual({ ...plain.stats, resets: 1 });
  });

  it('rejects bad options, bad frames, overlapping decodes and wrong decoder output', async () => {
    const bad = (o: Partial<CodecStreamOptions>) => () => new CodecStream(stub, { ...opts, ...o });
    expect(bad({ chunkFrames: 0 })).toThrow(CodecStreamError);
    expect(bad({ leftContextFrames: -1 })).toThrow(CodecStreamError);
    expect(bad({ lookaheadFrames: 1.5 })).toThrow(CodecStreamError);
    expect(bad({ preLstmFrames: -1 })).toThrow(CodecStreamError);
    // The LSTM starts inside the left context, so the frames before it are part of it.
    expect(bad({ preLstmFrames: 7 })).toThrow(expect.objectContaining({ code: 'CODEC_STREAM_OPTIONS' }));
    expect(bad({ preLstmFrames: 6 })).not.toThrow();
    const s = new CodecStream(stub, opts);
    expect(() => s.push([1, 2, 3])).toThrow(CodecStreamError);
    expect(() => s.push([1, 2, 3, -1])).toThrow(CodecStreamError);
    for (const f of seq(30)) s.push(f);
    const a = s.decodeNext();
    await expect(s.decodeNext()).rejects.toMatchObject({ code: 'CODEC_STREAM_BUSY' });
    expect((await a)!.length).toBe(10 * hop);
    // Audio for the whole window instead of the frames after its context: the second window is caught.
    const ignoresContext: CodecDecodeFn = async (w) => {
      const { state } = await stub(w);
      return { audio: new Float32Array(w.frames * hop), state };
    };
    const wrong = new CodecStream(ignoresContext, opts);
    for (const f of seq(23)) wrong.push(f);
    expect((await wrong.decodeNext())!.length).toBe(10 * hop);
    await expect(wrong.decodeNext()).rejects.toMatchObject({ code: 'CODEC_STREAM_DECODE' });
  });
});
