// Random MusicGen checkpoints in the exact Hugging Face layout (config.json, generation_config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json), for tests and
// for a default model that works without a download.
//
// * `tiny`: toy dimensions (T5 d_model 32 / 2 layers, decoder hidden 64 / 2 layers, EnCodec with 4
//   base filters) but the real codebook size (2048) and audio rate (32 kHz, 50 frames/s), so that every
//   code path of the server runs, in real time, on a couple of CPU cores.
// * `small`: facebook/musicgen-small's exact dimensions (~2.5 GB of float32), streamed to disk tensor
//   by tensor in bounded memory.
//
// Weights come from a seeded PRNG (xoshiro128**, one independent stream per tensor keyed by the
// seed and the tensor's name) with magnitudes chosen so that activations stay O(1): see `tensorSpecs`.
// config.json carries `"riverrun_random": true` so the server can tell users the model is noise.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseMusicgenConfig } from './config.ts';

export type Preset = 'tiny' | 'small';
export const PRESETS: readonly Preset[] = ['tiny', 'small'];

export function isPreset(x: string): x is Preset {
  return (PRESETS as readonly string[]).includes(x);
}

export interface WriteRandomCheckpointOptions {
  /** PRNG seed, an integer in [0, 2^32). Default 0. Same seed, same bytes. */
  seed?: number;
  /** Called after every chunk of model.safetensors with bytes of tensor data written so far / in all. */
  onProgress?: (done: number, total: number) => void;
}

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------
// Dimensions

interface PresetDims {
  t5: { dModel: number; dKv: number; dFf: number; layers: number; heads: number };
  decoder: { hidden: number; layers: number; heads: number; ffn: number; maxPositions: number };
  encodec: { hiddenSize: number; numFilters: number; codebookDim: number };
  /** Tokenizer (and text_encoder.vocab_size) size; undefined = just the built-in pieces. */
  textVocab: number | undefined;
  maxLength: number;
}

const DIMS: Record<Preset, PresetDims> = {
  tiny: {
    t5: { dModel: 32, dKv: 8, dFf: 64, layers: 2, heads: 4 },
    decoder: { hidden: 64, layers: 2, heads: 4, ffn: 128, maxPositions: 2048 },
    encodec: { hiddenSize: 16, numFilters: 4, codebookDim: 16 },
    textVocab: undefined,
    maxLength: 1500,
  },
  small: {
    t5: { dModel: 768, dKv: 64, dFf: 3072, layers: 12, heads: 12 },
    decoder: { hidden: 1024, layers: 24, heads: 16, ffn: 4096, maxPositions: 2048 },
    encodec: { hiddenSize: 128, numFilters: 64, codebookDim: 128 },
    textVocab: 32128,
    maxLength: 1500,
  },
};

const CODEBOOK_SIZE = 2048;

/** The config.json of a preset (without the seed, which writeRandomCheckpoint adds). */
export function presetConfig(preset: Preset): Json {
  const d = DIMS[preset];
  const vocab = presetVocab(preset).length;
  return {
    riverrun_random: true,
    _name_or_path: `riverrun/random-${preset}`,
    architectures: ['MusicgenForConditionalGeneration'],
    model_type: 'musicgen',
    is_encoder_decoder: true,
    torch_dtype: 'float32',
    text_encoder: {
      architectures: ['T5EncoderModel'],
      model_type: 't5',
      vocab_size: vocab,
      d_model: d.t5.dModel,
      d_kv: d.t5.dKv,
      d_ff: d.t5.dFf,
      num_layers: d.t5.layers,
      num_decoder_layers: d.t5.layers,
      num_heads: d.t5.heads,
      relative_attention_num_buckets: 32,
      relative_attention_max_distance: 128,
      dropout_rate: 0.1,
      layer_norm_epsilon: 1e-6,
      initializer_factor: 1.0,
      feed_forward_proj: 'relu',
      dense_act_fn: 'relu',
      is_gated_act: false,
      is_encoder_decoder: true,
      use_cache: true,
      tie_word_embeddings: true,
      n_positions: 512,
      pad_token_id: 0,
      eos_token_id: 1,
      decoder_start_token_id: 0,
    },
    audio_encoder: {
      architectures: ['EncodecModel'],
      model_type: 'encodec',
      target_bandwidths: [2.2],
      sampling_rate: 32000,
      audio_channels: 1,
      normalize: false,
      chunk_length_s: null,
      overlap: null,
      hidden_size: d.encodec.hiddenSize,
      num_filters: d.encodec.numFilters,
      num_residual_layers: 1,
      upsampling_ratios: [8, 5, 4, 4],
      norm_type: 'weight_norm',
      kernel_size: 7,
      last_kernel_size: 7,
      residual_kernel_size: 3,
      dilation_growth_rate: 2,
      use_causal_conv: false,
      pad_mode: 'reflect',
      compress: 2,
      num_lstm_layers: 2,
      trim_right_ratio: 1.0,
      codebook_size: CODEBOOK_SIZE,
      codebook_dim: d.encodec.codebookDim,
      use_conv_shortcut: false,
      torch_dtype: 'float32',
    },
    decoder: {
      model_type: 'musicgen_decoder',
      vocab_size: CODEBOOK_SIZE,
      max_position_embeddings: d.decoder.maxPositions,
      num_hidden_layers: d.decoder.layers,
      ffn_dim: d.decoder.ffn,
      num_attention_heads: d.decoder.heads,
      layerdrop: 0.0,
      use_cache: true,
      activation_function: 'gelu',
      hidden_size: d.decoder.hidden,
      dropout: 0.1,
      attention_dropout: 0.0,
      activation_dropout: 0.0,
      initializer_factor: 0.02,
      scale_embedding: false,
      num_codebooks: 4,
      audio_channels: 1,
      pad_token_id: CODEBOOK_SIZE,
      bos_token_id: CODEBOOK_SIZE,
      eos_token_id: null,
      tie_word_embeddings: false,
    },
  };
}

