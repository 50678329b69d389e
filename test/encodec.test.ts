// EnCodec graphs (src/models/graphs/encodec.ts) against the musicgen-tiny reference tensors, which follow
// Hugging Face's EncodecModel (float32, CPU). See /work/shared/fixtures/musicgen-tiny/README.md (d), (e).
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, Weights } from '../src/models/checkpoint.ts';
import { buildEncodecDecoder, buildEncodecEncoder, encodecLstmSize, encodecPad1d, weightNormed } from '../src/models/graphs/encodec.ts';
import { GraphBuilder } from '../src/models/onnx/graph-builder.ts';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../src/models/safetensors.ts';

/** The fixture: $RIVERRUN_TINY_FIXTURE, else <repo>/../shared/fixtures/musicgen-tiny. */
function fixtureDir(): string {
  const candidates = [
    process.env.RIVERRUN_TINY_FIXTURE,
    fileURLToPath(new URL('../../shared/fixtures/musicgen-tiny/', import.meta.url)),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(join(p, 'reference.safetensors')));
  if (!found) throw new Error(`musicgen-tiny fixture not found (tried ${candidates.join(', ')}); set RIVERRUN_TINY_FIXTURE`);
  return found;
}

function readInt64(file: SafetensorsFile, name: string): { data: BigInt64Array; shape: number[] } {
  const info = file.info(name);
  if (info.dtype !== 'I64') throw new Error(`${name} is ${info.dtype}`);
  const buf = new Uint8Array(new ArrayBuffer(info.end - info.begin));
  const fd = openSync(file.path, 'r');
  try {
    for (let at = 0; at < buf.byteLength; ) at += readSync(fd, buf, at, buf.byteLength - at, info.begin + at);
  } finally {
    closeSync(fd);
  }
  return { data: new BigInt64Array(buf.buffer), shape: info.shape };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

describe('EnCodec graphs vs musicgen-tiny reference', () => {
  let tmp: string;
  let checkpoint: Checkpoint;
  let weights: Weights;
  let ref: SafetensorsFile;
  let decoder: ort.InferenceSession;
  let encoder: ort.InferenceSession;

  beforeAll(async () => {
    const dir = fixtureDir();
    tmp = mkdtempSync(join(tmpdir(), 'riverrun-encodec-'));
    checkpoint = Checkpoint.open(dir);
    weights = checkpoint.openWeights();
    ref = SafetensorsFile.open(join(dir, 'reference.safetensors'));
    const codec = checkpoint.config.codec;
    const decPath = buildEncodecDecoder(weights, codec, 4, { exposeEmbeddings: true }).save(join(tmp, 'encodec_decoder.onnx'));
    const encPath = buildEncodecEncoder(weights, codec, 4).save(join(tmp, 'encodec_encoder.onnx'));
    decoder = await ort.InferenceSession.create(decPath, SESSION);
    encoder = await ort.InferenceSession.create(encPath, SESSION);
  });

  afterAll(async () => {
    await decoder?.release();
    await encoder?.release();
    weights?.close();
    ref?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /**
   * Decodes codes `dims` = [batch, 4, frames]; the LSTM starts after `contextFrames` from `state` (default: a
   * whole-sequence decode, zero state) and the state before frame `stateAt` comes back.
   */
  async function decode(
    codes: BigInt64Array,
    dims: number[],
    stateAt = dims[2]!,
    contextFrames = 0,
    state?: { h: Float32Array; c: Float32Array },
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    const { numLstmLayers } = checkpoint.config.codec;
    const shape = [numLstmLayers, dims[0]!, encodecLstmSize(checkpoint.config.codec)];
    const tensor = (v?: Float32Array) => new ort.Tensor('float32', v ?? new Float32Array(shape[0]! * shape[1]! * shape[2]!), shape);
    return decoder.run({
      audio_codes: new ort.Tensor('int64', codes, dims),
      context_frames: new ort.Tensor('int64', BigInt64Array.of(BigInt(contextFrames)), []),
      state_at: new ort.Tensor('int64', BigInt64Array.of(BigInt(stateAt)), []),
      lstm_h: tensor(state?.h),
      lstm_c: tensor(state?.c),
    });
  }

  it('decodes encodec_decode.audio_codes [2 x 4 x 12] to encodec_decode.audio_values', async () => {
    const codes = readInt64(ref, 'encodec_decode.audio_codes');
    expect(codes.shape).toEqual([1, 2, 4, 12]);
    const out = await decode(codes.data, [2, 4, 12]);
    expect(out.audio_values!.dims).toEqual([2, 1, 7680]);
    expect(out.quantized_embeddings!.dims).toEqual([2, 16, 12]);
    const embErr = maxAbsDiff(
      out.quantized_embeddings!.data as Float32Array,
      ref.float32('encodec_decode.quantized_embeddings', [2, 16, 12]),
    );
    const audioErr = maxAbsDiff(out.audio_values!.data as Float32Array, ref.float32('encodec_decode.audio_values', [2, 1, 7680]));
    console.log(
      `encodec decode: quantized_embeddings max abs err ${embErr.toExponential(2)}, audio_values max abs err ${audioErr.toExponential(2)}`,
    );
    expect(embErr).toBeLessThan(1e-5);
    expect(audioErr).toBeLessThan(1e-4);
  });

  it('encodes encodec_encode.input_values to the reference embeddings and codes, and decodes them back', async () => {
    const x = ref.float32('encodec_encode.input_values', [1, 1, 16000]);
    const out = await encoder.run({ input_values: new ort.Tensor('float32', x, [1, 1, 16000]) });
    expect(out.embeddings!.dims).toEqual([1, 16, 25]);
    expect(out.audio_codes!.dims).toEqual([1, 4, 25]);
    expect(out.audio_codes!.type).toBe('int64');
    const embErr = maxAbsDiff(out.embeddings!.data as Float32Array, ref.float32('encodec_encode.embeddings', [1, 16, 25]));
    const want = readInt64(ref, 'encodec_encode.audio_codes');
    expect(want.shape).toEqual([1, 1, 4, 25]);
    expect(Array.from(out.audio_codes!.data as BigInt64Array)).toEqual(Array.from(want.data));

    const rec = await decode(out.audio_codes!.data as BigInt64Array, [1, 4, 25]);
    expect(rec.audio_values!.dims).toEqual([1, 1, 16000]);
    const recErr = maxAbsDiff(rec.audio_values!.data as Float32Array, ref.float32('encodec_encode.reconstruction', [1, 1, 16000]));
    console.log(
      `encodec encode: embeddings max abs err ${embErr.toExponential(2)}, codes identical (100/100), reconstruction max abs err ${recErr.toExponential(2)}`,
    );
    expect(embErr).toBeLessThan(1e-4);
    expect(recErr).toBeLessThan(1e-4);
  });

  it('decodes the generation reference codes (17 frames)', async () => {
    const codes = readInt64(ref, 'generate.audio_codes');
    const out = await decode(codes.data, [1, 4, 17]);
    const err = maxAbsDiff(out.audio_values!.data as Float32Array, ref.float32('generate.audio_values', [1, 1, 10880]));
    console.log(`encodec decode generate.audio_codes: max abs err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('decodes and encodes inputs as short as one frame (EnCodec zero-append before reflect padding)', async () => {
    for (const frames of [1, 2, 3, 4]) {
      const codes = BigInt64Array.from({ length: 4 * frames }, (_, i) => BigInt((i * 7) % 64));
      const out = await decode(codes, [1, 4, frames]);
      expect(out.audio_values!.dims).toEqual([1, 1, frames * 640]);
      expect((out.audio_values!.data as Float32Array).every(Number.isFinite)).toBe(true);
    }
    const x = ref.float32('encodec_encode.input_values');
    for (const frames of [1, 2]) {
      const out = await encoder.run({ input_values: new ort.Tensor('float32', x.slice(0, frames * 640), [1, 1, frames * 640]) });
      expect(out.audio_codes!.dims).toEqual([1, 4, frames]);
    }
  });

  it('streaming property: a prefix decode matches the full decode except its last 2402 samples', async () => {
    // Nothing in EnCodec is causal: with n frames known, samples >= (n - 4) * 640 + 158 still change when
    // later frames arrive (first conv looks 3 frames ahead, the upsampling path a little more).
    const codes = readInt64(ref, 'encodec_encode.audio_codes').data; // [1, 4, 25]
    const full = (await decode(codes, [1, 4, 25])).audio_values!.data as Float32Array;
    const n = 16;
    const prefix = BigInt64Array.from({ length: 4 * n }, (_, i) => codes[Math.floor(i / n) * 25 + (i % n)]!);
    const part = (await decode(prefix, [1, 4, n])).audio_values!.data as Float32Array;
    const stable = n * 640 - 2402;
    expect(maxAbsDiff(part.subarray(0, stable), full.subarray(0, stable))).toBeLessThan(1e-5);
    expect(maxAbsDiff(part.subarray(stable, stable + 1), full.subarray(stable, stable + 1))).toBeGreaterThan(1e-4);
  });

  it("state inputs: a window started from a whole decode's LSTM state continues it", async () => {
    const codes = readInt64(ref, 'encodec_encode.audio_codes').data; // [1, 4, 25]
    const f32 = (v: ort.Tensor | undefined) => v!.data as Float32Array;
    const end = await decode(codes, [1, 4, 25]);
    const split = await decode(codes, [1, 4, 25], 10); // the state before frame 10
    const audio = f32(split.audio_values);
    // Where the graph splits the LSTM for state_at changes nothing else.
    expect(maxAbsDiff(audio, f32(end.audio_values))).toBeLessThan(1e-6);
    // Frames [7, 25): 3 context frames for the first conv, then the LSTM from frame 10 and that state.
    const n = 18;
    const tail = BigInt64Array.from({ length: 4 * n }, (_, i) => codes[Math.floor(i / n) * 25 + 7 + (i % n)]!);
    const state = { h: f32(split.lstm_h_at), c: f32(split.lstm_c_at) };
    const win = await decode(tail, [1, 4, n], n, 3, state);
    const out = f32(win.audio_values);
    expect(out.length).toBe(15 * 640);
    // Frame 10 is the window's left edge for the upsampling convs (off); from frame 11 on it is exact.
    expect(maxAbsDiff(out.subarray(640), audio.subarray(11 * 640))).toBeLessThan(1e-6);
    expect(maxAbsDiff(out.subarray(0, 640), audio.subarray(10 * 640, 11 * 640))).toBeGreaterThan(1e-3);
    // ... and it ends in the whole decode's final state.
    expect(maxAbsDiff(f32(win.lstm_h_at), f32(end.lstm_h_at))).toBeLessThan(1e-6);
    expect(maxAbsDiff(f32(win.lstm_c_at), f32(end.lstm_c_at))).toBeLessThan(1e-6);
    // The state matters: from zeros the same window is wrong.
    const cold = f32((await decode(tail, [1, 4, n], n, 3)).audio_values);
    expect(maxAbsDiff(cold.subarray(640), audio.subarray(11 * 640))).toBeGreaterThan(1e-3);
  });

  it('rejects a quantizer count the checkpoint does not have', () => {
    expect(() => buildEncodecDecoder(weights, checkpoint.config.codec, 5)).toThrow(/quantizers/);
    expect(() => buildEncodecEncoder(weights, checkpoint.config.codec, 0)).toThrow(/quantizers/);
  });

  it('accepts parametrizations.weight.original0/original1 weight-norm names', () => {
    const prefix = 'audio_encoder.decoder.layers.3.conv';
    const shape: [number, number, number] = [64, 32, 16];
    const expected = weightNormed(weights, prefix, shape);
    const tensors = new Map<string, TensorToWrite>([
      [`${prefix}.parametrizations.weight.original0`, { dtype: 'F32', shape: [64, 1, 1], data: weights.get(`${prefix}.weight_g`) }],
      [`${prefix}.parametrizations.weight.original1`, { dtype: 'F32', shape, data: weights.get(`${prefix}.weight_v`) }],
    ]);
    const path = join(tmp, 'parametrized.safetensors');
    writeSafetensors(path, tensors);
    const renamed = new Weights([SafetensorsFile.open(path)]);
    try {
      expect(Array.from(weightNormed(renamed, prefix, shape))).toEqual(Array.from(expected));
    } finally {
      renamed.close();
    }
    // Per input channel for ConvTranspose1d: each dim-0 slice has norm |g|.
    const g = weights.get(`${prefix}.weight_g`);
    const per = 32 * 16;
    const norm0 = Math.hypot(...expected.subarray(0, per));
    expect(norm0).toBeCloseTo(Math.abs(g[0]!), 4);
  });

  it('encodecPad1d follows EnCodec _pad1d (zero-append for short inputs, reflect otherwise)', async () => {
    const cases: { left: number; right: number }[] = [
      { left: 3, right: 3 },
      { left: 3, right: 2 },
      { left: 1, right: 1 },
    ];
    for (const { left, right } of cases) {
      const g = new GraphBuilder('pad');
      const x = g.input('x', 'float', [1, 2, 'n']);
      g.output(encodecPad1d(g, x, left, right, 'reflect', 1), 'y', 'float', [1, 2, 'm']);
      const session = await ort.InferenceSession.create(g.save(join(tmp, `pad_${left}_${right}.onnx`)), SESSION);
      try {
        for (let n = 1; n <= 6; n++) {
          const data = Float32Array.from({ length: 2 * n }, (_, i) => i + 1);
          const out = await session.run({ x: new ort.Tensor('float32', data, [1, 2, n]) });
          expect(out.y!.dims).toEqual([1, 2, n + left + right]);
          const want: number[] = [];
          for (let c = 0; c < 2; c++) want.push(...pad1dReference(Array.from(data.subarray(c * n, (c + 1) * n)), left, right));
          expect(Array.from(out.y!.data as Float32Array)).toEqual(want);
        }
      } finally {
        await session.release();
      }
    }
  });
});

/** Hugging Face EncodecConv1d._pad1d, reflect mode, for one channel. */
function pad1dReference(x: number[], left: number, right: number): number[] {
  const maxPad = Math.max(left, right);
  const extra = x.length <= maxPad ? maxPad - x.length + 1 : 0;
  const y = [...x, ...new Array<number>(extra).fill(0)];
  const L = y.length;
  const at = (i: number) => y[i < 0 ? -i : i >= L ? 2 * (L - 1) - i : i]!;
  const padded: number[] = [];
  for (let i = -left; i < L + right; i++) padded.push(at(i));
  return padded.slice(0, padded.length - extra);
}
