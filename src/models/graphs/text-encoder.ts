// Text encoder graph: T5 encoder -> enc_to_dec_proj -> x mask, then every decoder layer's
// cross-attention keys and values, so that they are computed once per prompt instead of every step.
//
// inputs : input_ids int64 [B, S], attention_mask int64 [B, S]
// outputs: last_hidden_state float [B, S, d_model]            (T5 output, for tests and tools)
//          encoder_hidden_states float [B, S, hidden]          (projected, padded positions zeroed)
//          cross_key.{l}, cross_value.{l} float [B, H, S, D]   (decoder layer l's encoder_attn k/v)

import type { Weights } from '../checkpoint.ts';
import type { DecoderConfig, T5Config } from '../config.ts';
import { GraphBuilder, type Value } from '../onnx/graph-builder.ts';
import { additiveKeyMask, rmsNorm, splitHeads } from './common.ts';
import { linear } from './linear.ts';

/** Longest text the bias table covers (T5's n_positions); the tokenizer wrapper truncates to it. */
export const MAX_TEXT_TOKENS = 512;

/** T5's bidirectional relative position bucket, with the logarithmic part evaluated in float32. */
export function relativeBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const half = numBuckets / 2;
  const base = relative > 0 ? half : 0;
  const n = Math.abs(relative);
  const maxExact = half / 2;
  if (n < maxExact) return base + n;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact))) * (half - maxExact));
  return base + Math.min(maxExact + Math.trunc(scaled), half - 1);
}

export function buildTextEncoder(w: Weights, t5: T5Config, dec: DecoderConfig): GraphBuilder {
  const g = new GraphBuilder('riverrun_text_encoder');
  const { dModel, numHeads: H, dKv: D } = t5;
  const ids = g.input('input_ids', 'int64', ['batch', 'tokens']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'tokens']);
  const p = 'text_encoder.encoder';

  const embed = w.first(['text_encoder.shared.weight', `${p}.embed_tokens.weight`], [t5.vocabSize, dModel]);
  let h: Value = g.gather(g.weight('embed_tokens', embed, [t5.vocabSize, dModel]), ids);

  // Position bias [1, H, S, S] from a table indexed by (key - query + MAX - 1), built here in JS.
  const rel = w.get(`${p}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, [t5.numBuckets, H]);
  const span = 2 * MAX_TEXT_TOKENS - 1;
  const table = new Float32Array(span * H);
  for (let i = 0; i < span; i++) {
    const bucket = relativeBucket(i - (MAX_TEXT_TOKENS - 1), t5.numBuckets, t5.maxDistance);
    for (let hd = 0; hd < H; hd++) table[i * H + hd] = rel[bucket * H + hd]!;
  }
  const seqLen = g.op('Gather', [g.op('Shape', [ids]), g.int(1)], { axis: 0 });
  const range = g.op('Range', [g.int(0), seqLen, g.int(1)]);
  const relIndex = g.add(g.sub(g.unsqueeze(range, [0]), g.unsqueeze(range, [1])), g.int(MAX_TEXT_TOKENS - 1));
  const bias = g.unsqueeze(g.transpose(g.gather(g.weight('position_bias_table', table, [span, H]), relIndex), [2, 0, 1]), [0]);
  const scoreBias = g.add(bias, additiveKeyMask(g, mask));

  for (let l = 0; l < t5.numLayers; l++) {
    const b = `${p}.block.${l}.layer`;
    const x = rmsNorm(g, h, w.get(`${b}.0.layer_norm.weight`, [dModel]), `t5.${l}.attn_norm`, t5.eps);
    const proj = (name: string): Value =>
      splitHeads(g, linear(g, x, w.get(`${b}.0.SelfAttention.${name}.weight`, [H * D, dModel]), H * D, dModel, `t5.${l}.${name}`), H, D);
    const q = proj('q');
    const k = proj('k');
    const v = proj('v');
    // T5 does not scale scores by 1/sqrt(d).
    const scores = g.add(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), scoreBias);
    const ctx = g.reshape(g.transpose(g.matmul(g.softmax(scores), v), [0, 2, 1, 3]), [0, 0, H * D]);
    h = g.add(h, linear(g, ctx, w.get(`${b}.0.SelfAttention.o.weight`, [dModel, H * D]), dModel, H * D, `t5.${l}.o`));

    const y = rmsNorm(g, h, w.get(`${b}.1.layer_norm.weight`, [dModel]), `t5.${l}.ff_norm`, t5.eps);
    const ff = `${b}.1.DenseReluDense`;
    let inner: Value;
    if (t5.feedForward === 'relu') {
      inner = g.op('Relu', [linear(g, y, w.get(`${ff}.wi.weight`, [t5.dFf, dModel]), t5.dFf, dModel, `t5.${l}.wi`)]);
    } else {
      // gated-gelu uses the tanh approximation ("gelu_new").
      const gate = g.op(
        'FastGelu',
        [linear(g, y, w.get(`${ff}.wi_0.weight`, [t5.dFf, dModel]), t5.dFf, dModel, `t5.${l}.wi_0`)],
        {},
        { domain: 'com.microsoft' },
      );
      inner = g.mul(gate, linear(g, y, w.get(`${ff}.wi_1.weight`, [t5.dFf, dModel]), t5.dFf, dModel, `t5.${l}.wi_1`));
    }
    h = g.add(h, linear(g, inner, w.get(`${ff}.wo.weight`, [dModel, t5.dFf]), dModel, t5.dFf, `t5.${l}.wo`));
  }
  const last = rmsNorm(g, h, w.get(`${p}.final_layer_norm.weight`, [dModel]), 't5.final_norm', t5.eps);
  g.output(last, 'last_hidden_state', 'float', ['batch', 'tokens', dModel]);

  const projected = linear(
    g,
    last,
    w.get('enc_to_dec_proj.weight', [dec.hidden, dModel]),
    dec.hidden,
    dModel,
    'enc_to_dec_proj',
    'fp32',
    w.get('enc_to_dec_proj.bias', [dec.hidden]),
  );
  const states = g.mul(projected, g.unsqueeze(g.cast(mask, 'float'), [2]));
  g.output(states, 'encoder_hidden_states', 'float', ['batch', 'tokens', dec.hidden]);

  const dh = dec.hidden / dec.numHeads;
  for (let l = 0; l < dec.numLayers; l++) {
    const a = `decoder.model.decoder.layers.${l}.encoder_attn`;
    for (const [kind, proj] of [
      ['key', 'k_proj'],
      ['value', 'v_proj'],
    ] as const) {
      const m = linear(g, states, w.get(`${a}.${proj}.weight`, [dec.hidden, dec.hidden]), dec.hidden, dec.hidden, `cross.${l}.${proj}`);
      g.output(splitHeads(g, m, dec.numHeads, dh), `cross_${kind}.${l}`, 'float', ['batch', dec.numHeads, 'tokens', dh]);
    }
  }
  return g;
}