/** generation_config.json: musicgen-small's sampling defaults. */
export function presetGenerationConfig(preset: Preset): Json {
  return {
    bos_token_id: CODEBOOK_SIZE,
    decoder_start_token_id: CODEBOOK_SIZE,
    pad_token_id: CODEBOOK_SIZE,
    do_sample: true,
    guidance_scale: 3.0,
    max_length: DIMS[preset].maxLength,
    top_k: 250,
  };
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer (T5-style SentencePiece Unigram)

const SPECIALS = ['<pad>', '</s>', '<unk>'] as const;

// Words a music prompt is made of, roughly most useful first (earlier = higher unigram score).
const WORDS = `
a an the and or with without of in on for to from by at into over under like style mood vibe
inspired featuring feat song track music tune piece instrumental sound sounds beat beats loop loops
slow fast upbeat downbeat mid tempo bpm calm relaxing relaxed peaceful happy sad dark bright warm cold
melancholic melancholy uplifting energetic aggressive heavy light soft loud gentle dreamy ethereal
mysterious epic emotional romantic nostalgic hopeful tense suspenseful scary eerie haunting spooky
playful funky groovy bouncy driving hypnotic atmospheric spacious lush rich deep thick thin crisp punchy
distorted clean dirty gritty smooth mellow lazy sleepy intense powerful majestic triumphant heroic sweet
cute quirky weird strange minimal minimalistic repetitive simple complex catchy melodic harmonic rhythmic
chill cozy hazy dusty glitchy airy floating
ambient techno house deep trance dubstep drum jungle hiphop hip hop rap trap lofi lo fi jazz jazzy blues
rock metal punk pop indie folk country classical orchestral orchestra cinematic soundtrack score
electronic edm disco funk soul reggae dub ska latin salsa bossa nova samba tango flamenco afrobeat gospel
opera baroque synthwave vaporwave chillwave chiptune industrial grunge shoegaze garage breakbeat
downtempo chillout idm glitch noise drone experimental psychedelic progressive acoustic electro dance
world celtic medieval trailer game video retro vintage modern futuristic
piano keys organ synth synthesizer synths pad pads lead arp arpeggio arpeggios bass bassline sub guitar
guitars electric strings violin violins viola cello contrabass harp flute clarinet oboe bassoon
saxophone sax trumpet trombone horn horns tuba brass woodwind woodwinds drums kick snare hihat hihats hat
hats cymbal cymbals toms percussion congas bongos tabla shaker tambourine claps clap bells chimes
marimba xylophone vibraphone glockenspiel kalimba sitar koto banjo mandolin ukulele accordion harmonica
bagpipes didgeridoo vocals vocal voice voices singing chant choir humming whistle sample samples rhodes
wurlitzer moog
melody melodies harmony rhythm key major minor chord chords progression scale note notes tone riff riffs
solo groove swing shuffle syncopated reverb delay echo filter filtered sidechain compressed saturated
analog digital tape vinyl crackle hiss fade intro outro verse chorus bridge drop build buildup breakdown
climax ending background texture layer layers ambience soundscape
night morning evening rain ocean waves forest space city summer winter autumn spring sunset sunrise beach
party club festival study studying sleep meditation yoga workout running gaming movie film scene road
trip coffee shop cafe lounge elevator
60 70 80 90 100 110 120 128 130 140 150 160 170 174 180 80s 90s 70s 8bit 808 909
`;

/** Score of the i-th word piece: words beat spelling them out letter by letter. */
const wordScore = (i: number): number => -(3 + i * 0.01);
const CHAR_SCORE_PREFIXED = -8.5;
const CHAR_SCORE = -9.5;

function builtinVocab(): Array<[string, number]> {
  const out: Array<[string, number]> = SPECIALS.map((s) => [s, 0]);
  const seen = new Set<string>(SPECIALS);
  const add = (piece: string, score: number): void => {
    if (seen.has(piece)) return;
    seen.add(piece);
    out.push([piece, score]);
  };
  add('\u2581', -2.5);
  WORDS.split(/\s+/)
    .filter((w) => w.length > 0)
    .forEach((w, i) => add(`\u2581${w}`, wordScore(i)));
  // Every printable ASCII character, alone and at the start of a word: any ASCII text tokenizes
  // without <unk>.
  for (let c = 0x21; c <= 0x7e; c++) add(`\u2581${String.fromCharCode(c)}`, CHAR_SCORE_PREFIXED - (c - 0x21) * 1e-3);
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), CHAR_SCORE - (c - 0x21) * 1e-3);
  return out;
}

