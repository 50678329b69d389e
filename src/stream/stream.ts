// One generation in the engine: its controls (prompts, config, playback), its random generator, its
// token history, its decoder rows' layout, its lead and speed accounting, and its audio chain (codec
// chunks -> 48 kHz -> Opus packets). The engine places the rows in its pool and runs the stages of a
// step; every change of a stream's state goes through the methods here.

import type { GenerationConfig, PlaybackState, WeightedPrompt } from '../protocol/controls.ts';
import type { CodecStream } from './codec-stream.ts';
import { ControlTimeline } from './control-timeline.ts';
import { LeadClock } from './lead-clock.ts';
import type { OpusPacketizer } from './opus-packetizer.ts';
import type { PendingControl } from './pending-control.ts';
import { ProgressMeter } from './progress-meter.ts';
import { PromptMix } from './prompt-mix.ts';
import type { Resampler } from './resampler.ts';
import type { ResumeSplice } from './resume.ts';
import { Rng } from './rng.ts';
import { RowLayout } from './row-layout.ts';
import type { PromptEncoding } from './row-pool.ts';
import { type CompletedFrame, TokenHistory } from './token-history.ts';

export interface StreamParts {
  id: string;
  /** Starting prompts, and the encoding of each prompt's text. */
  prompts: WeightedPrompt[];
  encodings: ReadonlyMap<string, PromptEncoding>;
  config: GenerationConfig;
  codebooks: number;
  pad: number;
  codec: CodecStream;
  resampler: Resampler;
  packetizer: OpusPacketizer;
  /** Emit each frame's codes. */
  tapCodes: boolean;
  /** Version of the controls in effect at the start (a resumed stream's; default 0). */
  control?: number;
  /** A resumed stream's cut into its restarted audio chain (resume.ts). */
  splice?: ResumeSplice;
}

export class Stream {
  readonly id: string;
  readonly codec: CodecStream;
  readonly resampler: Resampler;
  readonly packetizer: OpusPacketizer;
  readonly tapCodes: boolean;
  readonly splice: ResumeSplice | null;
  readonly #codebooks: number;
  readonly #pad: number;

  /** Version of prompts + config: bumped whenever a change takes effect. */
  #control = 0;
  #prompts: WeightedPrompt[];
  #config: GenerationConfig;
  #rng: Rng;
  readonly #mix = new PromptMix();
  #layout: RowLayout;
  #history: TokenHistory;
  #state: PlaybackState = 'playing';
  /** Nobody hears the stream (a channel without listeners): it takes no compute until it is heard again. */
  #idle = false;
  #pending: PendingControl[] = [];
  /** Set when the stream must restart from an empty history at its next step (reset_context, stop). */
  #resetPending = false;
  /** Set when the rows' windows belong to an older sequence (audio prompt, re-prime, reset): the engine
   * forgets them, and they are built again from the history before the stream steps. */
  #staleRows = false;
  /** The texts of the next control's new prompts, whose rows are being built from the history (after the
   * unconditional row) while the stream goes on with its current prompts; the control applies once they are. */
  #preparing: { text: string; encoding: PromptEncoding }[] = [];
  /** Absolute index of the next frame to complete: where the audio timeline continues after a reset. */
  #nextFrame = 0;
  /** Frames completed since takeNewFrames(): [absolute index of the first, its codes...]. */
  #newFrames: { first: number; codes: number[][] } | null = null;
  readonly #clock = new LeadClock();
  readonly #timeline = new ControlTimeline();
  readonly #progress = new ProgressMeter();

