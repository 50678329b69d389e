// Linear layers. Hugging Face stores nn.Linear weights as [out, in]; MatMul wants [in, out].
import type { GraphBuilder, Value } from '../onnx/graph-builder.ts';
import { quantizedMatMul } from '../onnx/quantize.ts';

export type Precision = 'fp32' | 'q8' | 'q4';
export const PRECISIONS: readonly Precision[] = ['fp32', 'q8', 'q4'];

/** [out, in] -> [in, out]. */
function transposeWeight(w: Float32Array, out: number, inF: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    const row = o * inF;
    for (let i = 0; i < inF; i++) t[i * out + o] = w[row + i]!;
  }
  return t;
}

/**
 * y = x W^T (+ b) for a Hugging Face weight `w` of shape [out, in]. With q8/q4 the weight is quantized
 * to onnxruntime's MatMulNBits (block 128, int8 compute); fp32 keeps it exact.
 */
export function linear(
  g: GraphBuilder,
  x: Value,
  w: Float32Array,
  out: number,
  inF: number,
  name: string,
  precision: Precision = 'fp32',
  bias?: Float32Array,
): Value {
  const y =
    precision === 'fp32'
      ? g.matmul(x, g.weight(name, transposeWeight(w, out, inF), [inF, out]))
      : quantizedMatMul(g, x, w, out, inF, name, precision === 'q8' ? 8 : 4);
  return bias ? g.add(y, g.weight(`${name}.bias`, bias, [out])) : y;
}
