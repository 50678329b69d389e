// EnCodec (the 32 kHz codec MusicGen uses) as two ONNX graphs built from Hugging Face checkpoint weights.
//
// Decoder graph (`buildEncodecDecoder`): one graph for whole sequences and for a stream's windows.
//   inputs audio_codes    int64 [batch, numQuantizers, frames]   codes in [0, codebookSize)
//          context_frames int64 scalar   leading frames that only feed the first conv (0 for a whole sequence)
//          state_at       int64 scalar   context_frames < state_at <= frames (frames for a whole sequence)
//          lstm_h, lstm_c float [numLstmLayers, batch, H]   LSTM state at frame context_frames (zeros at a start)
//   output audio_values   float [batch, 1, (frames - context_frames) * hop]   hop = product of ratios (640)
//          lstm_h_at, lstm_c_at float [numLstmLayers, batch, H]   LSTM state before frame state_at
//   (optional output quantized_embeddings float [batch, codebookDim, frames] with `exposeEmbeddings`)
//   H = 2^len(ratios) * numFilters. Residual-VQ decode = sum over quantizers q of
//   `quantizer.layers.{q}.codebook.embed[code]`, then the SEANet decoder: conv(k7) -> frames
//   [context_frames, frames) only -> LSTM block (lstm(x) + x, started from lstm_h/lstm_c) -> per upsampling
//   ratio r: ELU -> ConvTranspose(kernel 2r, stride r, trimmed by r samples) -> residual unit(s) -> ELU ->
//   conv(k7) -> 1 channel. Zero state, context 0 and state_at = frames is the plain whole-sequence decode;
//   a stream carries the state from one window into the next (src/stream/codec-stream.ts, and the
//   receptive fields at the bottom of this file). Any frames - context_frames >= 1 works: convolutions whose
//   input can be shorter than their reflect padding use EnCodec's zero-append rule (see `encodecPad1d`).
// Encoder graph (`buildEncodecEncoder`):
//   input  input_values float [batch, 1, samples]   samples must be a positive multiple of hop: callers pad
//   outputs embeddings  float [batch, codebookDim, frames]  (encoder output before quantisation)
//           audio_codes int64 [batch, numQuantizers, frames] frames = samples / hop
//   SEANet encoder: conv(k7) -> per ratio r of reversed(upsampling_ratios): residual unit(s) -> ELU ->
//   conv(kernel 2r, stride r) -> LSTM block -> ELU -> conv(k7) -> hiddenSize channels; then residual VQ: for
//   each quantizer code = argmax_e -(|x|^2 - 2 x.e + |e|^2) (ArgMax keeps the first index on ties) and
//   x -= embed[code]. EnCodec's "extra" right padding of the strided convolutions is
//   ceil(L / r) * r - L, which is zero exactly when every stage length is a multiple of its stride, i.e. when
//   samples is a multiple of hop; the graph does not compute it, hence the requirement above (other lengths
//   would silently give slightly different frames at the end, not an error).
//
// Weights: weight norm is folded here (w = g * v / ||v||, norm over every dim except dim 0: the output
// channel of a Conv1d [out, in, k], the input channel of a ConvTranspose1d [in, out, k]); both the
// `weight_g`/`weight_v` and the `parametrizations.weight.original0/original1` names are accepted, as is a
// plain `weight`. LSTM gates are reordered from PyTorch (i, f, g, o) to ONNX (i, o, f, c), B = [b_ih, b_hh].
//
// Padding (config.padMode 'reflect' for the HF 32 kHz config; 'constant' pads zeros): a conv with effective
// kernel k_eff = (k - 1) * dilation + 1 and stride s pads padding_total = k_eff - s samples, floor(total / 2)
// on the right and the rest on the left. Transposed convs trim padding_total = k - s output samples the
// same way (ONNX ConvTranspose `pads`).
import type { Weights } from '../checkpoint.ts';
import type { EncodecConfig } from '../config.ts';
import { GraphBuilder, type Value } from '../onnx/graph-builder.ts';

const PREFIX = 'audio_encoder';
/** A Slice end past any length: "to the end". */
const TO_END = Number.MAX_SAFE_INTEGER;

export interface EncodecGraphOptions {
  /** Decoder only: also output `quantized_embeddings` [batch, codebookDim, frames] (for tests). */
  exposeEmbeddings?: boolean;
}