/** Filler sub-word pieces (letter bigrams/trigrams) that bring the vocabulary to `size` entries. */
function padVocab(vocab: Array<[string, number]>, size: number): void {
  const seen = new Set(vocab.map(([p]) => p));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const candidates = function* (): Generator<string> {
    for (const prefix of ['\u2581', '']) for (const a of letters) for (const b of letters) yield `${prefix}${a}${b}`;
    for (const prefix of ['\u2581', ''])
      for (const a of letters) for (const b of letters) for (const c of letters) yield `${prefix}${a}${b}${c}`;
  };
  let i = 0;
  for (const piece of candidates()) {
    if (vocab.length >= size) break;
    if (seen.has(piece)) continue;
    seen.add(piece);
    vocab.push([piece, -12 - i * 1e-4]);
    i++;
  }
  if (vocab.length !== size) throw new Error(`cannot pad the tokenizer vocabulary to ${size} pieces`);
}

const vocabCache = new Map<Preset, Array<[string, number]>>();

/** [piece, score] for every id of the preset's tokenizer. Ids 0/1/2 = <pad>/</s>/<unk>. */
export function presetVocab(preset: Preset): ReadonlyArray<readonly [string, number]> {
  let v = vocabCache.get(preset);
  if (!v) {
    v = builtinVocab();
    const size = DIMS[preset].textVocab;
    if (size !== undefined) padVocab(v, size);
    vocabCache.set(preset, v);
  }
  return v;
}

export interface TokenizerFiles {
  'tokenizer.json': Json;
  'tokenizer_config.json': Json;
  'special_tokens_map.json': Json;
}

/** tokenizer.json, tokenizer_config.json and special_tokens_map.json in T5TokenizerFast's layout. */
export function presetTokenizerFiles(preset: Preset): TokenizerFiles {
  const vocab = presetVocab(preset);
  const added = SPECIALS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true };
  const tokenizer: Json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 2, vocab: vocab.map(([p, s]) => [p, s]), byte_fallback: false },
  };
  const addedDecoder: Record<string, Json> = {};
  for (const a of added) {
    const { id, ...rest } = a;
    addedDecoder[String(id)] = rest;
  }
  return {
    'tokenizer.json': tokenizer,
    'tokenizer_config.json': {
      added_tokens_decoder: addedDecoder,
      additional_special_tokens: [],
      clean_up_tokenization_spaces: true,
      eos_token: '</s>',
      extra_ids: 0,
      model_max_length: 512,
      pad_token: '<pad>',
      tokenizer_class: 'T5Tokenizer',
      unk_token: '<unk>',
    },
    'special_tokens_map.json': { eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' },
  };
}

// ---------------------------------------------------------------------------------------------------
// Tensor layout

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

// ---------------------------------------------------------------------------------------------------
// Values

/**
 * MusicGen's sinusoidal position table [numPositions, dim]: row t = [cos(t f_i) for i < half,
 * sin(t f_i) for i < half], f_i = exp(-i ln(10000) / (half - 1)), with every step rounded to float32
 * as PyTorch computes it (odd dims get a zero last column).
 */
