// The compiled model as four onnxruntime sessions with typed entry points. This is the only module that
// talks to onnxruntime; everything above it works with typed arrays.
import * as ort from 'onnxruntime-node';
import { Checkpoint } from './checkpoint.ts';
import { compileModel, GRAPH_NAMES, type GraphName } from './compile.ts';
import type { MusicgenConfig } from './config.ts';
import { encodecLstmSize } from './graphs/encodec.ts';
import type { Precision } from './graphs/linear.ts';
import { MAX_TEXT_TOKENS } from './graphs/text-encoder.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';

export type Device = 'cpu' | 'cuda' | 'webgpu';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface LoadOptions {
  precision?: Precision;
  device?: Device;
  /** onnxruntime intra-op threads per session (default: all cores). */
  threads?: number;
  cacheDir?: string;
  log?: (message: string) => void;
  /** Sessions to create (default all); e.g. a text-encoding worker needs only the text encoder. */
  graphs?: readonly GraphName[];
}

/** Cross-attention inputs for a batch of prompts, computed once per prompt. */
export interface TextEncoding {
  rows: number;
  tokens: number;
  /** [rows, tokens], 1 = real token */
  mask: BigInt64Array;
  /** per decoder layer, [rows, H, tokens, D] */
  keys: Float32Array[];
  values: Float32Array[];
  /** T5 output [rows, tokens, d_model] */
  hidden: Float32Array;
}

export interface DecoderInputs {
  rows: number;
  /** new tokens per row (T) */
  tokens: number;
  /** [rows, K, T] */
  ids: BigInt64Array;
  /** [rows, T] */
  positions: BigInt64Array;
  /** [rows] */
  pastLength: BigInt64Array;
  /** window length W of the views below */
  window: number;
  /** per layer [rows, H, W, D] */
  pastKeys: Float32Array[];
  pastValues: Float32Array[];
  /** text tokens S of the cross inputs below */
  textTokens: number;
  /** per layer [rows, H, S, D] */
  crossKeys: Float32Array[];
  crossValues: Float32Array[];
  /** [rows, S] */
  crossMask: BigInt64Array;
}

export interface DecoderOutputs {
  /** [rows, K, T, V] */
  logits: Float32Array;
  /** [L, 2, rows, H, T, D] */
  newKv: Float32Array;
}

/** The codec decoder's LSTM state (h and c, each [layers, 1, H]) before some frame of a stream. */
export interface CodecState {
  h: Float32Array;
  c: Float32Array;
}

/** A window of a stream's codec decode (the decoder graph's inputs, graphs/encodec.ts). */
export interface CodecWindow {
  /** [K, frames] */
  codes: BigInt64Array;
  frames: number;
  /** Leading frames that only feed the first convolution; the LSTM starts after them, from `state`. */
  contextFrames: number;
  /** The frame (contextFrames < stateAt <= frames) whose preceding LSTM state is returned. */
  stateAt: number;
  /** At frame contextFrames; null = zeros (the start of a sequence). */
  state: CodecState | null;
}

export interface CodecWindowAudio {
  /** (frames - contextFrames) * hop samples */
  audio: Float32Array;
  /** Before frame stateAt. */
  state: CodecState;
}