/** Width of the decoder's LSTM (H of its state inputs and outputs). */
export function encodecLstmSize(config: EncodecConfig): number {
  return 2 ** config.upsamplingRatios.length * config.numFilters;
}

/** Codes [batch, numQuantizers, frames] and an LSTM state -> audio and the LSTM state at `state_at` (header). */
export function buildEncodecDecoder(
  weights: Weights,
  config: EncodecConfig,
  numQuantizers: number,
  options: EncodecGraphOptions = {},
): GraphBuilder {
  checkQuantizers(weights, config, numQuantizers);
  const g = new GraphBuilder('encodec_decoder');
  const codes = g.input('audio_codes', 'int64', ['batch', numQuantizers, 'frames']);
  const state: LstmState = {
    contextFrames: g.input('context_frames', 'int64', []),
    stateAt: g.input('state_at', 'int64', []),
    h: g.input('lstm_h', 'float', [config.numLstmLayers, 'batch', encodecLstmSize(config)]),
    c: g.input('lstm_c', 'float', [config.numLstmLayers, 'batch', encodecLstmSize(config)]),
  };

  // Residual-VQ decode: sum of the chosen entries, in quantizer order like Hugging Face.
  let sum: Value | null = null;
  for (let q = 0; q < numQuantizers; q++) {
    const table = g.weight(`${PREFIX}.quantizer.layers.${q}.codebook.embed`, codebook(weights, config, q), [
      config.codebookSize,
      config.codebookDim,
    ]);
    const idx = g.gather(codes, g.int(q, 'q'), 1); // [batch, frames]
    const e = g.gather(table, idx, 0); // [batch, frames, dim]
    sum = sum ? g.add(sum, e) : e;
  }
  const embeddings = g.transpose(sum!, [0, 2, 1]); // [batch, dim, frames]
  if (options.exposeEmbeddings) g.output(embeddings, 'quantized_embeddings', 'float', ['batch', config.codebookDim, 'frames']);

  const ratios = config.upsamplingRatios;
  const R = config.numResidualLayers;
  const layer = (n: number) => `${PREFIX}.decoder.layers.${n}`;
  let scaling = 2 ** ratios.length;
  let rate = 1; // samples of the current stage per codec frame: a 1-frame input is `rate` long
  let n = 0;
  let x = conv(g, weights, config, embeddings, {
    prefix: `${layer(n++)}.conv`,
    inCh: config.hiddenSize,
    outCh: scaling * config.numFilters,
    kernel: config.kernelSize,
    minLength: rate,
  });
  // The context frames' conv output is wrong (the left edge's padding) and their role is done: drop them.
  const context = g.unsqueeze(state.contextFrames, [0]);
  x = g.op('Slice', [x, context, g.ints([TO_END], 'end'), g.ints([2], 'axes')]);
  const lstm = statefulLstmBlock(g, weights, config, x, `${layer(n++)}.lstm`, scaling * config.numFilters, state);
  x = lstm.y;
  for (const r of ratios) {
    const dim = scaling * config.numFilters;
    x = elu(g, x);
    n++;
    x = convTranspose(g, weights, x, { prefix: `${layer(n++)}.conv`, inCh: dim, outCh: dim / 2, kernel: 2 * r, stride: r });
    rate *= r;
    for (let j = 0; j < R; j++) x = residualUnit(g, weights, config, x, layer(n++), dim / 2, config.dilationGrowthRate ** j, rate);
    scaling /= 2;
  }
  x = elu(g, x);
  n++;
  x = conv(g, weights, config, x, {
    prefix: `${layer(n++)}.conv`,
    inCh: config.numFilters,
    outCh: config.audioChannels,
    kernel: config.lastKernelSize,
    minLength: rate,
  });
  g.output(x, 'audio_values', 'float', ['batch', config.audioChannels, 'samples']);
  g.output(lstm.h, 'lstm_h_at', 'float', [config.numLstmLayers, 'batch', encodecLstmSize(config)]);
  g.output(lstm.c, 'lstm_c_at', 'float', [config.numLstmLayers, 'batch', encodecLstmSize(config)]);
  return g;
}

/**
 * Audio [batch, 1, samples] -> embeddings [batch, codebookDim, frames] and codes [batch, numQuantizers, frames].
 * `samples` must be a positive multiple of config.hop (callers pad); see the header comment.
 */
