// The step loop over every stream of one model. Runs wherever the model's sessions live (the engine
// worker; tests drive it in-process). One decoder run per step advances every stream that needs audio:
// their rows form one contiguous range of the row pool.
import type { ModelBundle } from '../models/model-bundle.ts';
import { completeConfig, type GenerationConfig, type PlaybackAction, type WeightedPrompt } from '../protocol/controls.ts';
import { CodecStream, type CodecStreamOptions, DEFAULT_CODEC_STREAM } from './codec-stream.ts';
import { EngineError } from './engine-errors.ts';
import { type OpusPacket, OpusPacketizer } from './opus-packetizer.ts';
import { Resampler } from './resampler.ts';
import { Rng } from './rng.ts';
import { type PromptEncoding, RowPool } from './row-pool.ts';
import { guide, sample } from './sampler.ts';
import { Stream } from './stream.ts';
import { TokenHistory } from './token-history.ts';

export const OUTPUT_RATE = 48000;
export const PACKET_MS = 20;

export interface EngineOptions {
  /** Audio to keep generated ahead of the listener (ms). Streams ahead of it take no compute. */
  leadTargetMs: number;
  /** Self-attention window in positions; a stream re-primes when it is full. */
  windowFrames: number;
  /** Frames of context kept when re-priming. */
  keepFrames: number;
  /** Most decoder rows in one run. */
  maxBatchRows: number;
  /** Text tokens per prompt row (longer prompts are cut). */
  maxTextTokens: number;
  /** Chunking of the codec decode (see codec-stream.ts). */
  codec: Omit<CodecStreamOptions, 'codebooks' | 'hop'>;
  /** Opus bitrate, bits/s. */
  bitrate: number;
  now: () => number;
}

/** Frames kept when a full window slides: audiocraft keeps 12 s of a 30 s window when it extends a generation. */
export function keepFramesFor(windowFrames: number): number {
  return Math.floor(windowFrames * 0.4);
}

export function defaultEngineOptions(model: ModelBundle): EngineOptions {
  const window = Math.min(model.config.decoder.maxPositions, 1500);
  return {
    leadTargetMs: 1500,
    windowFrames: window,
    keepFrames: keepFramesFor(window),
    maxBatchRows: 64,
    maxTextTokens: 64,
    codec: DEFAULT_CODEC_STREAM,
    bitrate: 64000,
    now: () => performance.now(),
  };
}

export interface StreamSpec {
  prompts: WeightedPrompt[];
  config?: Partial<GenerationConfig>;
  channels?: 1 | 2;
  /** Emit each frame's codes through EngineSink.codes. */
  tapCodes?: boolean;
  /** Audio to continue from: mono, at the codec's sample rate. */
  audioPrompt?: Float32Array;
}

export interface StampedPacket extends OpusPacket {
  /** Control version that generated the packet's audio. */
  control: number;
}

export interface AppliedEvent {
  control: number;
  prompts: WeightedPrompt[];
  config: GenerationConfig;
  /** 48 kHz sample index of the first audio generated under it */
  pts: number;
}

export interface EngineSink {
  packets(id: string, packets: StampedPacket[]): void;
  applied(id: string, event: AppliedEvent): void;
  codes(id: string, frame: number, codes: number[]): void;
  error(id: string, code: string, message: string): void;
}

/** Encodes prompt text to cross-attention inputs, off the step loop. */
export interface TextEncoderService {
  encode(text: string): Promise<PromptEncoding>;
}

export interface StepReport {
  streams: number;
  rows: number;
  /** ms inside decoder runs and codec runs (onnxruntime), and in the whole step */
  decoderMs: number;
  codecMs: number;
  totalMs: number;
}

export class EngineCore {
  private streams: Stream[] = [];
  private readonly byId = new Map<string, Stream>();
  private pool: RowPool;
  /** row keys ("stream\0uncond" / "stream\0p:text") of the pool, in order */
  private rowKeys: string[] = [];
  private rowStart = new Map<Stream, number>();
  private layoutDirty = false;
  private readonly K: number;
  private readonly V: number;
  private readonly pad: number;
  private readonly hop: number;
  private readonly frameRate: number;

