// Weight-only block quantization for linear layers (precision q8 / q4), lowered to onnxruntime's contrib
// op com.microsoft.MatMulNBits:
//
//   Y[..., N] = A[..., K] · dequant(B)ᵀ,   dequant(B)[n, k] = (q[n, k] - zp[n, k / 128]) * scale[n, k / 128]
//
// Layout written here (onnxruntime ContribOperators.md, MatMulNBits):
//   B            uint8 [N, nBlocks, blobSize], nBlocks = ceil(K / 128), blobSize = 128 * bits / 8. The codes of
//                one block run along K; with 4 bits two codes share a byte, the even k in the low nibble.
//                K is padded up to nBlocks * 128 with zero weights (stored as the block's zero point, so they
//                dequantize to exactly 0).
//   scales       float [N * nBlocks]
//   zero_points  uint8 [N * ceil(nBlocks * bits / 8)]: each row of N starts on a fresh byte; with 4 bits two
//                zero points share a byte, the even block in the low nibble.
//
// Quantization is asymmetric min/max per block of 128 weights along K, with 0 always inside the range, rounding
// to nearest. Blocks of 128, the common choice for 4-bit LLM weights: a step reads every decoder weight, so
// bytes per weight set its speed, and at 32 the scales were a fifth of the q4 bytes (docs/benchmarks.md).
// accuracy_level 4 makes onnxruntime quantize A to int8 per block as well and use int8 dot
// products, which is several times faster on CPU than dequantizing to fp32; it adds a small error of its own
// (see test/quantize.test.ts for measured errors). onnxruntime-node 1.30's CPU kernel accepts both bits=4
// and bits=8 (checked when this was written), so both precisions use the same op.
import type { GraphBuilder, Value } from './graph-builder.ts';
import { MS_DOMAIN } from './graph-builder.ts';

export const QUANT_BLOCK = 128;
const ACCURACY_LEVEL_INT8 = 4;

export interface PackedNBits {
  bits: 4 | 8;
  /** Rows (nn.Linear out features) and columns (in features) of the original weight. */
  n: number;
  k: number;
  blocks: number;
  /** [n, blocks, QUANT_BLOCK * bits / 8] */
  data: Uint8Array;
  /** [n * blocks] */
  scales: Float32Array;
  /** [n * ceil(blocks * bits / 8)] */
  zeroPoints: Uint8Array;
}

/**
 * Quantizes a row-major [n, k] float weight (nn.Linear's [out, in]) into MatMulNBits' format. Pure and
 * allocation-light: one pass over the weight per block for min/max and one for the codes.
 */
