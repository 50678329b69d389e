// The step loop over every stream of one model. Runs wherever the model's sessions live (the engine
// worker; tests drive it in-process). One decoder run per step advances every stream that needs audio:
// their rows form one contiguous range of the row pool. A step is a sequence of stages, each in its own
// module: apply-controls, scheduler, prefill, decode-step, guidance, feed-codec, packetize.
import type { ModelBundle } from '../models/model-bundle.ts';
import { SAMPLE_RATE } from '../protocol/constants.ts';
import {
  completeConfig,
  type GenerationConfig,
  type PlaybackAction,
  type PlaybackState,
  type WeightedPrompt,
} from '../protocol/controls.ts';
import { applyControls } from './apply-controls.ts';
import { encodeAudioPrompt } from './audio-prompt.ts';
import { AudioTiming } from './audio-timing.ts';
import { BatchLayout } from './batch-layout.ts';
import { CodecStream } from './codec-stream.ts';
import { type DecoderSetup, decodeStep, writeKv } from './decode-step.ts';
import { EngineError } from './engine-errors.ts';
import type { EngineOptions } from './engine-options.ts';
import { feedCodec } from './feed-codec.ts';
import { guideAndSample } from './guidance.ts';
import { type OpusPacket, OpusPacketizer } from './opus-packetizer.ts';
import { packetize } from './packetize.ts';
import { PendingControl } from './pending-control.ts';
import { catchUp, layoutReady, promptRowReady, rowsBehind } from './prefill.ts';
import { Resampler } from './resampler.ts';
import { ResumeSplice, type StreamResume } from './resume.ts';
import { fitEncoding, type PoolShape, type PromptEncoding, type RowPool } from './row-pool.ts';
import { dueStreams, msUntilDue, pickBatch } from './scheduler.ts';
import { Stream } from './stream.ts';

export interface StreamSpec {
  prompts: WeightedPrompt[];
  config?: Partial<GenerationConfig>;
  channels?: 1 | 2;
  /** Emit each frame's codes through EngineSink.codes. */
  tapCodes?: boolean;
  /** Audio to continue from: mono, at the codec's sample rate. */
  audioPrompt?: Float32Array;
  /** Goes on where a stream of an engine that died stood (resume.ts); `prompts` and `config` are its
   * controls in effect then. Not with audioPrompt. */
  resume?: StreamResume;
  /** Playback and idleness at the start (default: playing, heard). */
  state?: PlaybackState;
  idle?: boolean;
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
  /** The tag of the request that made the change (setPrompts/setConfig), if it had one. */
  tag?: number;
}

export interface EngineSink {
  /** leadMs: the stream's lead once they are sent (LeadClock). */
  packets(id: string, packets: StampedPacket[], leadMs: number): void;
  applied(id: string, event: AppliedEvent): void;
  codes(id: string, frame: number, codes: number[]): void;
  /** The frames completed since the last call, just before the packets carrying their audio: what a
   * resume needs (StreamResume.frames). */
  history?(id: string, firstFrame: number, codes: number[][]): void;
  error(id: string, code: string, message: string): void;
}

/** Encodes prompt text to cross-attention inputs, off the step loop. */
export interface TextEncoderService {
  encode(text: string): Promise<PromptEncoding>;
}

export interface StepReport {
  streams: number;
  rows: number;
  /** Row-tokens of history run through rows that had not seen it (prefill.ts). */
  prefillTokens: number;
  /** ms inside decoder runs and codec runs (onnxruntime), and in the whole step */
  decoderMs: number;
  codecMs: number;
  totalMs: number;
}

export class EngineCore {
  private streams: Stream[] = [];
  private readonly byId = new Map<string, Stream>();
  private readonly batch: BatchLayout;
  private readonly shape: PoolShape;
  private readonly setup: DecoderSetup;
  private readonly timing: AudioTiming;
  private readonly K: number;
  /** Guided scores [K, V] of the stream being sampled (reused by every stream and step). */
  private readonly scores: Float32Array;