export function buildEncodecEncoder(weights: Weights, config: EncodecConfig, numQuantizers: number): GraphBuilder {
  checkQuantizers(weights, config, numQuantizers);
  if (config.hiddenSize !== config.codebookDim) {
    throw new Error(
      `EnCodec hidden_size ${config.hiddenSize} differs from codebook_dim ${config.codebookDim}: projected quantizers are not supported`,
    );
  }
  const g = new GraphBuilder('encodec_encoder');
  const input = g.input('input_values', 'float', ['batch', config.audioChannels, 'samples']);

  const R = config.numResidualLayers;
  const layer = (n: number) => `${PREFIX}.encoder.layers.${n}`;
  let rate = config.hop; // length of a 1-frame input at the current stage
  let scaling = 1;
  let n = 0;
  let x = conv(g, weights, config, input, {
    prefix: `${layer(n++)}.conv`,
    inCh: config.audioChannels,
    outCh: config.numFilters,
    kernel: config.kernelSize,
    minLength: rate,
  });
  for (const r of [...config.upsamplingRatios].reverse()) {
    const dim = scaling * config.numFilters;
    for (let j = 0; j < R; j++) x = residualUnit(g, weights, config, x, layer(n++), dim, config.dilationGrowthRate ** j, rate);
    x = elu(g, x);
    n++;
    // Stride r, kernel 2r: the "extra" padding is zero because the length is a multiple of r (see header).
    x = conv(g, weights, config, x, { prefix: `${layer(n++)}.conv`, inCh: dim, outCh: dim * 2, kernel: 2 * r, stride: r, minLength: rate });
    rate /= r;
    scaling *= 2;
  }
  const dim = scaling * config.numFilters;
  x = lstmBlock(g, weights, config, x, `${layer(n++)}.lstm`, dim);
  x = elu(g, x);
  n++;
  x = conv(g, weights, config, x, {
    prefix: `${layer(n++)}.conv`,
    inCh: dim,
    outCh: config.hiddenSize,
    kernel: config.lastKernelSize,
    minLength: rate,
  });
  g.output(x, 'embeddings', 'float', ['batch', config.codebookDim, 'frames']);

  // Residual VQ, written like Hugging Face's EncodecEuclideanCodebook.quantize.
  let residual = g.transpose(x, [0, 2, 1]); // [batch, frames, dim]
  const codes: Value[] = [];
  for (let q = 0; q < numQuantizers; q++) {
    const embed = codebook(weights, config, q);
    const K = config.codebookSize;
    const D = config.codebookDim;
    const embedT = new Float32Array(D * K);
    const embedSq = new Float32Array(K);
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let d = 0; d < D; d++) {
        const v = embed[k * D + d]!;
        embedT[d * K + k] = v;
        s = Math.fround(s + Math.fround(v * v));
      }
      embedSq[k] = s;
    }
    const name = `${PREFIX}.quantizer.layers.${q}.codebook.embed`;
    const xSq = g.op('ReduceSum', [g.mul(residual, residual), g.ints([2], 'axes')], { keepdims: 1 }); // [batch, frames, 1]
    const dot = g.matmul(residual, g.weight(`${name}_t`, embedT, [D, K])); // [batch, frames, K]
    const dist = g.add(g.sub(xSq, g.mul(g.float(2, 'two'), dot)), g.weight(`${name}_sq`, embedSq, [K]));
    const code = g.op('ArgMax', [g.op('Neg', [dist])], { axis: 2, keepdims: 0, select_last_index: 0 }); // [batch, frames] int64
    codes.push(g.unsqueeze(code, [1]));
    if (q + 1 < numQuantizers) residual = g.sub(residual, g.gather(g.weight(name, embed, [K, D]), code, 0));
  }
  const allCodes = codes.length === 1 ? codes[0]! : g.concat(codes, 1);
  g.output(allCodes, 'audio_codes', 'int64', ['batch', numQuantizers, 'frames']);
  return g;
}

/** Largest codebook count the checkpoint holds. */
function encodecQuantizerCount(weights: Weights): number {
  let q = 0;
  while (weights.has(`${PREFIX}.quantizer.layers.${q}.codebook.embed`)) q++;
  return q;
}

function checkQuantizers(weights: Weights, config: EncodecConfig, numQuantizers: number): void {
  const available = encodecQuantizerCount(weights);
  if (!Number.isInteger(numQuantizers) || numQuantizers < 1 || numQuantizers > available) {
    throw new Error(`EnCodec: ${numQuantizers} quantizers requested, the checkpoint has ${available}`);
  }
  if (config.audioChannels !== 1) throw new Error('EnCodec: only mono codecs are supported');
}

