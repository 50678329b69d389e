// Decoder graph: the MusicGen delay-pattern transformer, shaped for serving.
//
// One run advances R rows (a row = one guidance half of one stream, or one prompt of a blend), each at
// its own position, by T new tokens (T = 1 for a step, T > 1 for a prefill or re-prime). The caller owns
// each row's self-attention window and passes it in; onnxruntime-node wraps CPU typed arrays without a
// copy, and the graph returns only the T new key/value entries, so nothing per step grows with the
// context in JavaScript. Attention is split into "past window" and "new tokens" parts so that the window
// is never concatenated (copied) inside the graph either.
//
// inputs : input_ids   int64 [R, K, T]       codebook tokens (K codebooks; pad id = vocab size)
//          positions   int64 [R, T]          absolute position of each new token (sinusoidal table row)
//          past_length int64 [R]             valid entries at the start of each row's window
//          past_key.{l}, past_value.{l}  float [R, H, W, D]   self-attention window of layer l
//          cross_key.{l}, cross_value.{l} float [R, H, S, D]  from the text encoder graph
//          cross_mask  int64 [R, S]          1 = text token, 0 = padding / null condition
// outputs: logits  float [R, K, T, V]
//          new_kv  float [L, 2, R, H, T, D]  keys (index 0) and values (1) of the new tokens, per layer

import type { Weights } from '../checkpoint.ts';
import type { DecoderConfig } from '../config.ts';
import { GraphBuilder, type Value } from '../onnx/graph-builder.ts';
import { sinusoidalPositions } from '../sinusoidal.ts';
import { additiveKeyMask, FLOAT32_MIN, gelu, layerNorm, matmulTransB, mergeHeads, splitHeads } from './common.ts';
import { linear, type Precision } from './linear.ts';