  constructor(
    readonly model: ModelBundle,
    private readonly text: TextEncoderService,
    readonly options: EngineOptions,
    private readonly sink: EngineSink,
  ) {
    const d = model.config.decoder;
    this.K = d.numCodebooks;
    this.V = d.vocabSize;
    this.pad = d.padId;
    this.hop = model.config.codec.hop;
    this.frameRate = model.config.codec.samplingRate / this.hop;
    if (options.windowFrames > d.maxPositions)
      throw new RangeError(`windowFrames ${options.windowFrames} exceeds the model's ${d.maxPositions} positions`);
    if (options.keepFrames < this.K || options.keepFrames >= options.windowFrames)
      throw new RangeError(`keepFrames must be in [${this.K}, windowFrames)`);
    this.pool = new RowPool({
      layers: d.numLayers,
      heads: d.numHeads,
      headDim: d.hidden / d.numHeads,
      window: options.windowFrames,
      textTokens: options.maxTextTokens,
    });
  }

  get streamCount(): number {
    return this.streams.length;
  }

  /** Bytes of the row pool (KV windows and cross-attention inputs of every stream). */
  get poolBytes(): number {
    return this.pool.bytes;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  async createStream(id: string, spec: StreamSpec): Promise<void> {
    if (this.byId.has(id)) throw new Error(`stream ${id} exists`);
    const config = completeConfig(spec.config);
    const encodings = await this.encodeAll(spec.prompts.map((p) => p.text));
    const codec = new CodecStream((codes, frames) => this.model.decodeAudio(codes, 1, frames), {
      ...this.options.codec,
      codebooks: this.K,
      hop: this.hop,
    });
    const stream = new Stream(
      id,
      spec.prompts,
      config,
      this.K,
      this.pad,
      codec,
      new Resampler(this.model.config.codec.samplingRate, OUTPUT_RATE),
      new OpusPacketizer({ channels: spec.channels ?? 1, bitrate: this.options.bitrate }),
      spec.tapCodes ?? false,
    );
    stream.mix.retarget(
      spec.prompts.map((p) => ({ ...p, encoding: encodings.get(p.text)! })),
      0,
      true,
    );
    stream.mix.advance();
    if (spec.audioPrompt) {
      const frames = await this.encodeAudioPrompt(spec.audioPrompt);
      for (const f of stream.history.startFrom(frames)) this.frameDone(stream, f.frame, f.codes);
      stream.needsPrefill = true;
    }
    this.streams.push(stream);
    this.byId.set(id, stream);
    this.layoutDirty = true;
    // Control 0 is announced like every later one, so listeners learn what a stream starts with.
    this.sink.applied(id, { control: 0, prompts: stream.prompts, config: stream.config, pts: 0 });
  }

  closeStream(id: string): void {
    const s = this.byId.get(id);
    if (!s) return;
    this.byId.delete(id);
    this.streams = this.streams.filter((x) => x !== s);
    this.layoutDirty = true;
  }

  /** New prompts; they take effect at the first step after their text is encoded. */
  setPrompts(id: string, prompts: WeightedPrompt[], transitionMs = 0): void {
    const s = this.get(id);
    const pending = { prompts, transitionMs, encodings: new Map<string, PromptEncoding>(), missing: new Set(prompts.map((p) => p.text)) };
    s.pending.push(pending);
    for (const text of pending.missing) {
      this.text.encode(text).then(
        (enc) => {
          pending.encodings.set(text, this.fit(enc));
          pending.missing.delete(text);
        },
        (err: Error) => {
          s.pending = s.pending.filter((p) => p !== pending);
          this.sink.error(id, 'ENGINE_PROMPT_ENCODING', `could not encode prompt ${JSON.stringify(text.slice(0, 80))}: ${err.message}`);
        },
      );
    }
  }

  /** The whole config (omitted fields back to defaults); takes effect at the next step. */
  setConfig(id: string, config: Partial<GenerationConfig>): void {
    this.get(id).pending.push({ config: completeConfig(config), transitionMs: 0, encodings: new Map(), missing: new Set() });
  }

  playback(id: string, action: PlaybackAction): void {
    const s = this.get(id);
    const now = this.options.now();
    switch (action) {
      case 'pause':
        if (s.state === 'playing') {
          s.state = 'paused';
          s.pausedAt = now;
        }
        break;
      case 'play':
        if (s.state === 'paused' && s.pausedAt !== null && s.anchor !== null) s.anchor += now - s.pausedAt;
        s.pausedAt = null;
        s.state = 'playing';
        break;
      case 'stop':
        // Ends output and forgets the music; prompts and config stay. Play starts afresh.
        s.state = 'stopped';
        s.resetPending = true;
        s.anchor = null;
        s.pausedAt = null;
        break;
      case 'reset_context':
        s.resetPending = true;
        break;
    }
  }

  status(id: string): { leadMs: number; rtf: number; underruns: number; state: string; control: number } {
    const s = this.get(id);
    return { leadMs: s.lead(this.options.now()), rtf: s.rtf(this.frameRate), underruns: s.underruns, state: s.state, control: s.control };
  }

  /** ms until some stream wants a step (0 = now), or null when no stream is playing. */
  idleMs(): number | null {
    const now = this.options.now();
    let wait: number | null = null;
    for (const s of this.streams) {
      if (s.state !== 'playing') continue;
      const w = Math.max(0, s.lead(now) - this.options.leadTargetMs);
      if (s.anchor === null || s.needsPrefill || s.resetPending) return 0;
      wait = wait === null ? w : Math.min(wait, w);
    }
    return wait;
  }

  /**
   * One round: applies due controls, then advances every playing stream below its lead target (the
   * driest first, up to maxBatchRows rows) by one step in one decoder run, and emits the audio that
   * became ready. With `force` every playing stream steps regardless of its lead (offline use and tests).
   */
  async step(force = false): Promise<StepReport> {
    const started = performance.now();
    let decoderMs = 0;
    const now = this.options.now();
    for (const s of this.streams) {
      this.applyControls(s);
      if (s.state === 'playing' && s.anchor !== null && s.lead(now) < 0) {
        // The listener ran dry: count it and re-anchor, as a player re-buffers.
        s.underruns++;
        s.anchor = now - s.emittedMs;
      }
    }
    const due = this.streams
      .filter((s) => s.state === 'playing' && (force || s.anchor === null || s.lead(now) < this.options.leadTargetMs))
      .sort((a, b) => (a.anchor === null ? -Infinity : a.lead(now)) - (b.anchor === null ? -Infinity : b.lead(now)));
    if (this.layoutDirty) this.relayout();
    // Prefills (audio prompts, re-primes) run per stream before the batched step.
    for (const s of due) {
      if (s.history.position >= this.options.windowFrames) {
        s.history.reprime(this.options.keepFrames);
        s.needsPrefill = true;
      }
      if (s.needsPrefill) {
        decoderMs += await this.prefill(s, 0, s.rows); // every row, new prompts' included
        s.needsPrefill = false;
      } else {
        for (const text of s.unprimedPrompts) {
          const i = s.mix.prompts.findIndex((p) => p.text === text);
          if (i >= 0) decoderMs += await this.prefill(s, 1 + i, 1);
        }
      }
      s.unprimedPrompts.clear();
    }
    const selected: Stream[] = [];
    let rows = 0;
    for (const s of due) {
      if (rows + s.rows > this.options.maxBatchRows && selected.length > 0) break;
      selected.push(s);
      rows += s.rows;
    }
    if (selected.length === 0) return { streams: 0, rows: 0, decoderMs, codecMs: 0, totalMs: performance.now() - started };

    const first = Math.min(...selected.map((s) => this.rowStart.get(s)!));
    const last = Math.max(...selected.map((s) => this.rowStart.get(s)! + s.rows));
    const R = last - first;
    const K = this.K;
    const ids = new BigInt64Array(R * K).fill(BigInt(this.pad));
    const positions = new BigInt64Array(R);
    const pastLength = new BigInt64Array(R);
    // Where each row's new K/V entry goes; -1 for rows in the range that were not picked (discarded).
    const writeAt = new Array<number>(R).fill(-1);
    for (const s of selected) {
      const input = s.history.nextInput();
      const p = s.history.position;
      const r0 = this.rowStart.get(s)! - first;
      for (let r = r0; r < r0 + s.rows; r++) {
        for (let k = 0; k < K; k++) ids[r * K + k] = BigInt(input[k]!);
        positions[r] = BigInt(p);
        pastLength[r] = BigInt(p);
        writeAt[r] = p;
      }
    }
    const t0 = performance.now();
    const out = await this.model.decode({
      rows: R,
      tokens: 1,
      ids,
      positions,
      pastLength,
      window: this.options.windowFrames,
      textTokens: this.options.maxTextTokens,
      ...this.pool.views(first, R),
    });
    decoderMs += performance.now() - t0;

    this.pool.kv.write(out.newKv, first, R, 1, writeAt);
    for (const s of selected) {
      const r0 = this.rowStart.get(s)! - first;
      const tokens = this.sampleStream(s, out.logits, r0);
      const done = s.history.append(tokens);
      // A frame belongs to the control under which its first (coarsest) codebook was sampled.
      s.frameControl.set(s.history.frameBase + s.history.position - 1, s.control);
      if (done) this.frameDone(s, done.frame, done.codes);
      if (s.mix.advance()) this.layoutDirty = true;
      s.framesGenerated++;
      s.progress.push([now, s.framesGenerated]);
      while (s.progress.length > 2 && now - s.progress[0]![0] > 5000) s.progress.shift();
    }
    let codecMs = 0;
    for (const s of selected) codecMs += await this.emitAudio(s);
    return { streams: selected.length, rows: R, decoderMs, codecMs, totalMs: performance.now() - started };
  }

  private get(id: string): Stream {
    const s = this.byId.get(id);
    if (!s) throw new EngineError('ENGINE_UNKNOWN_STREAM', `no stream ${id}`);
    return s;
  }

  private async encodeAll(texts: string[]): Promise<Map<string, PromptEncoding>> {
    const unique = [...new Set(texts)];
    const encoded = await Promise.all(unique.map((t) => this.text.encode(t)));
    return new Map(unique.map((t, i) => [t, this.fit(encoded[i]!)]));
  }

  /** Cuts an encoding to the pool's text length (keeping the first tokens). */
  private fit(e: PromptEncoding): PromptEncoding {
    const S = this.options.maxTextTokens;
    if (e.tokens <= S) return e;
    const H = this.model.config.decoder.numHeads;
    const D = this.model.config.decoder.hidden / H;
    const cut = (a: Float32Array): Float32Array => {
      const out = new Float32Array(H * S * D);
      for (let h = 0; h < H; h++) out.set(a.subarray(h * e.tokens * D, (h * e.tokens + S) * D), h * S * D);
      return out;
    };
    return { tokens: S, keys: e.keys.map(cut), values: e.values.map(cut) };
  }

  private async encodeAudioPrompt(audio: Float32Array): Promise<number[][]> {
    const padded = new Float32Array(Math.ceil(audio.length / this.hop) * this.hop);
    padded.set(audio);
    const maxFrames = this.options.windowFrames - this.K - 1;
    const frames = padded.length / this.hop;
    if (frames < 1) throw new RangeError('audio prompt is empty');
    if (frames > maxFrames) throw new RangeError(`audio prompt is ${frames} frames; at most ${maxFrames} fit the context window`);
    const codes = await this.model.encodeAudio(padded, 1);
    return Array.from({ length: frames }, (_, t) => Array.from({ length: this.K }, (_, k) => Number(codes[k * frames + t])));
  }

  /** Applies the pending controls whose prompts are encoded, in order; resets. */
  private applyControls(s: Stream): void {
    if (s.resetPending && s.state === 'playing') {
      s.resetPending = false;
      s.history = new TokenHistory(this.K, this.pad, s.nextFrame);
      s.unprimedPrompts.clear();
      s.codec.reset();
    }
    while (s.pending.length > 0 && s.pending[0]!.missing.size === 0) {
      const c = s.pending.shift()!;
      if (c.prompts) {
        s.prompts = c.prompts;
        const frames = Math.round(c.transitionMs / PACKET_MS);
        const before = s.mix.prompts.map((p) => p.text).join('\0');
        s.mix.retarget(
          c.prompts.map((p) => ({ ...p, encoding: c.encodings.get(p.text)! })),
          frames,
          frames === 0,
        );
        if (s.mix.prompts.map((p) => p.text).join('\0') !== before) this.layoutDirty = true;
      }
      if (c.config) {
        if (c.config.seed !== s.config.seed) s.rng = new Rng(c.config.seed);
        s.config = c.config;
      }
      s.control++;
      const frame = s.history.frameBase + s.history.position;
      this.sink.applied(s.id, { control: s.control, prompts: s.prompts, config: s.config, pts: this.framePts(frame) });
    }
  }

  /** 48 kHz sample index at which absolute frame `frame` starts. */
  private framePts(frame: number): number {
    return Math.round((frame * this.hop * OUTPUT_RATE) / this.model.config.codec.samplingRate);
  }

  /** Lays the pool out anew for the current streams and their prompts. */
  private relayout(): void {
    const old = new Map(this.rowKeys.map((k, i) => [k, i]));
    const keys: string[] = [];
    const sources: (number | null)[] = [];
    const fresh: { row: number; encoding: PromptEncoding | null }[] = [];
    this.rowStart.clear();
    for (const s of this.streams) {
      this.rowStart.set(s, keys.length);
      const uncondKey = `${s.id}\0uncond`;
      const uncondOld = old.get(uncondKey) ?? null;
      keys.push(uncondKey);
      sources.push(uncondOld);
      if (uncondOld === null) fresh.push({ row: keys.length - 1, encoding: null });
      for (const p of s.mix.prompts) {
        const key = `${s.id}\0p:${p.text}`;
        const was = old.get(key);
        keys.push(key);
        sources.push(was ?? null);
        if (was !== undefined) continue;
        fresh.push({ row: keys.length - 1, encoding: p.encoding });
        // A prompt added mid-stream conditions the whole history, as MusicGen's p(next | history, text)
        // does: its row's window is built from the history under its own text (one prefill of one row),
        // not copied from another prompt's row, whose keys and values past the first layer carry that
        // other text.
        if (s.history.position > 0) s.unprimedPrompts.add(p.text);
      }
    }
    this.pool = this.pool.relayout(sources);
    for (const f of fresh) this.pool.setPrompt(f.row, f.encoding);
    this.rowKeys = keys;
    this.layoutDirty = false;
  }

  /** Runs a stream's history prefix through rows [first, first + R) of the stream (audio prompt, re-prime:
   * all rows; a prompt added mid-stream: its row). Returns ms spent. */
  private async prefill(s: Stream, first: number, R: number): Promise<number> {
    const prefix = s.history.prefix();
    const T = prefix.length;
    if (T === 0) return 0;
    const K = this.K;
    const start = this.rowStart.get(s)! + first;
    const ids = new BigInt64Array(R * K * T);
    for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (let t = 0; t < T; t++) ids[(r * K + k) * T + t] = BigInt(prefix[t]![k]!);
    const positions = BigInt64Array.from({ length: R * T }, (_, i) => BigInt(i % T));
    const t0 = performance.now();
    const out = await this.model.decode({
      rows: R,
      tokens: T,
      ids,
      positions,
      pastLength: new BigInt64Array(R),
      window: this.options.windowFrames,
      textTokens: this.options.maxTextTokens,
      ...this.pool.views(start, R),
    });
    this.pool.kv.write(out.newKv, start, R, T, new Array<number>(R).fill(0));
    return performance.now() - t0;
  }

  /** Guided, blended, sampled tokens of one stream from its rows' logits. */
  private sampleStream(s: Stream, logits: Float32Array, r0: number): number[] {
    const { K, V } = this;
    const weights = s.mix.weights();
    const g = s.config.guidance;
    const scores = new Float32Array(V);
    const sampling = { temperature: s.config.temperature, topK: s.config.topK, topP: s.config.topP };
    const tokens: number[] = [];
    for (let k = 0; k < K; k++) {
      const uncond = logits.subarray((r0 * K + k) * V, (r0 * K + k + 1) * V);
      if (weights.length === 1 && weights[0] === 1) {
        guide(scores, logits.subarray(((r0 + 1) * K + k) * V, ((r0 + 1) * K + k + 1) * V), uncond, g);
      } else {
        scores.set(uncond);
        weights.forEach((w, i) => {
          if (w === 0) return;
          const cond = logits.subarray(((r0 + 1 + i) * K + k) * V, ((r0 + 2 + i) * K + k) * V);
          for (let v = 0; v < V; v++) scores[v] = scores[v]! + g * w * (cond[v]! - uncond[v]!);
        });
      }
      tokens.push(sample(scores, sampling, s.rng));
    }
    return tokens;
  }

  private frameDone(s: Stream, frame: number, codes: number[]): void {
    s.codec.push(codes);
    if (!s.frameControl.has(frame)) s.frameControl.set(frame, s.control);
    s.nextFrame = frame + 1;
    if (s.tapCodes) this.sink.codes(s.id, frame, codes);
  }

  /** Decodes every ready codec chunk into Opus packets stamped with their control; returns codec ms. */
  private async emitAudio(s: Stream): Promise<number> {
    let codecMs = 0;
    while (s.codec.ready()) {
      const t0 = performance.now();
      const audio = await s.codec.decodeNext();
      codecMs += performance.now() - t0;
      if (!audio) break;
      const packets = s.packetizer.push(s.resampler.process(audio));
      if (packets.length === 0) continue;
      const stamped = packets.map((p) => ({ ...p, control: this.controlAt(s, p.pts) }));
      // The first packet after a start (or a stop) is due now; the packets before it are history.
      s.anchor ??= this.options.now() - s.emittedMs;
      s.emittedMs += packets.length * PACKET_MS;
      this.sink.packets(s.id, stamped);
    }
    return codecMs;
  }

  /** Control of the frame whose audio a packet starts with (the resampler's delay included). */
  private controlAt(s: Stream, pts: number): number {
    const sample32 = ((pts - s.resampler.delay) * this.model.config.codec.samplingRate) / OUTPUT_RATE;
    const frame = Math.max(0, Math.floor(sample32 / this.hop));
    for (const f of s.frameControl.keys()) {
      if (f >= frame - 1) break;
      s.frameControl.delete(f);
    }
    return s.frameControl.get(frame) ?? s.frameControl.values().next().value ?? s.control;
  }
}