function codebook(weights: Weights, config: EncodecConfig, q: number): Float32Array {
  return weights.get(`${PREFIX}.quantizer.layers.${q}.codebook.embed`, [config.codebookSize, config.codebookDim]);
}

function elu(g: GraphBuilder, x: Value): Value {
  return g.op('Elu', [x], { alpha: { float: 1 } });
}

/** Residual unit: ELU -> conv(k, dilation, dim -> dim / compress) -> ELU -> conv(1, -> dim), plus identity. */
function residualUnit(
  g: GraphBuilder,
  weights: Weights,
  config: EncodecConfig,
  x: Value,
  prefix: string,
  dim: number,
  dilation: number,
  minLength: number,
): Value {
  const hidden = Math.floor(dim / config.compress);
  let y = elu(g, x);
  y = conv(g, weights, config, y, {
    prefix: `${prefix}.block.1.conv`,
    inCh: dim,
    outCh: hidden,
    kernel: config.residualKernelSize,
    dilation,
    minLength,
  });
  y = elu(g, y);
  y = conv(g, weights, config, y, { prefix: `${prefix}.block.3.conv`, inCh: hidden, outCh: dim, kernel: 1, minLength });
  return g.add(x, y);
}

interface ConvSpec {
  /** Key prefix of the nn.Conv1d / nn.ConvTranspose1d, e.g. `audio_encoder.decoder.layers.0.conv`. */
  prefix: string;
  inCh: number;
  outCh: number;
  kernel: number;
  stride?: number;
  dilation?: number;
}

/** EncodecConv1d (non-causal): EnCodec padding, then Conv. `minLength`: the shortest input it can see. */
function conv(g: GraphBuilder, weights: Weights, config: EncodecConfig, x: Value, spec: ConvSpec & { minLength: number }): Value {
  const stride = spec.stride ?? 1;
  const dilation = spec.dilation ?? 1;
  const kEff = (spec.kernel - 1) * dilation + 1;
  const total = kEff - stride;
  const right = Math.floor(total / 2);
  const left = total - right;
  const w = weightNormed(weights, spec.prefix, [spec.outCh, spec.inCh, spec.kernel]);
  const b = weights.get(`${spec.prefix}.bias`, [spec.outCh]);
  const padded = encodecPad1d(g, x, left, right, config.padMode, spec.minLength);
  return g.op(
    'Conv',
    [padded, g.weight(`${spec.prefix}.weight`, w, [spec.outCh, spec.inCh, spec.kernel]), g.weight(`${spec.prefix}.bias`, b, [spec.outCh])],
    {
      kernel_shape: [spec.kernel],
      strides: [stride],
      dilations: [dilation],
      pads: [0, 0],
    },
  );
}

/** EncodecConvTranspose1d (non-causal): ConvTranspose, then trim k - stride samples (right gets the floor half). */
function convTranspose(g: GraphBuilder, weights: Weights, x: Value, spec: ConvSpec): Value {
  const stride = spec.stride ?? 1;
  const total = spec.kernel - stride;
  const right = Math.floor(total / 2);
  const left = total - right;
  // PyTorch ConvTranspose1d weight is [in, out, k], which is ONNX's ConvTranspose layout (group 1).
  const w = weightNormed(weights, spec.prefix, [spec.inCh, spec.outCh, spec.kernel]);
  const b = weights.get(`${spec.prefix}.bias`, [spec.outCh]);
  return g.op(
    'ConvTranspose',
    [x, g.weight(`${spec.prefix}.weight`, w, [spec.inCh, spec.outCh, spec.kernel]), g.weight(`${spec.prefix}.bias`, b, [spec.outCh])],
    {
      kernel_shape: [spec.kernel],
      strides: [stride],
      pads: [left, right],
    },
  );
}

/**
 * EnCodec's `_pad1d` on [batch, channels, length]: `left` / `right` samples, reflect or zeros. Reflect needs
 * length > max(left, right); EnCodec handles shorter inputs by appending max_pad - length + 1 zeros,
 * reflecting, and cutting the appended tail again. That is done in-graph only when `minLength` (the
 * shortest length this input can have) is not longer than the pad; otherwise a plain Pad suffices.
 * Exported for tests.
 */
