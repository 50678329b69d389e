// Typed views of a Hugging Face MusicGen config.json (model_type "musicgen" with t5 / encodec /
// musicgen_decoder sub-configs). Values the graphs depend on are checked here, once, with errors that
// name the file and the field.
import { CheckpointError } from './errors.ts';

export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  numBuckets: number;
  maxDistance: number;
  eps: number;
  /** 'relu' (t5-base, used by MusicGen) or 'gated-gelu' (t5 v1.1 / flan). */
  feedForward: 'relu' | 'gated-gelu';
  padId: number;
  eosId: number;
}

export interface DecoderConfig {
  vocabSize: number;
  maxPositions: number;
  numLayers: number;
  ffnDim: number;
  numHeads: number;
  hidden: number;
  numCodebooks: number;
  audioChannels: number;
  scaleEmbedding: boolean;
  /** Token used for the start step and for positions the delay pattern forces (= vocabSize). */
  padId: number;
}

export interface EncodecConfig {
  samplingRate: number;
  audioChannels: number;
  hiddenSize: number;
  numFilters: number;
  numResidualLayers: number;
  upsamplingRatios: number[];
  kernelSize: number;
  lastKernelSize: number;
  residualKernelSize: number;
  dilationGrowthRate: number;
  compress: number;
  numLstmLayers: number;
  codebookSize: number;
  codebookDim: number;
  padMode: 'reflect' | 'constant';
  /** Samples per frame (product of the upsampling ratios). */
  hop: number;
}

export interface MusicgenConfig {
  textEncoder: T5Config;
  decoder: DecoderConfig;
  codec: EncodecConfig;
}

export interface GenerationDefaults {
  guidanceScale: number;
  topK: number;
  topP: number;
  temperature: number;
  doSample: boolean;
  maxLength: number;
}

type Json = Record<string, unknown>;

class Fields {
  constructor(
    private readonly file: string,
    private readonly section: string,
    private readonly obj: Json,
  ) {}
  private fail(key: string, what: string): never {
    throw new CheckpointError('CHECKPOINT_CONFIG', this.file, `${this.section}.${key} ${what}`);
  }
  num(key: string, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number (got ${JSON.stringify(v)})`);
    return v;
  }
  int(key: string, fallback?: number): number {
    const v = this.num(key, fallback);
    if (!Number.isInteger(v) || v < 0) this.fail(key, `must be a non-negative integer (got ${v})`);
    return v;
  }
  str(key: string, fallback?: string): string {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'string') this.fail(key, `must be a string (got ${JSON.stringify(v)})`);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'boolean') this.fail(key, `must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }
  ints(key: string): number[] {
    const v = this.obj[key];
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) this.fail(key, 'must be a list of integers');
    return v as number[];
  }
  /** Hugging Face writes null for "same as another field". */
  optionalInt(key: string): number | undefined {
    return this.obj[key] === null || this.obj[key] === undefined ? undefined : this.int(key);
  }
  sub(key: string): Fields {
    const v = this.obj[key];
    if (typeof v !== 'object' || v === null) this.fail(key, 'is missing (is this a MusicGen config.json?)');
    return new Fields(this.file, key, v as Json);
  }
  require(key: string, allowed: unknown[]): void {
    if (!allowed.includes(this.obj[key]))
      this.fail(key, `is ${JSON.stringify(this.obj[key])}; Riverrun supports ${allowed.map((a) => JSON.stringify(a)).join(' or ')}`);
  }
}

