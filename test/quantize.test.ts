// q8 / q4 linear layers (com.microsoft.MatMulNBits, block QUANT_BLOCK = 128, int8 compute) against an fp32 reference.
//
// Error bounds. Weights are drawn per block as U(-a, a) + offset with a = 0.05 and offsets in {-0.08, 0, 0.08}
// (the offsets make blocks differ in sign, so zero points differ between blocks and a mix-up of zero points
// shows). Weight rms ≈ sqrt(2/3 · 0.08² + 0.05²/3) ≈ 0.071. A block's range R (including 0) is ≤ 0.13; with
// step s = R / (2^bits - 1), round-to-nearest leaves an error of rms s / √12 per weight:
//   q4: s ≤ 0.0087 -> ≤ 2.5e-3 rms, ≤ 3.5% of the weight rms
//   q8: s ≤ 5.1e-4 -> ≤ 1.5e-4 rms, ≤ 0.2%
// With x independent of the weight errors, ||x·Eᵀ|| / ||x·Wᵀ|| is about the same ratio. accuracy_level 4
// also quantizes x to int8 per block (x ~ U(-1, 1): step ≈ 2/255, rms error ≈ 0.4% of x's rms).
// Expected totals: ≈ 3.5% (q4) and ≈ 0.45% (q8). The asserted bounds leave ≥ 2x margin: q4 < 10%, q8 < 1%,
// and q8 must beat q4 by 4x (expected ≈ 8x). Against the dequantized weight (what onnxruntime computes up to
// x's int8 rounding) the error must stay near that 0.4% whatever the bits: < 1.5%.
//
// Measured on onnxruntime-node 1.30 CPU (x64), relative to fp32 (the test logs them):
//   K=192 N=96: q8 5.1e-3, q4 4.5e-2;  K=160 N=64: q8 4.0e-3, q4 3.5e-2;  K=320 N=24: q8 5.6e-3, q4 3.5e-2
// A wrong packing is far outside the q4 bound (asserted > 30%): swapped weight nibbles 0.46, swapped
// zero-point nibbles 1.4, zero points not row-aligned 1.0 (an unrelated output of the same norm: ≈ 1.4).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { Precision } from '../src/models/graphs/linear.ts';
import { linear } from '../src/models/graphs/linear.ts';
import { GraphBuilder, MS_DOMAIN } from '../src/models/onnx/graph-builder.ts';
import type { PackedNBits } from '../src/models/onnx/quantize.ts';
import { packNBits, QUANT_BLOCK, unpackNBits } from '../src/models/onnx/quantize.ts';
import { Rng } from '../src/stream/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'riverrun-quantize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Uniform in [0, 1) from the project's seeded generator. */
function prng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** [n, k] weights, U(-0.05, 0.05) plus a per-block offset of -0.08, 0 or 0.08. */
function makeWeight(rand: () => number, n: number, k: number): Float32Array {
  const w = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const offset = (((r + Math.floor(c / QUANT_BLOCK)) % 3) - 1) * 0.08;
      w[r * k + c] = (rand() * 2 - 1) * 0.05 + offset;
    }
  }
  return w;
}

/** x [m, k] · w[n, k]ᵀ in float64. */
function reference(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += x[i * k + c]! * w[j * k + c]!;
      y[i * n + j] = s;
    }
  }
  return y;
}

function relError(y: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(y.length).toBe(ref.length);
  let e = 0;
  let r = 0;
  for (let i = 0; i < y.length; i++) {
    e += (y[i]! - ref[i]!) ** 2;
    r += ref[i]! ** 2;
  }
  return Math.sqrt(e / r);
}