export function sinusoidalPositions(numPositions: number, dim: number, firstRow = 0, out?: Float32Array): Float32Array {
  const half = Math.floor(dim / 2);
  const table = out ?? new Float32Array(numPositions * dim);
  const step = Math.fround(-Math.log(10000) / (half - 1));
  const freq = new Float64Array(half);
  for (let i = 0; i < half; i++) freq[i] = Math.fround(Math.exp(Math.fround(i * step)));
  for (let r = 0; r < numPositions; r++) {
    const t = firstRow + r;
    const row = r * dim;
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(t * freq[i]!);
      table[row + i] = Math.cos(arg);
      table[row + half + i] = Math.sin(arg);
    }
    if (dim % 2 === 1) table[row + dim - 1] = 0;
  }
  return table;
}

// Normal samples from one 32-bit draw: a 4096-interval piecewise-linear inverse CDF of N(0, 1),
// rescaled to unit variance exactly (tails cut at ~3.7 sigma).
const NORMAL_BITS = 12; // fillNormal hard-codes the 12/20 bit split
let normalTable: { base: Float64Array; delta: Float64Array } | undefined;

function getNormalTable(): { base: Float64Array; delta: Float64Array } {
  if (normalTable) return normalTable;
  const n = 1 << NORMAL_BITS;
  // CDF on a fine grid by the trapezoid rule, then inverted by linear interpolation.
  const lo = -8;
  const h = 1 / 1024;
  const steps = 16 * 1024;
  const cdf = new Float64Array(steps + 1);
  const pdf = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  for (let i = 1; i <= steps; i++) cdf[i] = cdf[i - 1]! + 0.5 * h * (pdf(lo + (i - 1) * h) + pdf(lo + i * h));
  const total = cdf[steps]!;
  const quantile = (p: number): number => {
    const target = p * total;
    let a = 0;
    let b = steps;
    while (b - a > 1) {
      const m = (a + b) >> 1;
      if (cdf[m]! < target) a = m;
      else b = m;
    }
    const f = (target - cdf[a]!) / (cdf[b]! - cdf[a]!);
    return lo + (a + f) * h;
  };
  const x = new Float64Array(n + 1);
  for (let j = 1; j < n; j++) x[j] = quantile(j / n);
  x[0] = quantile(0.25 / n);
  x[n] = -x[0]!;
  // Each interval is hit with probability 1/n and is uniform on [x_j, x_j+1].
  let m2 = 0;
  for (let j = 0; j < n; j++) m2 += (x[j]! * x[j]! + x[j]! * x[j + 1]! + x[j + 1]! * x[j + 1]!) / 3;
  const scale = 1 / Math.sqrt(m2 / n);
  const base = new Float64Array(n);
  const delta = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    base[j] = x[j]! * scale;
    delta[j] = (x[j + 1]! - x[j]!) * scale;
  }
  normalTable = { base, delta };
  return normalTable;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One splitmix32 step: returns [output, next state]. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

// The hot loops live in small standalone functions (V8 optimises them far better than the same loop
// inside a larger method). Both step xoshiro128** with its state in locals.

/** `mean + std * N(0, 1)` samples. */
function fillNormal(out: Float32Array, state: Int32Array, mean: number, std: number): void {
  const { base, delta } = getNormalTable();
  let s0 = state[0]!;
  let s1 = state[1]!;
  let s2 = state[2]!;
  let s3 = state[3]!;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    // Top 12 bits pick the interval of the inverse CDF, the low 20 the position inside it.
    const j = r >>> 20;
    const frac = (r & 0xfffff) * 9.5367431640625e-7;
    out[i] = mean + std * (base[j]! + frac * delta[j]!);
  }
  state[0] = s0;
  state[1] = s1;
  state[2] = s2;
  state[3] = s3;
}

/** Uniform samples in [-bound, bound). */
function fillUniform(out: Float32Array, state: Int32Array, bound: number): void {
  const scale = (2 * bound) / 4294967296;
  let s0 = state[0]!;
  let s1 = state[1]!;
  let s2 = state[2]!;
  let s3 = state[3]!;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[i] = r * scale - bound;
  }
  state[0] = s0;
  state[1] = s1;
  state[2] = s2;
  state[3] = s3;
}

/** Deterministic stream of tensor values (xoshiro128** keyed by seed and stream name). */
class TensorFiller {
  private s = new Int32Array(4);
  private pos = 0;

