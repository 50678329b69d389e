// CodecStream (src/stream/codec-stream.ts): chunked, overlapping EnCodec decoding compared with one
// whole-sequence decode, on the tiny preset (written here with a fixed seed) and on the shared
// musicgen-tiny fixture. Set RIVERRUN_CODEC_STREAM_MODEL=<checkpoint dir> to measure another model too
// (e.g. a real musicgen-small, whose LSTM memory the random models cannot show).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelBundle } from '../src/models/model-bundle.ts';
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
    let frames: number[][];
    let full: Float32Array;
    const opts = (o: Partial<CodecStreamOptions> = {}): CodecStreamOptions => ({ ...DEFAULT_CODEC_STREAM, codebooks: K, hop, ...o });

    beforeAll(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'riverrun-codec-stream-'));
      model = await ModelBundle.load(c.dir(tmp), { cacheDir: join(tmp, 'cache'), threads: 1 });
      K = model.config.decoder.numCodebooks;
      hop = model.config.codec.hop;
      decode = (codes, n) => model.decodeAudio(codes, 1, n);
      frames = randomFrames(FRAMES, K, model.config.codec.codebookSize, 7);
      full = await decode(toCodes(frames, K), FRAMES);
    }, 120_000);

    afterAll(async () => {
      await model?.close();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('matches the whole-sequence decode with the defaults', async () => {
      const stream = new CodecStream(decode, opts());
      const r = await runStream(stream, frames);
      expect(r.audio.length).toBe(FRAMES * hop);
      const a = accuracy(r.audio, full);
      const { chunkFrames, leftContextFrames, lookaheadFrames } = DEFAULT_CODEC_STREAM;
      console.log(
        `[${c.name}] defaults chunk ${chunkFrames} / left ${leftContextFrames} / lookahead ${lookaheadFrames}, ${FRAMES} frames: ${fmt(a)}; ` +
          `${r.stats.framesDecoded} frames decoded for ${r.stats.framesEmitted} emitted (${(r.stats.framesDecoded / r.stats.framesEmitted).toFixed(3)}), ${r.stats.decodeCalls} calls`,
      );
      // Measured: ~6e-6 / 121 dB (preset), ~1e-5 / 124 dB (fixture) against signals of rms 0.2-0.6.
      expect(a.maxErr).toBeLessThan(1e-4);
      expect(a.snrDb).toBeGreaterThan(100);
      expect(r.maxHeld).toBeLessThanOrEqual(leftContextFrames + chunkFrames + lookaheadFrames);
    });

    it('needs the left context: without it the chunk heads are wrong', async () => {
      const base = accuracy((await runStream(new CodecStream(decode, opts()), frames)).audio, full);
      const none = accuracy((await runStream(new CodecStream(decode, opts({ leftContextFrames: 0 })), frames)).audio, full);
      const short = accuracy((await runStream(new CodecStream(decode, opts({ leftContextFrames: 8 })), frames)).audio, full);
      console.log(`[${c.name}] left context 0: ${fmt(none)}; 8: ${fmt(short)}; ${DEFAULT_CODEC_STREAM.leftContextFrames}: ${fmt(base)}`);
      expect(none.maxErr).toBeGreaterThan(0.1);
      expect(none.snrDb).toBeLessThan(30);
      expect(none.maxErr).toBeGreaterThan(1000 * base.maxErr);
      expect(short.maxErr).toBeGreaterThan(10 * base.maxErr);
    });

    it('needs 4 frames of lookahead: fewer leave the chunk tails wrong, more change nothing', async () => {
      const la2 = accuracy((await runStream(new CodecStream(decode, opts({ lookaheadFrames: 2 })), frames)).audio, full);
      const la4 = accuracy((await runStream(new CodecStream(decode, opts({ lookaheadFrames: 4 })), frames)).audio, full);
      const la6 = accuracy((await runStream(new CodecStream(decode, opts({ lookaheadFrames: 6 })), frames)).audio, full);
      console.log(`[${c.name}] lookahead 2: ${fmt(la2)}; 4: ${fmt(la4)}; 6: ${fmt(la6)}`);
      expect(la2.maxErr).toBeGreaterThan(0.1);
      expect(la6.maxErr).toBeGreaterThan(0.5 * la4.maxErr);
      expect(la6.maxErr).toBeLessThan(2 * la4.maxErr);
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
      for (const n of [0, 1, 3, 28, 29, 30, 54, 101]) {
        const r = await runStream(new CodecStream(decode, opts()), frames.slice(0, n));
        expect(r.audio.length, `${n} frames`).toBe(n * hop);
        expect(r.stats.framesEmitted).toBe(n);
      }
      // A short sequence is decoded by flush alone, in one window: exactly its whole-sequence decode.
      const short = frames.slice(0, 20);
      const r = await runStream(new CodecStream(decode, opts()), short);
      expect(r.audio).toEqual(await decode(toCodes(short, K), 20));
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
      // A steady-state chunk of the long stream is still accurate (no drift over time).
      const ref = await decode(toCodes(long, K), 3000);
      const from = 2500 * hop;
      const a = accuracy(r3000.audio.subarray(from), ref.subarray(from));
      console.log(`[${c.name}] 3000 frames, last 500: ${fmt(a)}`);
      expect(a.maxErr).toBeLessThan(1e-4);
    }, 60_000);

    it('cross-fade: a small gain inside the exact lookahead, a loss past it', async () => {
      const off = accuracy((await runStream(new CodecStream(decode, opts()), frames)).audio, full);
      const xf128 = accuracy((await runStream(new CodecStream(decode, opts({ crossfadeSamples: 128 })), frames)).audio, full);
      const xf640 = accuracy((await runStream(new CodecStream(decode, opts({ crossfadeSamples: 640 })), frames)).audio, full);
      const left8 = accuracy((await runStream(new CodecStream(decode, opts({ leftContextFrames: 8 })), frames)).audio, full);
      const left8xf = accuracy(
        (await runStream(new CodecStream(decode, opts({ leftContextFrames: 8, crossfadeSamples: 128 })), frames)).audio,
        full,
      );
      console.log(
        `[${c.name}] cross-fade off: ${fmt(off)}; 128 samples: ${fmt(xf128)}; 640 samples: ${fmt(xf640)}; ` +
          `left 8 off: ${fmt(left8)}; left 8 + 128 samples: ${fmt(left8xf)}`,
      );
      // Within the 158 samples past a chunk that lookahead 4 decodes exactly, fading never hurts ...
      expect(xf128.snrDb).toBeGreaterThanOrEqual(off.snrDb - 0.1);
      expect(left8xf.snrDb).toBeGreaterThanOrEqual(left8.snrDb - 0.1);
      // ... but gains less than one more frame of left context would (~3.5 dB/frame), and past it, it
      // mixes in the right-edge padding error.
      expect(xf128.snrDb - off.snrDb).toBeLessThan(2);
      expect(xf640.maxErr).toBeGreaterThan(10 * off.maxErr);
    });
  });
}