export function parseMusicgenConfig(json: Json, file: string): MusicgenConfig {
  const root = new Fields(file, 'config', json);
  root.require('model_type', ['musicgen']);
  const t5 = root.sub('text_encoder');
  const dec = root.sub('decoder');
  const enc = root.sub('audio_encoder');
  t5.require('model_type', ['t5']);
  enc.require('model_type', ['encodec']);
  dec.require('activation_function', ['gelu', undefined]);
  enc.require('use_causal_conv', [false]);
  enc.require('norm_type', ['weight_norm']);
  enc.require('normalize', [false, undefined]);
  enc.require('use_conv_shortcut', [false, undefined]);
  enc.require('audio_channels', [1, undefined]);

  const feedForward = t5.str('feed_forward_proj', 'relu');
  if (feedForward !== 'relu' && feedForward !== 'gated-gelu') {
    throw new CheckpointError(
      'CHECKPOINT_CONFIG',
      file,
      `text_encoder.feed_forward_proj is ${feedForward}; Riverrun supports relu and gated-gelu`,
    );
  }
  const ratios = enc.ints('upsampling_ratios');
  const hiddenSize = enc.int('hidden_size');
  const decoder: DecoderConfig = {
    vocabSize: dec.int('vocab_size'),
    maxPositions: dec.int('max_position_embeddings'),
    numLayers: dec.int('num_hidden_layers'),
    ffnDim: dec.int('ffn_dim'),
    numHeads: dec.int('num_attention_heads'),
    hidden: dec.int('hidden_size'),
    numCodebooks: dec.int('num_codebooks'),
    audioChannels: dec.int('audio_channels', 1),
    scaleEmbedding: dec.bool('scale_embedding', false),
    padId: dec.int('pad_token_id'),
  };
  if (decoder.hidden % decoder.numHeads !== 0)
    throw new CheckpointError('CHECKPOINT_CONFIG', file, 'decoder.hidden_size is not a multiple of num_attention_heads');
  if (decoder.audioChannels !== 1)
    throw new CheckpointError(
      'CHECKPOINT_CONFIG',
      file,
      'stereo MusicGen checkpoints are not supported yet (decoder.audio_channels must be 1)',
    );
  if (decoder.padId !== decoder.vocabSize)
    throw new CheckpointError(
      'CHECKPOINT_CONFIG',
      file,
      `decoder.pad_token_id (${decoder.padId}) must equal vocab_size (${decoder.vocabSize})`,
    );
  return {
    textEncoder: {
      vocabSize: t5.int('vocab_size'),
      dModel: t5.int('d_model'),
      dKv: t5.int('d_kv'),
      dFf: t5.int('d_ff'),
      numLayers: t5.int('num_layers'),
      numHeads: t5.int('num_heads'),
      numBuckets: t5.int('relative_attention_num_buckets', 32),
      maxDistance: t5.int('relative_attention_max_distance', 128),
      eps: t5.num('layer_norm_epsilon', 1e-6),
      feedForward,
      padId: t5.int('pad_token_id', 0),
      eosId: t5.int('eos_token_id', 1),
    },
    decoder,
    codec: {
      samplingRate: enc.int('sampling_rate'),
      audioChannels: enc.int('audio_channels', 1),
      hiddenSize,
      numFilters: enc.int('num_filters'),
      numResidualLayers: enc.int('num_residual_layers'),
      upsamplingRatios: ratios,
      kernelSize: enc.int('kernel_size'),
      lastKernelSize: enc.int('last_kernel_size'),
      residualKernelSize: enc.int('residual_kernel_size'),
      dilationGrowthRate: enc.int('dilation_growth_rate'),
      compress: enc.int('compress'),
      numLstmLayers: enc.int('num_lstm_layers'),
      codebookSize: enc.int('codebook_size'),
      codebookDim: enc.optionalInt('codebook_dim') ?? hiddenSize,
      padMode: enc.str('pad_mode', 'reflect') === 'reflect' ? 'reflect' : 'constant',
      hop: ratios.reduce((a, b) => a * b, 1),
    },
  };
}

export function parseGenerationConfig(json: Json, file: string): GenerationDefaults {
  const g = new Fields(file, 'generation_config', json);
  return {
    guidanceScale: g.num('guidance_scale', 3),
    topK: g.int('top_k', 250),
    topP: g.num('top_p', 0),
    temperature: g.num('temperature', 1),
    doSample: g.bool('do_sample', true),
    maxLength: g.int('max_length', 1500),
  };
}
