// Building blocks shared by the T5 and decoder graphs.
import type { GraphBuilder, Value } from '../onnx/graph-builder.ts';
import { MS_DOMAIN } from '../onnx/graph-builder.ts';

/** The additive mask value Hugging Face uses: finite, so a fully masked row softmaxes to uniform, not NaN. */
export const FLOAT32_MIN = -3.4028234663852886e38;

export function layerNorm(g: GraphBuilder, x: Value, weight: Float32Array, bias: Float32Array, name: string, eps = 1e-5): Value {
  const n = weight.length;
  return g.op('LayerNormalization', [x, g.weight(`${name}.weight`, weight, [n]), g.weight(`${name}.bias`, bias, [n])], {
    axis: -1,
    epsilon: { float: eps },
  });
}

/** T5's RMS norm: w * x / sqrt(mean(x^2) + eps), no mean subtraction, no bias. */
export function rmsNorm(g: GraphBuilder, x: Value, weight: Float32Array, name: string, eps: number): Value {
  const variance = g.op('ReduceMean', [g.mul(x, x)], { axes: [-1], keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.add(variance, g.float(eps, 'eps'))])]);
  return g.mul(g.mul(x, inv), g.weight(`${name}.weight`, weight, [weight.length]));
}

/** Exact (erf) GELU, as torch.nn.functional.gelu; onnxruntime fuses the pattern into one kernel. */
export function gelu(g: GraphBuilder, x: Value): Value {
  const erf = g.op('Erf', [g.mul(x, g.float(Math.SQRT1_2, 'inv_sqrt2'))]);
  return g.mul(g.mul(x, g.float(0.5, 'half')), g.add(erf, g.float(1, 'one')));
}

/** a @ b^T over the last two axes without materialising the transpose. */
export function matmulTransB(g: GraphBuilder, a: Value, b: Value): Value {
  return g.op('FusedMatMul', [a, b], { transA: 0, transB: 1, alpha: { float: 1 } }, { domain: MS_DOMAIN });
}

/** [B, S, H*D] -> [B, H, S, D] */
export function splitHeads(g: GraphBuilder, x: Value, heads: number, dim: number): Value {
  return g.transpose(g.reshape(x, [0, 0, heads, dim]), [0, 2, 1, 3]);
}

/** [B, H, S, D] -> [B, S, H*D] */
export function mergeHeads(g: GraphBuilder, x: Value, heads: number, dim: number): Value {
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, heads * dim]);
}

/** int64 mask [B, S] (1 = attend) -> additive float mask [B, 1, 1, S]. */
export function additiveKeyMask(g: GraphBuilder, mask: Value): Value {
  const keep = g.cast(mask, 'bool');
  const additive = g.op('Where', [keep, g.float(0, 'zero'), g.float(FLOAT32_MIN, 'fmin')]);
  return g.unsqueeze(additive, [1, 2]);
}