  constructor(
    readonly model: ModelBundle,
    private readonly text: TextEncoderService,
    readonly options: EngineOptions,
    private readonly sink: EngineSink,
  ) {
    const d = model.config.decoder;
    this.K = d.numCodebooks;
    this.timing = new AudioTiming(model.config.codec.samplingRate, model.config.codec.hop);
    if (options.windowFrames > d.maxPositions)
      throw new RangeError(`windowFrames ${options.windowFrames} exceeds the model's ${d.maxPositions} positions`);
    if (options.keepFrames < this.K || options.keepFrames >= options.windowFrames)
      throw new RangeError(`keepFrames must be in [${this.K}, windowFrames)`);
    if (!Number.isInteger(options.prefillTokensPerStep) || options.prefillTokensPerStep < 1)
      throw new RangeError(`prefillTokensPerStep must be an integer >= 1, got ${options.prefillTokensPerStep}`);
    this.shape = {
      layers: d.numLayers,
      heads: d.numHeads,
      headDim: d.hidden / d.numHeads,
      window: options.windowFrames,
      textTokens: options.maxTextTokens,
    };
    this.batch = new BatchLayout(this.shape);
    this.setup = { model, window: options.windowFrames, textTokens: options.maxTextTokens };
    this.scores = new Float32Array(this.K * d.vocabSize);
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
    const { hop } = this.timing;
    const codec = new CodecStream((window) => this.model.decodeAudioWindow(window), {
      ...this.options.codec,
      codebooks: this.K,
      hop,
    });
    const { resume } = spec;
    if (resume && spec.audioPrompt) throw new Error('a stream resumes or starts from an audio prompt, not both');
    // A resumed history keeps room in the window to go on.
    const room = this.options.windowFrames - this.K - 1;
    const resumeFrames = resume?.frames.slice(-room) ?? [];
    const resumeFirst = resume ? resume.firstFrame + resume.frames.length - resumeFrames.length : 0;
    const splice = resume ? new ResumeSplice(this.timing, resumeFirst, resume.nextSeq) : undefined;
    const stream = new Stream({
      id,
      prompts: spec.prompts,
      encodings,
      config,
      codebooks: this.K,
      pad: this.model.config.decoder.padId,
      codec,
      resampler: new Resampler(this.timing.codecRate, SAMPLE_RATE),
      packetizer: new OpusPacketizer({ channels: spec.channels ?? 1, bitrate: this.options.bitrate, firstSeq: splice?.firstSeq }),
      tapCodes: spec.tapCodes ?? false,
      control: resume?.control,
      splice,
    });
    if (spec.audioPrompt) {
      const frames = await encodeAudioPrompt(this.model, spec.audioPrompt, this.options.windowFrames - this.K - 1);
      for (const done of stream.startFromAudio(frames)) feedCodec(stream, done, this.sink);
    }
    const now = this.options.now();
    if (resume) stream.resumeFrom(resumeFrames, resumeFirst, splice!.codecFrom, now + resume.leadMs);
    if (spec.idle) stream.setIdle(true, now);
    if (spec.state === 'paused') stream.pause(now);
    else if (spec.state === 'stopped') stream.stop();
    this.streams.push(stream);
    this.byId.set(id, stream);
    this.batch.markDirty();
    // Control 0 is announced like every later one, so listeners learn what a stream starts with (a
    // resumed stream's listeners know its controls).
    if (!resume) this.sink.applied(id, { control: 0, prompts: stream.prompts, config: stream.config, pts: 0 });
  }

  closeStream(id: string): void {
    const s = this.byId.get(id);
    if (!s) return;
    this.byId.delete(id);
    this.streams = this.streams.filter((x) => x !== s);
    this.batch.markDirty();
  }

  /** New prompts; they take effect at the first step after their text is encoded. */
  setPrompts(id: string, prompts: WeightedPrompt[], transitionMs = 0, tag?: number): void {
    const s = this.get(id);
    const pending = new PendingControl(prompts, transitionMs, undefined, tag);
    s.queueControl(pending);
    for (const text of pending.missing) {
      this.text.encode(text).then(
        (enc) => pending.encoded(text, fitEncoding(enc, this.shape)),
        (err: Error) => {
          s.dropControl(pending);
          this.sink.error(id, 'ENGINE_PROMPT_ENCODING', `could not encode prompt ${JSON.stringify(text.slice(0, 80))}: ${err.message}`);
        },
      );
    }
  }

  /** The whole config (omitted fields back to defaults); takes effect at the next step. */
  setConfig(id: string, config: Partial<GenerationConfig>, tag?: number): void {
    this.get(id).queueControl(new PendingControl(undefined, 0, completeConfig(config), tag));
  }

  playback(id: string, action: PlaybackAction): void {
    const s = this.get(id);
    const now = this.options.now();
    switch (action) {
      case 'pause':
        s.pause(now);
        break;
      case 'play':
        s.play(now);
        break;
      case 'stop':
        s.stop();
        break;
      case 'reset_context':
        s.requestReset();
        break;
    }
  }