export function encodecPad1d(
  g: GraphBuilder,
  x: Value,
  left: number,
  right: number,
  mode: 'reflect' | 'constant',
  minLength: number,
): Value {
  if (left === 0 && right === 0) return x;
  const pads = g.ints([0, 0, left, 0, 0, right], 'pads');
  if (mode === 'constant') return g.op('Pad', [x, pads], { mode: 'constant' });
  const maxPad = Math.max(left, right);
  if (minLength > maxPad) return g.op('Pad', [x, pads], { mode: 'reflect' });
  // extra = max(0, maxPad + 1 - length); zeros appended, reflected, then the result is cut to length + left + right.
  const length = g.op('Shape', [x], { start: 2, end: 3 }); // [1] int64
  const extra = g.op('Max', [g.sub(g.ints([maxPad + 1], 'maxpad'), length), g.ints([0], 'zero')]);
  const zeroPads = g.concat([g.ints([0, 0, 0, 0, 0], 'zeros'), extra], 0);
  const appended = g.op('Pad', [x, zeroPads], { mode: 'constant' });
  const reflected = g.op('Pad', [appended, pads], { mode: 'reflect' });
  const end = g.add(length, g.ints([left + right], 'lr'));
  return g.op('Slice', [reflected, g.ints([0], 'starts'), end, g.ints([2], 'axes')]);
}

/** Two-or-more layer LSTM over time with the input added back: [batch, C, T] -> [batch, C, T]. */
function lstmBlock(g: GraphBuilder, weights: Weights, config: EncodecConfig, x: Value, prefix: string, dim: number): Value {
  const seq = g.transpose(x, [2, 0, 1]); // [T, batch, C]
  let h = seq;
  for (let l = 0; l < config.numLstmLayers; l++) {
    const p = lstmParams(g, weights, prefix, l, dim);
    const [y] = g.node('LSTM', [h, p.W, p.R, p.B], { hidden_size: dim }, { outputs: 1, name: 'lstm' });
    h = g.squeeze(y!, [1]); // [T, 1, batch, H] -> [T, batch, H]
  }
  return g.transpose(g.add(h, seq), [1, 2, 0]);
}

interface LstmState {
  /** int64 scalars: the window's context frames and the frame whose state is wanted (graph inputs). */
  contextFrames: Value;
  stateAt: Value;
  /** [layers, batch, H] */
  h: Value;
  c: Value;
}

/**
 * `lstmBlock` started from `state` and split, per layer, at `stateAt - contextFrames` into two LSTM nodes:
 * ONNX LSTM returns only its final state, so the first node's final state is the state before `stateAt`
 * and the second continues from it. An LSTM over 0 steps returns garbage in onnxruntime (Y_c is left
 * uninitialised), so the second node gets one zero frame appended (its output dropped) and the first must
 * be non-empty (stateAt > contextFrames). Returns the block's output and the states [layers, batch, H].
 */
function statefulLstmBlock(
  g: GraphBuilder,
  weights: Weights,
  config: EncodecConfig,
  x: Value,
  prefix: string,
  dim: number,
  state: LstmState,
): { y: Value; h: Value; c: Value } {
  const seq = g.transpose(x, [2, 0, 1]); // [T, batch, C]
  const split = g.unsqueeze(g.sub(state.stateAt, state.contextFrames), [0]); // [1]
  const time = g.ints([0], 'axes');
  const hs: Value[] = [];
  const cs: Value[] = [];
  let h = seq;
  for (let l = 0; l < config.numLstmLayers; l++) {
    const p = lstmParams(g, weights, prefix, l, dim);
    const h0 = g.slice(state.h, [l], [l + 1], [0]); // [1, batch, H]
    const c0 = g.slice(state.c, [l], [l + 1], [0]);
    const head = g.op('Slice', [h, g.ints([0], 'start'), split, time]);
    const rest = g.op('Pad', [g.op('Slice', [h, split, g.ints([TO_END], 'end'), time]), g.ints([0, 0, 0, 1, 0, 0], 'pads')]);
    const [y1, h1, c1] = g.node('LSTM', [head, p.W, p.R, p.B, null, h0, c0], { hidden_size: dim }, { outputs: 3, name: 'lstm' });
    const [y2] = g.node('LSTM', [rest, p.W, p.R, p.B, null, h1!, c1!], { hidden_size: dim }, { outputs: 1, name: 'lstm' });
    const y2Real = g.op('Slice', [y2!, g.ints([0], 'start'), g.ints([-1], 'end'), time]);
    h = g.squeeze(g.concat([y1!, y2Real], 0), [1]); // [T, 1, batch, H] -> [T, batch, H]
    hs.push(h1!);
    cs.push(c1!);
  }
  const stack = (v: Value[]) => (v.length === 1 ? v[0]! : g.concat(v, 0));
  return { y: g.transpose(g.add(h, seq), [1, 2, 0]), h: stack(hs), c: stack(cs) };
}