export class ModelBundle {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly precision: Precision,
    readonly device: Device,
    readonly tokenizer: TextTokenizer | null,
    private readonly sessions: Partial<Record<GraphName, ort.InferenceSession>>,
  ) {}

  get config(): MusicgenConfig {
    return this.checkpoint.config;
  }

  /** True for checkpoints written by `riverrun model tiny` (random weights: it sounds like noise). */
  get random(): boolean {
    return this.checkpoint.rawConfig.riverrun_random === true;
  }

  get name(): string {
    const n = this.checkpoint.rawConfig._name_or_path;
    return typeof n === 'string' && n !== '' ? n : this.checkpoint.dir;
  }

  static async load(dir: string, options: LoadOptions = {}): Promise<ModelBundle> {
    const log = options.log ?? (() => {});
    const precision = options.precision ?? 'fp32';
    const checkpoint = Checkpoint.open(dir);
    const compiled = compileModel(checkpoint, { precision, cacheDir: options.cacheDir, onProgress: log });
    log(compiled.cached ? `using compiled graphs from ${compiled.dir}` : `compiled graphs into ${compiled.dir}`);
    const tokenizer = checkpoint.tokenizerPath ? await loadTokenizer(checkpoint.tokenizerPath) : null;
    const requested: Device = options.device ?? 'cpu';
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      interOpNumThreads: 1,
      ...(options.threads !== undefined && { intraOpNumThreads: options.threads }),
    };
    // Each session has its own intra-op threads, which by default spin for a while after a run. The decoder
    // runs back to back and keeps that; the others run now and then, and their spinning threads would take
    // the cores from the decoder's next run (with musicgen-small q4 on 2 cores: +12-20 ms on each step
    // after a codec chunk, docs/benchmarks.md).
    const sessionOptions = (name: GraphName): ort.InferenceSession.SessionOptions =>
      name === 'decoder' ? base : { ...base, extra: { session: { intra_op: { allow_spinning: '0' } } } };
    const create = async (name: GraphName, device: Device): Promise<{ session: ort.InferenceSession; device: Device }> => {
      if (device === 'cpu')
        return {
          session: await ort.InferenceSession.create(compiled.paths[name], { ...sessionOptions(name), executionProviders: ['cpu'] }),
          device,
        };
      try {
        return {
          session: await ort.InferenceSession.create(compiled.paths[name], {
            ...sessionOptions(name),
            executionProviders: [device, 'cpu'],
          }),
          device,
        };
      } catch (err) {
        log(`execution provider ${device} could not load for ${name} (${(err as Error).message.split('\n')[0]}); falling back to cpu`);
        return create(name, 'cpu');
      }
    };
    const wanted = new Set(options.graphs ?? GRAPH_NAMES);
    const sessions: Partial<Record<GraphName, ort.InferenceSession>> = {};
    // The text encoder runs once per prompt and stays on the CPU. The decoder comes first in
    // GRAPH_NAMES, so after a fall-back the codec graphs follow it to the CPU.
    let device: Device = requested;
    for (const name of GRAPH_NAMES) {
      if (!wanted.has(name)) continue;
      const created = await create(name, name === 'text_encoder' ? 'cpu' : device);
      sessions[name] = created.session;
      if (name !== 'text_encoder') device = created.device;
    }
    log(`model ${checkpoint.dir}: precision ${precision}, device ${device}`);
    return new ModelBundle(checkpoint, precision, device, tokenizer, sessions);
  }

  private session(name: GraphName): ort.InferenceSession {
    const s = this.sessions[name];
    if (!s) throw new Error(`the ${name} session was not loaded in this bundle`);
    return s;
  }

  /** Token ids of a prompt (ending in </s>), truncated to what the text encoder covers. */
  tokenize(text: string): number[] {
    if (!this.tokenizer) throw new Error(`${this.checkpoint.dir} has no tokenizer.json; pass token ids instead of text`);
    const ids = this.tokenizer.encode(text);
    return ids.length > MAX_TEXT_TOKENS ? [...ids.slice(0, MAX_TEXT_TOKENS - 1), this.config.textEncoder.eosId] : ids;
  }

  /** Runs the text encoder on rows of token ids (right-padded to the longest row). */
  async encodeText(rows: number[][]): Promise<TextEncoding> {
    const S = Math.max(1, ...rows.map((r) => r.length));
    const B = rows.length;
    const ids = new BigInt64Array(B * S).fill(BigInt(this.config.textEncoder.padId));
    const mask = new BigInt64Array(B * S);
    for (const [b, row] of rows.entries()) {
      for (const [s, id] of row.entries()) {
        ids[b * S + s] = BigInt(id);
        mask[b * S + s] = 1n;
      }
    }
    const out = await this.session('text_encoder').run({
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      attention_mask: new ort.Tensor('int64', mask, [B, S]),
    });
    const L = this.config.decoder.numLayers;
    const f = (name: string): Float32Array => out[name]!.data as Float32Array;
    return {
      rows: B,
      tokens: S,
      mask,
      keys: Array.from({ length: L }, (_, l) => f(`cross_key.${l}`)),
      values: Array.from({ length: L }, (_, l) => f(`cross_value.${l}`)),
      hidden: f('last_hidden_state'),
    };
  }

  async decode(x: DecoderInputs): Promise<DecoderOutputs> {
    const { numHeads: H, hidden, numCodebooks: K, numLayers: L } = this.config.decoder;
    const D = hidden / H;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', x.ids, [x.rows, K, x.tokens]),
      positions: new ort.Tensor('int64', x.positions, [x.rows, x.tokens]),
      past_length: new ort.Tensor('int64', x.pastLength, [x.rows]),
      cross_mask: new ort.Tensor('int64', x.crossMask, [x.rows, x.textTokens]),
    };
    for (let l = 0; l < L; l++) {
      feeds[`past_key.${l}`] = new ort.Tensor('float32', x.pastKeys[l]!, [x.rows, H, x.window, D]);
      feeds[`past_value.${l}`] = new ort.Tensor('float32', x.pastValues[l]!, [x.rows, H, x.window, D]);
      feeds[`cross_key.${l}`] = new ort.Tensor('float32', x.crossKeys[l]!, [x.rows, H, x.textTokens, D]);
      feeds[`cross_value.${l}`] = new ort.Tensor('float32', x.crossValues[l]!, [x.rows, H, x.textTokens, D]);
    }
    const out = await this.session('decoder').run(feeds);
    return { logits: out.logits!.data as Float32Array, newKv: out.new_kv!.data as Float32Array };
  }

  /** Codes [batch, K, frames] -> audio [batch, frames * hop] at the codec's sample rate (whole sequences). */
  async decodeAudio(codes: BigInt64Array, batch: number, frames: number): Promise<Float32Array> {
    return (await this.runCodecDecoder(codes, batch, frames, 0, frames, null)).audio_values!.data as Float32Array;
  }

  /** One window of a stream's codec decode, batch 1 (src/stream/codec-stream.ts). */
  async decodeAudioWindow(w: CodecWindow): Promise<CodecWindowAudio> {
    const out = await this.runCodecDecoder(w.codes, 1, w.frames, w.contextFrames, w.stateAt, w.state);
    return {
      audio: out.audio_values!.data as Float32Array,
      state: { h: out.lstm_h_at!.data as Float32Array, c: out.lstm_c_at!.data as Float32Array },
    };
  }

  private runCodecDecoder(
    codes: BigInt64Array,
    batch: number,
    frames: number,
    contextFrames: number,
    stateAt: number,
    state: CodecState | null,
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    const K = this.config.decoder.numCodebooks;
    const dims = [this.config.codec.numLstmLayers, batch, encodecLstmSize(this.config.codec)];
    const zero = () => new Float32Array(dims[0]! * dims[1]! * dims[2]!);
    return this.session('codec_decoder').run({
      audio_codes: new ort.Tensor('int64', codes, [batch, K, frames]),
      context_frames: new ort.Tensor('int64', BigInt64Array.of(BigInt(contextFrames)), []),
      state_at: new ort.Tensor('int64', BigInt64Array.of(BigInt(stateAt)), []),
      lstm_h: new ort.Tensor('float32', state?.h ?? zero(), dims),
      lstm_c: new ort.Tensor('float32', state?.c ?? zero(), dims),
    });
  }

  /** Audio [batch, samples] (samples a multiple of the hop) -> codes [batch, K, samples / hop]. */
  async encodeAudio(audio: Float32Array, batch: number): Promise<BigInt64Array> {
    const samples = audio.length / batch;
    if (samples % this.config.codec.hop !== 0)
      throw new RangeError(`audio length ${samples} is not a multiple of the codec hop ${this.config.codec.hop}`);
    const out = await this.session('codec_encoder').run({ input_values: new ort.Tensor('float32', audio, [batch, 1, samples]) });
    return out.audio_codes!.data as BigInt64Array;
  }

  async close(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s?.release();
  }
}