let graphs = 0;
/** Saves `g` and runs it on x [2, 3, k]; returns y as [6, n] row-major. */
async function run(g: GraphBuilder, x: Float32Array, k: number): Promise<Float32Array> {
  const path = g.save(join(dir, `g${graphs++}.onnx`));
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [2, 3, k]) });
    const y = out.y!;
    expect(y.dims.slice(0, 2)).toEqual([2, 3]);
    return y.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function runLinear(x: Float32Array, w: Float32Array, k: number, n: number, precision: Precision): Promise<Float32Array> {
  const g = new GraphBuilder(`linear_${precision}`);
  const xi = g.input('x', 'float', [2, 3, k]);
  g.output(linear(g, xi, w, n, k, 'fc', precision), 'y', 'float', [2, 3, n]);
  return run(g, x, k);
}

/** The same node quantizedMatMul emits, from a packed weight given by the test (possibly tampered with). */
async function runPacked(x: Float32Array, p: PackedNBits): Promise<Float32Array> {
  const g = new GraphBuilder('packed');
  const xi = g.input('x', 'float', [2, 3, p.k]);
  const B = g.weight('B', p.data, [p.n, p.blocks, (QUANT_BLOCK * p.bits) / 8], 'uint8');
  const scales = g.weight('scales', p.scales, [p.scales.length], 'float');
  const zp = g.weight('zp', p.zeroPoints, [p.zeroPoints.length], 'uint8');
  const y = g.op(
    'MatMulNBits',
    [xi, B, scales, zp],
    { K: p.k, N: p.n, bits: p.bits, block_size: QUANT_BLOCK, accuracy_level: 4 },
    { domain: MS_DOMAIN },
  );
  g.output(y, 'y', 'float', [2, 3, p.n]);
  return run(g, x, p.k);
}

const swapNibbles = (bytes: Uint8Array): Uint8Array => bytes.map((b) => ((b & 15) << 4) | (b >> 4));

const SHAPES: [k: number, n: number][] = [
  [1.5 * QUANT_BLOCK, 96],
  [1.25 * QUANT_BLOCK, 64],
  [2.5 * QUANT_BLOCK, 24],
];
const BOUND = { q8: 0.01, q4: 0.1 } as const;
const M = 6;