  constructor(parts: StreamParts) {
    this.id = parts.id;
    this.codec = parts.codec;
    this.resampler = parts.resampler;
    this.packetizer = parts.packetizer;
    this.tapCodes = parts.tapCodes;
    this.splice = parts.splice ?? null;
    this.#control = parts.control ?? 0;
    this.#codebooks = parts.codebooks;
    this.#pad = parts.pad;
    this.#prompts = parts.prompts;
    this.#config = parts.config;
    this.#rng = new Rng(parts.config.seed);
    this.#history = new TokenHistory(parts.codebooks, parts.pad);
    this.#mix.retarget(
      parts.prompts.map((p) => ({ ...p, encoding: parts.encodings.get(p.text)! })),
      0,
      true,
    );
    this.#mix.advance();
    this.#layout = new RowLayout(this.#mix.prompts.length);
  }

  get control(): number {
    return this.#control;
  }

  get prompts(): WeightedPrompt[] {
    return this.#prompts;
  }

  get config(): GenerationConfig {
    return this.#config;
  }

  get rng(): Rng {
    return this.#rng;
  }

  /** The prompts in the decoder rows and their weights now. */
  get mix(): PromptMix {
    return this.#mix;
  }

  get history(): TokenHistory {
    return this.#history;
  }

  get state(): PlaybackState {
    return this.#state;
  }

  /** Playing and heard: the streams the scheduler steps. */
  get generating(): boolean {
    return this.#state === 'playing' && !this.#idle;
  }

  get idle(): boolean {
    return this.#idle;
  }

  get underruns(): number {
    return this.#clock.underruns;
  }

  /** Order of the stream's decoder rows: one per prompt in the mix, then the unconditional row. */
  get layout(): RowLayout {
    return this.#layout;
  }

  /** Rows in the decoder: the layout's, then one per prompt being prepared. */
  get rows(): number {
    return this.#layout.rows + this.#preparing.length;
  }

  /** Prompts whose rows are being built for the next control, in row order after the layout's rows. */
  get preparing(): readonly { text: string; encoding: PromptEncoding }[] {
    return this.#preparing;
  }

  /** True until the first packet after a start has gone out. */
  get unanchored(): boolean {
    return !this.#clock.anchored;
  }

  /** True when the next step has work before its decoder run (a reset, a control to apply) or no lead to wait for. */
  get wantsStepNow(): boolean {
    return !this.#clock.anchored || this.#resetPending || this.nextReadyControl() !== undefined;
  }

  /** The rows' windows belong to an older sequence (until takeStaleRows). */
  get rowsStale(): boolean {
    return this.#staleRows;
  }

  /** True once: the rows' windows must be forgotten (and built again from the history). */
  takeStaleRows(): boolean {
    const stale = this.#staleRows;
    this.#staleRows = false;
    return stale;
  }

  /** Audio buffered ahead of the listener, in ms (negative: the listener ran dry). */
  lead(now: number): number {
    return this.#clock.lead(now);
  }

  /** Generated audio per wall time over the last few seconds (1 = just real time). */
  rtf(frameRate: number): number {
    return this.#progress.rtf(frameRate);
  }

  // Playback.

  pause(now: number): void {
    if (this.#state !== 'playing') return;
    this.#state = 'paused';
    this.#holdClock(now);
  }

  play(now: number): void {
    this.#state = 'playing';
    this.#holdClock(now);
  }

  /**
   * Idle or heard again, independent of playback: an idle stream takes no compute, keeps its rows and
   * history, and its lead clock stands still, so it resumes where it stood with the lead it had.
   */
  setIdle(idle: boolean, now: number): void {
    this.#idle = idle;
    this.#holdClock(now);
  }

  /** Ends output and forgets the music; prompts and config stay. Play starts afresh. */
  stop(): void {
    this.#state = 'stopped';
    this.#resetPending = true;
    this.#clock.forget();
  }

  /** The next step starts a new history (the audio timeline continues). */
  requestReset(): void {
    this.#resetPending = true;
  }

  /** A generating stream whose listener ran dry is re-anchored, as a player re-buffers. */
  catchUpUnderrun(now: number): void {
    if (this.generating) this.#clock.catchUp(now);
  }

  /** `ms` of audio went out. */
  sent(ms: number, now: number): void {
    this.#clock.sent(ms, now);
  }

  // Controls.

  queueControl(c: PendingControl): void {
    this.#pending.push(c);
  }

  /** Forgets a queued control (its prompts could not be encoded). */
  dropControl(c: PendingControl): void {
    this.#pending = this.#pending.filter((p) => p !== c);
  }

  /** The oldest queued control if its prompts are encoded, else undefined. It stays queued until applied. */
  nextReadyControl(): PendingControl | undefined {
    return this.#pending.length > 0 && this.#pending[0]!.ready ? this.#pending[0] : undefined;
  }

  /** Texts of a control's prompts that have no row in the layout yet. */
  newTexts(c: PendingControl): string[] {
    const have = new Set(this.#mix.prompts.map((p) => p.text));
    return (c.prompts ?? []).map((p) => p.text).filter((t) => !have.has(t));
  }

  /** Rows for the control's new prompts are to be built; true when that changes the rows. */
  prepare(c: PendingControl): boolean {
    const texts = this.newTexts(c);
    if (texts.join('\0') === this.#preparing.map((p) => p.text).join('\0')) return false;
    this.#preparing = texts.map((text) => ({ text, encoding: c.encoding(text) }));
    return true;
  }

  /** Makes the oldest queued control take effect (prompts ramp over `transitionFrames`); true when the rows changed. */
  applyControl(c: PendingControl, transitionFrames: number): boolean {
    if (this.#pending[0] !== c) throw new Error(`stream ${this.id}: controls apply in order (internal)`);
    this.#pending.shift();
    let rowsChanged = this.#preparing.length > 0;
    this.#preparing = [];
    if (c.prompts) {
      this.#prompts = c.prompts;
      const before = this.#mix.prompts.map((p) => p.text).join('\0');
      this.#mix.retarget(
        c.prompts.map((p) => ({ ...p, encoding: c.encoding(p.text) })),
        transitionFrames,
        transitionFrames === 0,
      );
      if (this.#mix.prompts.map((p) => p.text).join('\0') !== before) rowsChanged = true;
      this.#relayoutRows();
    }
    if (c.config) {
      if (c.config.seed !== this.#config.seed) this.#rng = new Rng(c.config.seed);
      this.#config = c.config;
    }
    this.#control++;
    return rowsChanged;
  }

  /** A pending reset of a playing stream takes effect: a new, empty history. True when it did. */
  restartIfPending(): boolean {
    if (!this.#resetPending || this.#state !== 'playing') return false;
    this.#resetPending = false;
    this.#history = new TokenHistory(this.#codebooks, this.#pad, this.#nextFrame);
    this.#staleRows = true;
    this.codec.reset();
    return true;
  }

  // History.

  /** Starts the history from an audio prompt's codes [frame][k]; returns the frames complete in it. */
  startFromAudio(frames: number[][]): CompletedFrame[] {
    const complete = this.#history.startFrom(frames);
    this.#staleRows = true;
    return complete;
  }

  /**
   * Goes on from a resumed stream's last frames [frame][k], the first being absolute frame `firstFrame`:
   * they become the history (rows built again from it), and those complete in it from `codecFrom` on go
   * to the codec. The rest complete as the next steps pass them.
   */
  resumeFrom(frames: number[][], firstFrame: number, codecFrom: number, firstDueAt: number): void {
    this.#clock.firstDueAt(firstDueAt);
    this.#history = new TokenHistory(this.#codebooks, this.#pad, firstFrame);
    this.#nextFrame = firstFrame;
    for (const done of this.startFromAudio(frames)) {
      if (done.frame >= codecFrom) this.completeFrame(done.frame, done.codes);
      else this.#nextFrame = done.frame + 1;
    }
    this.#newFrames = null; // known to whoever resumed the stream
  }

  /** When the history fills the window: keeps its last `keep` frames; the rows are built again from them. */
  reprimeIfFull(window: number, keep: number): void {
    if (this.#history.position < window) return;
    this.#history.reprime(keep);
    this.#staleRows = true;
  }

  /** Appends a sampled column (the array is kept); returns the frame it completed, if any. */
  appendColumn(tokens: number[]): CompletedFrame | null {
    const done = this.#history.append(tokens);
    this.#timeline.mark(this.#history.nextFrame - 1, this.#control);
    return done;
  }

  /** A complete frame goes to the codec. */
  completeFrame(frame: number, codes: number[]): void {
    this.codec.push(codes);
    this.#timeline.markIfUnset(frame, this.#control);
    this.#nextFrame = frame + 1;
    if (this.#newFrames && this.#newFrames.first + this.#newFrames.codes.length === frame) this.#newFrames.codes.push(codes);
    else this.#newFrames = { first: frame, codes: [codes] };
  }

  /** The frames completed since the last call (contiguous; a gap starts a new run), or null. */
  takeNewFrames(): { first: number; codes: number[][] } | null {
    const frames = this.#newFrames;
    this.#newFrames = null;
    return frames;
  }

  /** After the step's column: ramps advance one frame; true when a prompt was dropped (the rows change). */
  finishStep(now: number): boolean {
    const dropped = this.#mix.advance();
    if (dropped) this.#relayoutRows();
    this.#progress.record(now);
    return dropped;
  }

  /** Control of the frame whose audio starts at codec frame `frame`. */
  controlAt(frame: number): number {
    return this.#timeline.controlAt(frame, this.#control);
  }

  /** The lead clock stands still while the stream is paused or idle: nobody is playing its audio. */
  #holdClock(now: number): void {
    if (this.#state === 'paused' || this.#idle) this.#clock.pause(now);
    else this.#clock.resume(now);
  }

  #relayoutRows(): void {
    if (this.#layout.prompts !== this.#mix.prompts.length) this.#layout = new RowLayout(this.#mix.prompts.length);
  }
}
