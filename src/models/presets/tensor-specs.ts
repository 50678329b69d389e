// Every tensor of a MusicGen checkpoint for a config.json, with the initialisation used for random weights:
// magnitudes are chosen so that activations stay O(1).
import { parseMusicgenConfig } from '../config.ts';

type Json = Record<string, unknown>;

type Init =
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'const'; value: number }
  | { kind: 'sinusoidal' };

export interface TensorSpec {
  name: string;
  shape: number[];
  init: Init;
  /** PRNG stream key: tensors with the same key get the same values (tied weights). */
  stream: string;
}

const normal = (std: number, mean = 0): Init => ({ kind: 'normal', mean, std });

/**
 * Every tensor of a Hugging Face `MusicgenForConditionalGeneration` checkpoint with this config.json,
 * in model order, with the initialisation used for random checkpoints.
 */
export function tensorSpecs(rawConfig: Json, file = 'config.json'): TensorSpec[] {
  const cfg = parseMusicgenConfig(rawConfig, file);
  const specs: TensorSpec[] = [];
  const add = (name: string, shape: number[], init: Init, stream = name): void => {
    specs.push({ name, shape, init, stream });
  };
  const lnWeight = normal(0.1, 1);

  // T5 encoder.
  const t5 = cfg.textEncoder;
  const inner = t5.numHeads * t5.dKv;
  add('text_encoder.shared.weight', [t5.vocabSize, t5.dModel], normal(1), 'text_encoder.shared');
  add('text_encoder.encoder.embed_tokens.weight', [t5.vocabSize, t5.dModel], normal(1), 'text_encoder.shared');
  for (let i = 0; i < t5.numLayers; i++) {
    const p = `text_encoder.encoder.block.${i}.layer`;
    add(`${p}.0.SelfAttention.q.weight`, [inner, t5.dModel], normal((t5.dModel * t5.dKv) ** -0.5));
    add(`${p}.0.SelfAttention.k.weight`, [inner, t5.dModel], normal(t5.dModel ** -0.5));
    add(`${p}.0.SelfAttention.v.weight`, [inner, t5.dModel], normal(t5.dModel ** -0.5));
    add(`${p}.0.SelfAttention.o.weight`, [t5.dModel, inner], normal(inner ** -0.5));
    if (i === 0) add(`${p}.0.SelfAttention.relative_attention_bias.weight`, [t5.numBuckets, t5.numHeads], normal(1));
    add(`${p}.0.layer_norm.weight`, [t5.dModel], lnWeight);
    if (t5.feedForward === 'relu') {
      add(`${p}.1.DenseReluDense.wi.weight`, [t5.dFf, t5.dModel], normal(t5.dModel ** -0.5));
    } else {
      add(`${p}.1.DenseReluDense.wi_0.weight`, [t5.dFf, t5.dModel], normal(t5.dModel ** -0.5));
      add(`${p}.1.DenseReluDense.wi_1.weight`, [t5.dFf, t5.dModel], normal(t5.dModel ** -0.5));
    }
    add(`${p}.1.DenseReluDense.wo.weight`, [t5.dModel, t5.dFf], normal(t5.dFf ** -0.5));
    add(`${p}.1.layer_norm.weight`, [t5.dModel], lnWeight);
  }
  add('text_encoder.encoder.final_layer_norm.weight', [t5.dModel], lnWeight);

  // Projection of the text states to the decoder width (only when the widths differ, as in HF).
  const dec = cfg.decoder;
  if (t5.dModel !== dec.hidden) {
    add('enc_to_dec_proj.weight', [dec.hidden, t5.dModel], normal(t5.dModel ** -0.5));
    add('enc_to_dec_proj.bias', [dec.hidden], normal(0.5));
  }

  // MusicGen decoder.
  const h = dec.hidden;
  for (let k = 0; k < dec.numCodebooks; k++) add(`decoder.model.decoder.embed_tokens.${k}.weight`, [dec.vocabSize + 1, h], normal(0.5));
  add('decoder.model.decoder.embed_positions.weights', [dec.maxPositions, h], { kind: 'sinusoidal' });
  for (let i = 0; i < dec.numLayers; i++) {
    const p = `decoder.model.decoder.layers.${i}`;
    for (const attn of ['self_attn', 'encoder_attn']) {
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) add(`${p}.${attn}.${proj}.weight`, [h, h], normal(h ** -0.5));
    }
    for (const ln of ['self_attn_layer_norm', 'encoder_attn_layer_norm', 'final_layer_norm']) {
      add(`${p}.${ln}.weight`, [h], lnWeight);
      add(`${p}.${ln}.bias`, [h], normal(0.1));
    }
    add(`${p}.fc1.weight`, [dec.ffnDim, h], normal(h ** -0.5));
    add(`${p}.fc2.weight`, [h, dec.ffnDim], normal(dec.ffnDim ** -0.5));
  }
  add('decoder.model.decoder.layer_norm.weight', [h], lnWeight);
  add('decoder.model.decoder.layer_norm.bias', [h], normal(0.1));
  for (let k = 0; k < dec.numCodebooks; k++) add(`decoder.lm_heads.${k}.weight`, [dec.vocabSize, h], normal(h ** -0.5));

  // EnCodec (SEANet encoder/decoder with weight-normed convolutions, LSTM, residual VQ).
  const c = cfg.codec;
  const conv = (prefix: string, cin: number, cout: number, k: number, gain = 1): void => {
    add(`${prefix}.conv.weight_g`, [cout, 1, 1], normal(0.1 * gain, gain));
    add(`${prefix}.conv.weight_v`, [cout, cin, k], normal(1));
    add(`${prefix}.conv.bias`, [cout], normal(0.05));
  };
  // Transposed conv: weight [in, out, k], normalised per input channel. Each output sample sums
  // in * k / stride taps of size g / sqrt(out * k): g = sqrt(out * stride / in) keeps the variance.
  const convT = (prefix: string, cin: number, cout: number, stride: number): void => {
    const gain = Math.sqrt((cout * stride) / cin);
    add(`${prefix}.conv.weight_g`, [cin, 1, 1], normal(0.1 * gain, gain));
    add(`${prefix}.conv.weight_v`, [cin, cout, 2 * stride], normal(1));
    add(`${prefix}.conv.bias`, [cout], normal(0.05));
  };
  const resblock = (prefix: string, dim: number): void => {
    const hidden = Math.floor(dim / c.compress);
    conv(`${prefix}.block.1`, dim, hidden, c.residualKernelSize);
    conv(`${prefix}.block.3`, hidden, dim, 1);
  };
  const lstm = (prefix: string, dim: number): void => {
    const bound = dim ** -0.5;
    for (let l = 0; l < c.numLstmLayers; l++) {
      add(`${prefix}.lstm.weight_ih_l${l}`, [4 * dim, dim], { kind: 'uniform', bound });
      add(`${prefix}.lstm.weight_hh_l${l}`, [4 * dim, dim], { kind: 'uniform', bound });
      add(`${prefix}.lstm.bias_ih_l${l}`, [4 * dim], { kind: 'uniform', bound });
      add(`${prefix}.lstm.bias_hh_l${l}`, [4 * dim], { kind: 'uniform', bound });
    }
  };
  const ratios = c.upsamplingRatios;
  const top = c.numFilters * 2 ** ratios.length;
  {
    const p = 'audio_encoder.encoder.layers';
    let n = 0;
    conv(`${p}.${n++}`, c.audioChannels, c.numFilters, c.kernelSize);
    let scale = c.numFilters;
    for (const ratio of [...ratios].reverse()) {
      for (let j = 0; j < c.numResidualLayers; j++) resblock(`${p}.${n++}`, scale);
      n++; // ELU
      conv(`${p}.${n++}`, scale, scale * 2, ratio * 2);
      scale *= 2;
    }
    lstm(`${p}.${n++}`, top);
    n++; // ELU
    conv(`${p}.${n++}`, top, c.hiddenSize, c.lastKernelSize);
  }
  {
    const p = 'audio_encoder.decoder.layers';
    let n = 0;
    conv(`${p}.${n++}`, c.hiddenSize, top, c.kernelSize);
    lstm(`${p}.${n++}`, top);
    let scale = top;
    for (const ratio of ratios) {
      n++; // ELU
      convT(`${p}.${n++}`, scale, scale / 2, ratio);
      for (let j = 0; j < c.numResidualLayers; j++) resblock(`${p}.${n++}`, scale / 2);
      scale /= 2;
    }
    n++; // ELU
    // The last conv is quieter than the rest so that the random model's audio is mostly in [-1, 1].
    conv(`${p}.${n++}`, c.numFilters, c.audioChannels, c.lastKernelSize, 0.25);
  }
  const numQuantizers = quantizerCount(rawConfig, c.samplingRate, c.hop);
  const codebookStd = [0.4, 0.3, 0.2, 0.15];
  for (let q = 0; q < numQuantizers; q++) {
    const p = `audio_encoder.quantizer.layers.${q}.codebook`;
    const std = codebookStd[q] ?? 0.15;
    add(`${p}.inited`, [1], { kind: 'const', value: 1 });
    add(`${p}.cluster_size`, [c.codebookSize], { kind: 'const', value: 1 });
    add(`${p}.embed`, [c.codebookSize, c.codebookDim], normal(std), p);
    add(`${p}.embed_avg`, [c.codebookSize, c.codebookDim], normal(std), p);
  }
  return specs;
}

/** HF EncodecModel: quantizers for the largest target bandwidth (2.2 kbps at 50 frames/s -> 4). */
function quantizerCount(rawConfig: Json, samplingRate: number, hop: number): number {
  const enc = rawConfig.audio_encoder as Json;
  const bw = enc.target_bandwidths;
  const frameRate = Math.ceil(samplingRate / hop);
  if (!Array.isArray(bw) || bw.length === 0 || !bw.every((x) => typeof x === 'number')) return 4;
  return Math.floor((1000 * Math.max(...(bw as number[]))) / (frameRate * 10));
}