describe('quantizedMatMul (MatMulNBits)', () => {
  for (const [k, n] of SHAPES) {
    it(`K=${k} N=${n}: q8 < 1%, q4 < 10%, q8 well below q4`, async () => {
      const rand = prng(k * 7919 + n);
      const w = makeWeight(rand, n, k);
      const x = Float32Array.from({ length: M * k }, () => rand() * 2 - 1);
      const ref = reference(x, w, M, k, n);

      const fp32 = await runLinear(x, w, k, n, 'fp32');
      expect(relError(fp32, ref)).toBeLessThan(1e-5);

      const err: Record<'q8' | 'q4', number> = { q8: 0, q4: 0 };
      for (const precision of ['q8', 'q4'] as const) {
        const y = await runLinear(x, w, k, n, precision);
        err[precision] = relError(y, ref);
        expect(err[precision], precision).toBeLessThan(BOUND[precision]);
        // Against the weight onnxruntime should see, only x's int8 rounding remains.
        const deq = unpackNBits(packNBits(w, n, k, precision === 'q8' ? 8 : 4));
        expect(relError(y, reference(x, deq, M, k, n)), `${precision} vs dequantized`).toBeLessThan(0.015);
      }
      // Expected ratio ≈ 10 (4 more bits shrink the weight error 17x; x's rounding is shared).
      expect(err.q8 * 4).toBeLessThan(err.q4);
      console.log(`K=${k} N=${n}: relative error q8 ${err.q8.toExponential(2)}, q4 ${err.q4.toExponential(2)}`);
    });
  }

  it('catches a wrong nibble order (weights or zero points) and a wrong zero-point row layout', async () => {
    const k = 2.5 * QUANT_BLOCK; // 3 blocks: zero-point rows are 2 bytes with an unused high nibble
    const n = 24;
    const rand = prng(42);
    const w = makeWeight(rand, n, k);
    const x = Float32Array.from({ length: M * k }, () => rand() * 2 - 1);
    const ref = reference(x, w, M, k, n);
    const p = packNBits(w, n, k, 4);

    const good = relError(await runPacked(x, p), ref);
    expect(good).toBeLessThan(BOUND.q4);

    const wrong = {
      dataNibbles: relError(await runPacked(x, { ...p, data: swapNibbles(p.data) }), ref),
      zeroPointNibbles: relError(await runPacked(x, { ...p, zeroPoints: swapNibbles(p.zeroPoints) }), ref),
    };
    // Zero points packed continuously across rows (no per-row byte alignment): 3 nibbles per row.
    const continuous = new Uint8Array(p.zeroPoints.length);
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < p.blocks; b++) {
        const byte = p.zeroPoints[r * 2 + (b >> 1)]!;
        const zp = (b & 1) === 0 ? byte & 15 : byte >> 4;
        const at = r * p.blocks + b;
        continuous[at >> 1] = continuous[at >> 1]! | ((at & 1) === 0 ? zp : zp << 4);
      }
    }
    const rowLayout = relError(await runPacked(x, { ...p, zeroPoints: continuous }), ref);
    console.log(
      `q4 K=${k} N=${n}: packed right ${good.toExponential(2)}; swapped weight nibbles ${wrong.dataNibbles.toExponential(2)}, swapped zero-point nibbles ${wrong.zeroPointNibbles.toExponential(2)}, zero points without row alignment ${rowLayout.toExponential(2)}`,
    );
    for (const e of [wrong.dataNibbles, wrong.zeroPointNibbles, rowLayout]) expect(e).toBeGreaterThan(3 * BOUND.q4);
  });

  it('pads K to the block with the zero point, represents 0 exactly and rounds to within half a step', () => {
    const rand = prng(7);
    for (const bits of [4, 8] as const) {
      const n = 5;
      const k = QUANT_BLOCK + 13; // 2 blocks, the second one 13 wide
      const w = makeWeight(rand, n, k);
      w.fill(0, 0, k); // an all-zero row
      w[k + 3] = 0; // an exact zero among others
      const p = packNBits(w, n, k, bits);
      expect(p.blocks).toBe(2);
      expect(p.data.length).toBe(n * 2 * ((QUANT_BLOCK * bits) / 8));
      expect(p.zeroPoints.length).toBe(bits === 8 ? n * 2 : n);
      const deq = unpackNBits(p);
      expect(deq.subarray(0, k).every((v) => v === 0)).toBe(true);
      expect(deq[k + 3]).toBe(0);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < k; c++) {
          const scale = p.scales[r * p.blocks + Math.floor(c / QUANT_BLOCK)]!;
          expect(Math.abs(deq[r * k + c]! - w[r * k + c]!)).toBeLessThanOrEqual(scale * 0.5 * (1 + 1e-5));
        }
      }
      // Codes past K in the last block equal the block's zero point, i.e. dequantize to 0.
      const blob = (QUANT_BLOCK * bits) / 8;
      for (let r = 0; r < n; r++) {
        const zbyte = p.zeroPoints[bits === 8 ? r * 2 + 1 : r]!;
        const zp = bits === 8 ? zbyte : zbyte >> 4;
        for (let j = k - QUANT_BLOCK; j < QUANT_BLOCK; j++) {
          const at = (r * 2 + 1) * blob;
          const q = bits === 8 ? p.data[at + j]! : (p.data[at + (j >> 1)]! >> ((j & 1) * 4)) & 15;
          expect(q).toBe(zp);
        }
      }
    }
  });

  it('rejects non-finite weights and mismatched shapes', () => {
    expect(() => packNBits(new Float32Array(64), 2, 33, 4)).toThrow(/expected 2x33/);
    const w = new Float32Array(64);
    w[40] = Number.NaN;
    expect(() => packNBits(w, 2, 32, 8)).toThrow(/non-finite/);
    w[40] = Number.POSITIVE_INFINITY;
    expect(() => packNBits(w, 2, 32, 4)).toThrow(/non-finite/);
  });
});