/** Layer l's LSTM weights in ONNX layout (W, R [1, 4H, H], B [1, 8H]) from PyTorch's. */
function lstmParams(g: GraphBuilder, weights: Weights, prefix: string, l: number, dim: number): { W: Value; R: Value; B: Value } {
  const wIh = reorderGates(weights.get(`${prefix}.weight_ih_l${l}`, [4 * dim, dim]));
  const wHh = reorderGates(weights.get(`${prefix}.weight_hh_l${l}`, [4 * dim, dim]));
  const bIh = reorderGates(weights.get(`${prefix}.bias_ih_l${l}`, [4 * dim]));
  const bHh = reorderGates(weights.get(`${prefix}.bias_hh_l${l}`, [4 * dim]));
  const bias = new Float32Array(8 * dim);
  bias.set(bIh, 0);
  bias.set(bHh, 4 * dim);
  return {
    W: g.weight(`${prefix}.W_l${l}`, wIh, [1, 4 * dim, dim]),
    R: g.weight(`${prefix}.R_l${l}`, wHh, [1, 4 * dim, dim]),
    B: g.weight(`${prefix}.B_l${l}`, bias, [1, 8 * dim]),
  };
}

/** Rows in PyTorch gate blocks (i, f, g, o) -> ONNX order (i, o, f, c). Works for weights and biases. */
function reorderGates(w: Float32Array): Float32Array {
  const block = w.length / 4;
  const out = new Float32Array(w.length);
  const order = [0, 3, 1, 2]; // ONNX gate j takes PyTorch block order[j]
  for (let j = 0; j < 4; j++) out.set(w.subarray(order[j]! * block, (order[j]! + 1) * block), j * block);
  return out;
}

/** The effective conv weight of `prefix`: weight norm folded (norm over all dims but dim 0), or a plain weight. */
export function weightNormed(weights: Weights, prefix: string, shape: [number, number, number]): Float32Array {
  const gNames = [`${prefix}.weight_g`, `${prefix}.parametrizations.weight.original0`];
  const vNames = [`${prefix}.weight_v`, `${prefix}.parametrizations.weight.original1`];
  if (!gNames.some((n) => weights.has(n)) && weights.has(`${prefix}.weight`)) return weights.get(`${prefix}.weight`, shape);
  const gain = weights.first(gNames, [shape[0], 1, 1]);
  const v = weights.first(vNames, shape);
  const per = shape[1] * shape[2];
  const out = new Float32Array(v.length);
  for (let i = 0; i < shape[0]; i++) {
    let ss = 0;
    for (let j = 0; j < per; j++) ss += v[i * per + j]! ** 2;
    const scale = Math.fround(gain[i]! / Math.fround(Math.sqrt(ss)));
    for (let j = 0; j < per; j++) out[i * per + j] = v[i * per + j]! * scale;
  }
  return out;
}

// Receptive fields, for chunked (streaming) decoding (measured on the tiny fixture; test/encodec.test.ts
// and test/codec-stream.test.ts check them):
// * Ahead: decoding frames [0, n) gives exactly the full-sequence audio up to sample (n - 4) * 640 + 158;
//   the first conv looks 3 frames ahead, the upsampling path (transposed convs, residual convs, final conv)
//   a little under one frame more, and the right edge's reflect padding is wrong past that. So a window
//   needs 4 frames of lookahead, and the LSTM may only advance over frames whose first-conv output is final
//   (not the last 3 known).
// * Behind: the first conv reaches 3 frames back, the upsampling path under one frame. With the LSTM state
//   carried in (lstm_h, lstm_c), a window whose LSTM starts 1 frame before its first emitted frame, with 3
//   frames (context_frames) before that for the first conv, gives the whole-sequence audio up to float
//   rounding (src/stream/codec-stream.ts); with a zero
//   state instead the LSTM would need ~20+ frames to forget its start (errors ~1e-4 on the tiny model).