describe('CodecStream bookkeeping (stub decoder)', () => {
  const K = 4;
  const hop = 8;
  /** A decoder whose sample j of frame t encodes (t's first code, j): shows which frames were emitted. */
  const calls: number[] = [];
  const stub: CodecDecodeFn = async (codes, n) => {
    calls.push(n);
    const out = new Float32Array(n * hop);
    for (let t = 0; t < n; t++) for (let j = 0; j < hop; j++) out[t * hop + j] = Number(codes[t]!) * hop + j;
    return out;
  };
  const seq = (n: number, from = 0) => Array.from({ length: n }, (_, t) => [from + t, 0, 0, 0]);
  const expected = (n: number, from = 0) =>
    Float32Array.from({ length: n * hop }, (_, i) => (from + Math.floor(i / hop)) * hop + (i % hop));
  const opts: CodecStreamOptions = { codebooks: K, hop, chunkFrames: 10, leftContextFrames: 6, lookaheadFrames: 3 };

  it('emits each frame once, in order, from windows of left + chunk + lookahead frames', async () => {
    calls.length = 0;
    const r = await runStream(new CodecStream(stub, opts), seq(57));
    expect(r.audio).toEqual(expected(57));
    // [0,13) [4,23) [14,33) [24,43) [34,53), then flush [44,57)
    expect(calls).toEqual([13, 19, 19, 19, 19, 13]);
  });

  it('keeps the cost ratio and the history bounded over a long stream', async () => {
    const s = new CodecStream(stub, opts);
    let maxHeld = 0;
    const capacity = s.capacityFrames;
    for (let t = 0; t < 100_000; t++) {
      s.push([t % 2048, 0, 0, 0]);
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

  it('rejects bad options, bad frames and overlapping decodes', async () => {
    const bad = (o: Partial<CodecStreamOptions>) => () => new CodecStream(stub, { ...opts, ...o });
    expect(bad({ chunkFrames: 0 })).toThrow(CodecStreamError);
    expect(bad({ leftContextFrames: -1 })).toThrow(CodecStreamError);
    expect(bad({ lookaheadFrames: 1.5 })).toThrow(CodecStreamError);
    expect(bad({ crossfadeSamples: 3 * hop + 1 })).toThrow(CodecStreamError);
    const s = new CodecStream(stub, opts);
    expect(() => s.push([1, 2, 3])).toThrow(CodecStreamError);
    expect(() => s.push([1, 2, 3, -1])).toThrow(CodecStreamError);
    for (const f of seq(30)) s.push(f);
    const a = s.decodeNext();
    await expect(s.decodeNext()).rejects.toMatchObject({ code: 'CODEC_STREAM_BUSY' });
    expect((await a)!.length).toBe(10 * hop);
    const wrong = new CodecStream(async (_c, n) => new Float32Array(n * hop - 1), opts);
    for (const f of seq(13)) wrong.push(f);
    await expect(wrong.decodeNext()).rejects.toMatchObject({ code: 'CODEC_STREAM_DECODE' });
  });
});