export function packNBits(w: Float32Array, n: number, k: number, bits: 4 | 8): PackedNBits {
  if (bits !== 4 && bits !== 8) throw new Error(`MatMulNBits: unsupported bits ${String(bits)}`);
  if (!Number.isInteger(n) || !Number.isInteger(k) || n <= 0 || k <= 0) throw new Error(`MatMulNBits: bad shape [${n}, ${k}]`);
  if (w.length !== n * k) throw new Error(`MatMulNBits: weight has ${w.length} values, expected ${n}x${k}`);
  const blocks = Math.ceil(k / QUANT_BLOCK);
  const blob = (QUANT_BLOCK * bits) / 8;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const qmax = (1 << bits) - 1;
  const data = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * zpRow);
  // One block's codes, padded with the zero point past K.
  const codes = new Uint8Array(QUANT_BLOCK);

  for (let r = 0; r < n; r++) {
    const rowStart = r * k;
    for (let b = 0; b < blocks; b++) {
      const start = rowStart + b * QUANT_BLOCK;
      const len = Math.min(QUANT_BLOCK, k - b * QUANT_BLOCK);
      const end = start + len;
      // Range including 0, so that 0 (and the K padding) is exactly representable.
      let lo = 0;
      let hi = 0;
      for (let i = start; i < end; i++) {
        const v = w[i]!;
        if (v < lo) lo = v;
        else if (v > hi) hi = v;
        else if (Number.isNaN(v)) lo = NaN;
      }
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`MatMulNBits: non-finite weight in row ${r}, block ${b}`);
      // The float32 scale onnxruntime will see; quantize against exactly that value.
      let scale = Math.fround((hi - lo) / qmax);
      let zp: number;
      if (scale === 0) {
        // All-zero block: any scale works; keep it finite and non-zero.
        scale = 1;
        zp = 0;
      } else {
        zp = Math.round(-lo / scale);
        if (zp < 0) zp = 0;
        else if (zp > qmax) zp = qmax;
      }
      const inv = 1 / scale;
      // Round to nearest (halves up, like Math.round): floor(v / scale + zp + 0.5). `| 0` truncates rather
      // than floors, which only differs below 0, where the clamp gives 0 either way.
      const shift = zp + 0.5;
      let i = 0;
      for (let at = start; at < end; at++, i++) {
        let q = (w[at]! * inv + shift) | 0;
        if (q < 0) q = 0;
        else if (q > qmax) q = qmax;
        codes[i] = q;
      }
      for (; i < QUANT_BLOCK; i++) codes[i] = zp;

      const block = r * blocks + b;
      scales[block] = scale;
      const out = block * blob;
      if (bits === 8) {
        data.set(codes, out);
        zeroPoints[r * zpRow + b] = zp;
      } else {
        for (let j = 0; j < blob; j++) data[out + j] = codes[2 * j]! | (codes[2 * j + 1]! << 4);
        const z = r * zpRow + (b >> 1);
        zeroPoints[z] = zeroPoints[z]! | ((b & 1) === 0 ? zp : zp << 4);
      }
    }
  }
  return { bits, n, k, blocks, data, scales, zeroPoints };
}

/** The float weight [n, k] that onnxruntime reconstructs from a packed one (for tests and error checks). */
export function unpackNBits(p: PackedNBits): Float32Array {
  const { bits, n, k, blocks } = p;
  const blob = (QUANT_BLOCK * bits) / 8;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const w = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / QUANT_BLOCK);
      const block = r * blocks + b;
      const j = c % QUANT_BLOCK;
      let q: number;
      let zp: number;
      if (bits === 8) {
        q = p.data[block * blob + j]!;
        zp = p.zeroPoints[r * zpRow + b]!;
      } else {
        const byte = p.data[block * blob + (j >> 1)]!;
        q = (j & 1) === 0 ? byte & 15 : byte >> 4;
        const zbyte = p.zeroPoints[r * zpRow + (b >> 1)]!;
        zp = (b & 1) === 0 ? zbyte & 15 : zbyte >> 4;
      }
      w[r * k + c] = (q - zp) * p.scales[block]!;
    }
  }
  return w;
}

/**
 * y = x · wᵀ with `w` the Hugging Face nn.Linear weight, row-major [out, in] float32, quantized to `bits`
 * per block of QUANT_BLOCK along `in`. `x` is float [..., in]; the result is float [..., out].
 */
export function quantizedMatMul(g: GraphBuilder, x: Value, w: Float32Array, out: number, inF: number, name: string, bits: 4 | 8): Value {
  const p = packNBits(w, out, inF, bits);
  const blob = (QUANT_BLOCK * bits) / 8;
  const B = g.weight(`${name}.q${bits}`, p.data, [out, p.blocks, blob], 'uint8');
  const scales = g.weight(`${name}.scales`, p.scales, [out * p.blocks], 'float');
  const zeroPoints = g.weight(`${name}.zero_points`, p.zeroPoints, [p.zeroPoints.length], 'uint8');
  return g.op(
    'MatMulNBits',
    [x, B, scales, zeroPoints],
    {
      K: inF,
      N: out,
      bits,
      block_size: QUANT_BLOCK,
      accuracy_level: ACCURACY_LEVEL_INT8,
    },
    { domain: MS_DOMAIN, name: `${name}_q${bits}` },
  );
}