export function buildDecoder(w: Weights, c: DecoderConfig, precision: Precision = 'fp32'): GraphBuilder {
  const g = new GraphBuilder('riverrun_decoder');
  const { hidden, numHeads: H, numCodebooks: K, vocabSize: V, numLayers: L } = c;
  const D = hidden / H;
  const p = 'decoder.model.decoder';

  const ids = g.input('input_ids', 'int64', ['rows', K, 'new']);
  const positions = g.input('positions', 'int64', ['rows', 'new']);
  const pastLength = g.input('past_length', 'int64', ['rows']);
  const past = Array.from({ length: L }, (_, l) => ({
    key: g.input(`past_key.${l}`, 'float', ['rows', H, 'window', D]),
    value: g.input(`past_value.${l}`, 'float', ['rows', H, 'window', D]),
  }));
  const cross = Array.from({ length: L }, (_, l) => ({
    key: g.input(`cross_key.${l}`, 'float', ['rows', H, 'text', D]),
    value: g.input(`cross_value.${l}`, 'float', ['rows', H, 'text', D]),
  }));
  const crossMask = additiveKeyMask(g, g.input('cross_mask', 'int64', ['rows', 'text']));

  // Input: sum of the K codebook embeddings plus the sinusoidal row of each token's position.
  let h: Value | null = null;
  for (let k = 0; k < K; k++) {
    const table = g.weight(`embed_tokens.${k}`, w.get(`${p}.embed_tokens.${k}.weight`, [V + 1, hidden]), [V + 1, hidden]);
    const e = g.gather(table, g.op('Gather', [ids, g.int(k)], { axis: 1 }));
    h = h ? g.add(h, e) : e;
  }
  if (c.scaleEmbedding) h = g.mul(h!, g.float(Math.sqrt(hidden)));
  const posName = `${p}.embed_positions.weights`;
  const posTable = w.has(posName) ? w.get(posName) : sinusoidalPositions(c.maxPositions, hidden);
  const maxPositions = posTable.length / hidden;
  h = g.add(h!, g.gather(g.weight('embed_positions', posTable, [maxPositions, hidden]), positions));

  // Masks: window entries at or after past_length are invisible; new tokens see themselves causally.
  const window = g.op('Gather', [g.op('Shape', [past[0]!.key]), g.int(2)], { axis: 0 });
  const slots = g.op('Range', [g.int(0), window, g.int(1)]);
  const valid = g.op('Less', [g.unsqueeze(slots, [0]), g.unsqueeze(pastLength, [1])]);
  const pastMask = g.unsqueeze(g.op('Where', [valid, g.float(0), g.float(FLOAT32_MIN)]), [1, 2]);
  const newCount = g.op('Gather', [g.op('Shape', [ids]), g.int(2)], { axis: 0 });
  const steps = g.op('Range', [g.int(0), newCount, g.int(1)]);
  const causal = g.op('LessOrEqual', [g.unsqueeze(steps, [0]), g.unsqueeze(steps, [1])]);
  const newMask = g.unsqueeze(g.op('Where', [causal, g.float(0), g.float(FLOAT32_MIN)]), [0, 1]);

  const newKv: Value[] = [];
  const scale = 1 / Math.sqrt(D);
  for (let l = 0; l < L; l++) {
    const a = `${p}.layers.${l}`;
    // Self-attention with q, k, v as one matmul; the 1/sqrt(D) query scale is folded into q's weights.
    const x = layerNorm(g, h, w.get(`${a}.self_attn_layer_norm.weight`), w.get(`${a}.self_attn_layer_norm.bias`), `l${l}.self_norm`);
    const qkvWeight = new Float32Array(3 * hidden * hidden);
    const qw = w.get(`${a}.self_attn.q_proj.weight`, [hidden, hidden]);
    for (let i = 0; i < qw.length; i++) qkvWeight[i] = qw[i]! * scale;
    qkvWeight.set(w.get(`${a}.self_attn.k_proj.weight`, [hidden, hidden]), hidden * hidden);
    qkvWeight.set(w.get(`${a}.self_attn.v_proj.weight`, [hidden, hidden]), 2 * hidden * hidden);
    const qkv = g.transpose(
      g.reshape(linear(g, x, qkvWeight, 3 * hidden, hidden, `l${l}.qkv`, precision), [0, 0, 3, H, D]),
      [2, 0, 3, 1, 4],
    );
    const [q, k, v] = g.node('Split', [qkv], { axis: 0 }, { outputs: 3 }).map((t) => g.squeeze(t, [0])) as [Value, Value, Value];
    newKv.push(g.concat([g.unsqueeze(k, [0, 1]), g.unsqueeze(v, [0, 1])], 1));

    const scores = g.concat([g.add(matmulTransB(g, q, past[l]!.key), pastMask), g.add(matmulTransB(g, q, k), newMask)], -1);
    const [pPast, pNew] = g.node(
      'Split',
      [g.softmax(scores, -1), g.concat([g.unsqueeze(window, [0]), g.unsqueeze(newCount, [0])], 0)],
      { axis: -1 },
      { outputs: 2 },
    ) as [Value, Value];
    const ctx = g.add(g.matmul(pPast, past[l]!.value), g.matmul(pNew, v));
    h = g.add(
      h,
      linear(
        g,
        mergeHeads(g, ctx, H, D),
        w.get(`${a}.self_attn.out_proj.weight`, [hidden, hidden]),
        hidden,
        hidden,
        `l${l}.self_out`,
        precision,
      ),
    );

    // Cross-attention over the precomputed text keys/values.
    const y = layerNorm(g, h, w.get(`${a}.encoder_attn_layer_norm.weight`), w.get(`${a}.encoder_attn_layer_norm.bias`), `l${l}.cross_norm`);
    const cq = w.get(`${a}.encoder_attn.q_proj.weight`, [hidden, hidden]).map((v2) => v2 * scale);
    const cqh = splitHeads(g, linear(g, y, cq, hidden, hidden, `l${l}.cross_q`, precision), H, D);
    const cp = g.softmax(g.add(matmulTransB(g, cqh, cross[l]!.key), crossMask), -1);
    const cctx = mergeHeads(g, g.matmul(cp, cross[l]!.value), H, D);
    h = g.add(
      h,
      linear(g, cctx, w.get(`${a}.encoder_attn.out_proj.weight`, [hidden, hidden]), hidden, hidden, `l${l}.cross_out`, precision),
    );

    const z = layerNorm(g, h, w.get(`${a}.final_layer_norm.weight`), w.get(`${a}.final_layer_norm.bias`), `l${l}.ffn_norm`);
    const inner = gelu(g, linear(g, z, w.get(`${a}.fc1.weight`, [c.ffnDim, hidden]), c.ffnDim, hidden, `l${l}.fc1`, precision));
    h = g.add(h, linear(g, inner, w.get(`${a}.fc2.weight`, [hidden, c.ffnDim]), hidden, c.ffnDim, `l${l}.fc2`, precision));
  }
  const out = layerNorm(g, h, w.get(`${p}.layer_norm.weight`), w.get(`${p}.layer_norm.bias`), 'final_norm');

  // The K heads as one [hidden, K*V] matmul, then [R, T, K, V] -> [R, K, T, V].
  const heads = new Float32Array(K * V * hidden);
  for (let k = 0; k < K; k++) heads.set(w.get(`decoder.lm_heads.${k}.weight`, [V, hidden]), k * V * hidden);
  const logits = g.transpose(
    g.reshape(linear(g, out, heads, K * V, hidden, 'lm_heads', precision === 'q4' ? 'q8' : precision), [0, 0, K, V]),
    [0, 2, 1, 3],
  );
  g.output(logits, 'logits', 'float', ['rows', K, 'new', V]);
  g.output(g.concat(newKv, 0), 'new_kv', 'float', [L, 2, 'rows', H, 'new', D]);
  return g;
}