  /**
   * A stream nobody hears (a channel without listeners) goes idle: no compute, its rows and history stay,
   * its lead clock stands still; heard again, it resumes where it stood. Rows that lie amid others'
   * move out of the way of their decoder runs at the next step (one relayout of the pool).
   */
  setIdle(id: string, idle: boolean): void {
    const s = this.get(id);
    s.setIdle(idle, this.options.now());
    if (idle && this.batch.amidActive(s)) this.batch.markDirty();
  }

  status(id: string): { leadMs: number; rtf: number; underruns: number; state: string; control: number } {
    const s = this.get(id);
    const now = this.options.now();
    return { leadMs: s.lead(now), rtf: s.rtf(this.timing.frameRate), underruns: s.underruns, state: s.state, control: s.control };
  }

  /** ms until some stream wants a step (0 = now: one is due, or has rows to build), or null when none is generating. */
  idleMs(): number | null {
    if (this.batch.dirty) return 0;
    return msUntilDue(this.streams, this.options.now(), this.options.leadTargetMs, (s) => rowsBehind(this.batch, s));
  }

  /**
   * One round: applies due controls, builds rows that are behind their history (a bounded part of it),
   * then advances every playing stream below its lead target whose rows are built (the driest first, up
   * to maxBatchRows rows) by one step in one decoder run, and emits the audio that became ready. With
   * `force` every playing stream steps regardless of its lead (offline use and tests).
   */
  async step(force = false): Promise<StepReport> {
    const started = performance.now();
    const now = this.options.now();
    for (const s of this.streams) {
      if (applyControls(s, this.sink, this.timing, (text) => promptRowReady(this.batch, s, text))) this.batch.markDirty();
      s.catchUpUnderrun(now);
    }
    const due = dueStreams(this.streams, now, this.options.leadTargetMs, force);
    if (this.batch.dirty) this.batch.relayout(this.streams);
    const picked = pickBatch(due, this.options.maxBatchRows);
    // Rows behind their history (audio prompt, re-prime, reset, a prompt coming in) catch up, at most
    // prefillTokensPerStep row-tokens per stream and step: the due streams', and those of streams ahead of
    // their lead (whose steps then only build rows, in the time the engine would idle). A stream samples
    // once every row of its layout has caught up.
    const building = this.streams.filter((s) => s.generating && !picked.includes(s) && rowsBehind(this.batch, s));
    let decoderMs = 0;
    let prefillTokens = 0;
    for (const s of [...picked, ...building]) {
      const c = await catchUp(this.setup, this.batch, s, this.options.keepFrames, this.options.prefillTokensPerStep);
      decoderMs += c.ms;
      prefillTokens += c.tokens;
    }
    const selected = picked.filter((s) => layoutReady(this.batch, s));
    let rows = 0;
    if (selected.length > 0) {
      const step = await decodeStep(this.setup, this.batch, selected);
      decoderMs += step.ms;
      rows = step.rows;
      writeKv(this.pool, step);
      for (const s of selected) {
        const first = this.batch.firstRow(s) - step.first;
        const { config } = s;
        const tokens = guideAndSample(this.scores, step.logits, first, s.layout, s.mix.weights(), config.guidance, config, s.rng, this.K);
        const done = s.appendColumn(tokens);
        if (done) feedCodec(s, done, this.sink);
        if (s.finishStep(now)) this.batch.markDirty();
      }
    }
    // Audio goes out as soon as its frames are known, also from streams whose rows are still being built
    // (an audio prompt's or a resumed stream's frames).
    let codecMs = 0;
    for (const s of [...picked, ...building]) codecMs += await packetize(s, this.timing, this.sink, this.options.now);
    return { streams: selected.length, rows, prefillTokens, decoderMs, codecMs, totalMs: performance.now() - started };
  }

  /** The row pool as laid out now. */
  private get pool(): RowPool {
    return this.batch.pool;
  }

  private get(id: string): Stream {
    const s = this.byId.get(id);
    if (!s) throw new EngineError('ENGINE_UNKNOWN_STREAM', `no stream ${id}`);
    return s;
  }

  private async encodeAll(texts: string[]): Promise<Map<string, PromptEncoding>> {
    const unique = [...new Set(texts)];
    const encoded = await Promise.all(unique.map((t) => this.text.encode(t)));
    return new Map(unique.map((t, i) => [t, fitEncoding(encoded[i]!, this.shape)]));
  }
}