  constructor(
    private readonly spec: TensorSpec,
    seed: number,
  ) {
    let [mixed] = splitmix32(seed >>> 0);
    let state = (mixed ^ fnv1a(spec.stream)) | 0;
    for (let i = 0; i < 4; i++) {
      [mixed, state] = splitmix32(state);
      this.s[i] = mixed | 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** Writes the next `out.length` values of the tensor (row-major). */
  fill(out: Float32Array): void {
    const init = this.spec.init;
    const n = out.length;
    switch (init.kind) {
      case 'const':
        out.fill(init.value);
        break;
      case 'sinusoidal': {
        const dim = this.spec.shape[1]!;
        if (this.pos % dim !== 0 || n % dim !== 0) throw new Error('sinusoidal table must be filled by whole rows');
        sinusoidalPositions(n / dim, dim, this.pos / dim, out);
        break;
      }
      case 'normal':
        fillNormal(out, this.s, init.mean, init.std);
        break;
      case 'uniform':
        fillUniform(out, this.s, init.bound);
        break;
    }
    this.pos += n;
  }
}

// ---------------------------------------------------------------------------------------------------
// Writing

const CHUNK_ELEMENTS = 1 << 20;

/** Streams a safetensors file (same layout as writeSafetensors) whose tensors are generated on the fly. */
function writeGeneratedSafetensors(
  path: string,
  specs: TensorSpec[],
  seed: number,
  onProgress?: (done: number, total: number) => void,
): void {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Json = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const s of sorted) {
    if (s.name in header) throw new Error(`duplicate tensor ${s.name}`);
    const bytes = 4 * s.shape.reduce((a, b) => a * b, 1);
    header[s.name] = { dtype: 'F32', shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const total = offset;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));

  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  let ok = false;
  try {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    const chunk = new Float32Array(CHUNK_ELEMENTS);
    let done = 0;
    for (const s of sorted) {
      const count = s.shape.reduce((a, b) => a * b, 1);
      const filler = new TensorFiller(s, seed);
      // Whole rows per chunk (the sinusoidal table is generated row by row).
      const rowLen = s.shape.length > 1 ? s.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
      const perChunk = Math.max(rowLen, Math.floor(CHUNK_ELEMENTS / rowLen) * rowLen);
      const buf = perChunk <= CHUNK_ELEMENTS ? chunk : new Float32Array(perChunk);
      for (let at = 0; at < count; at += perChunk) {
        const view = buf.subarray(0, Math.min(perChunk, count - at));
        filler.fill(view);
        writeAll(fd, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
        done += view.byteLength;
        onProgress?.(done, total);
      }
    }
    if (total === 0) onProgress?.(0, 0);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(tmp, { force: true });
  }
  renameSync(tmp, path);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.byteLength; ) at += writeSync(fd, bytes, at, Math.min(1 << 28, bytes.byteLength - at));
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Writes a random checkpoint of `preset` into `dir` (created if needed): config.json,
 * generation_config.json, tokenizer files, and model.safetensors last (written to
 * model.safetensors.partial and renamed, so a complete model.safetensors means a complete checkpoint).
 * Refuses to overwrite a directory holding a real (non-random) checkpoint.
 */
export function writeRandomCheckpoint(dir: string, preset: Preset, options: WriteRandomCheckpointOptions = {}): void {
  if (!isPreset(preset)) throw new Error(`unknown preset ${JSON.stringify(preset)} (expected ${PRESETS.join(' or ')})`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'config.json');
  if (existsSync(configPath)) {
    let random = false;
    try {
      random = (JSON.parse(readFileSync(configPath, 'utf8')) as Json).riverrun_random === true;
    } catch {
      random = false;
    }
    if (!random) throw new Error(`${configPath}: refusing to overwrite a checkpoint that is not a Riverrun random checkpoint`);
  } else {
    for (const name of ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin']) {
      if (existsSync(join(dir, name)))
        throw new Error(`${join(dir, name)}: refusing to overwrite model weights that do not belong to a Riverrun random checkpoint`);
    }
  }
  const config = { ...presetConfig(preset), riverrun_seed: seed };
  const specs = tensorSpecs(config, configPath);
  // Remove the old weights first: config and weights of different presets must never be mixed.
  rmSync(join(dir, 'model.safetensors'), { force: true });
  writeJson(configPath, config);
  writeJson(join(dir, 'generation_config.json'), presetGenerationConfig(preset));
  const tok = presetTokenizerFiles(preset);
  for (const [name, value] of Object.entries(tok)) writeJson(join(dir, name), value);
  writeGeneratedSafetensors(join(dir, 'model.safetensors'), specs, seed, options.onProgress);
}

/** Bytes of model.safetensors' tensor data for a preset (without generating it). */
export function presetWeightBytes(preset: Preset): number {
  return tensorSpecs(presetConfig(preset)).reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
}
