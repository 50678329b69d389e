// What the main thread knows of one engine stream, kept current from the requests it makes and the events
// the engine sends: enough to create the stream again where it stood if the engine worker dies (resume.ts).
// Small: the controls in effect and those not yet applied, playback, and the last frames' codes.
import { PACKET_SAMPLES } from '../protocol/constants.ts';
import {
  completeConfig,
  type GenerationConfig,
  type PlaybackAction,
  type PlaybackState,
  type WeightedPrompt,
} from '../protocol/controls.ts';
import type { AppliedEvent, StampedPacket, StreamSpec } from './engine-core.ts';
import type { StreamResume } from './resume.ts';

/** A steering request sent and not yet applied, with the tag its applied event will carry. */
export type UnappliedControl =
  | { tag: number; kind: 'prompts'; prompts: WeightedPrompt[]; transitionMs: number }
  | { tag: number; kind: 'config'; config: Partial<GenerationConfig> };

export class StreamRecord {
  readonly channels: 1 | 2;
  readonly tapCodes: boolean;
  /** The audio prompt, until the first frames generated from it arrive (they then stand for it). */
  private audioPrompt: Float32Array | undefined;
  private prompts: WeightedPrompt[];
  private config: GenerationConfig;
  private control = 0;
  private unapplied: UnappliedControl[] = [];
  private state: PlaybackState = 'playing';
  private idle = false;
  /** Codes of the last complete frames; frames[0] is absolute frame `firstFrame`. */
  private frames: number[][] = [];
  private firstFrame = 0;
  private nextSeq = 0;
  /** The stream's lead after its last packets, and when they arrived (main-thread clock). */
  private lead = { ms: 0, at: 0 };

  constructor(
    readonly id: string,
    spec: StreamSpec,
    /** Frames of history to keep: the context a resumed stream starts from. */
    private readonly keepFrames: number,
    /** Codec frames per 48 kHz packet sample (frameRate / 48000): where a history without frames resumes. */
    private readonly framesPerSample: number,
  ) {
    this.channels = spec.channels ?? 1;
    this.tapCodes = spec.tapCodes ?? false;
    this.audioPrompt = spec.audioPrompt?.slice();
    this.prompts = spec.prompts;
    this.config = completeConfig(spec.config);
    this.state = spec.state ?? 'playing';
    this.idle = spec.idle ?? false;
    // A stream resumed from elsewhere (another worker's record) starts from where that one stood.
    const resume = spec.resume;
    if (resume) {
      this.frames = resume.frames.slice(-keepFrames);
      this.firstFrame = resume.firstFrame + resume.frames.length - this.frames.length;
      this.nextSeq = resume.nextSeq;
      this.control = resume.control;
      this.lead = { ms: resume.leadMs, at: performance.now() };
    }
  }

  /**
   * The spec that creates the stream again where it stood, and the controls to send it after that, in
   * order. A stream that has sent nothing yet starts afresh (from its audio prompt, if it had one).
   */
  respawn(now: number): { spec: StreamSpec; controls: UnappliedControl[] } {
    const base = {
      prompts: this.prompts,
      config: this.config,
      channels: this.channels,
      tapCodes: this.tapCodes,
      state: this.state,
      idle: this.idle,
    };
    if (this.frames.length === 0 && this.nextSeq === 0)
      return { spec: { ...base, ...(this.audioPrompt && { audioPrompt: this.audioPrompt.slice() }) }, controls: this.unapplied };
    const resume: StreamResume = {
      frames: this.frames,
      firstFrame: this.frames.length > 0 ? this.firstFrame : Math.floor(this.nextSeq * PACKET_SAMPLES * this.framesPerSample),
      nextSeq: this.nextSeq,
      control: this.control,
      // The listener's buffer ran down meanwhile, unless nobody was playing it.
      leadMs: this.state === 'playing' && !this.idle ? this.lead.ms - (now - this.lead.at) : this.lead.ms,
    };
    return { spec: { ...base, resume }, controls: this.unapplied };
  }

  // Requests.

  steered(c: UnappliedControl): void {
    this.unapplied.push(c);
  }

  played(action: PlaybackAction): void {
    if (action === 'play') this.state = 'playing';
    else if (action === 'pause') this.state = this.state === 'stopped' ? 'stopped' : 'paused';
    else {
      // stop and reset_context forget the music: a resumed stream starts a new history too.
      if (action === 'stop') this.state = 'stopped';
      this.forgetFrames();
    }
  }

  setIdle(idle: boolean): void {
    this.idle = idle;
  }

  // Events.

  onApplied(e: AppliedEvent): void {
    this.prompts = e.prompts;
    this.config = e.config;
    this.control = e.control;
    if (e.tag !== undefined) this.unapplied = this.unapplied.filter((c) => c.tag > e.tag!);
  }

  onHistory(first: number, codes: number[][]): void {
    const end = this.firstFrame + this.frames.length;
    if (this.frames.length === 0 || first > end || first < this.firstFrame) {
      this.frames = [];
      this.firstFrame = first;
    } else this.frames.length = first - this.firstFrame; // frames completed again (a resume's forced tail)
    this.frames.push(...codes);
    if (this.frames.length > this.keepFrames) {
      const drop = this.frames.length - this.keepFrames;
      this.frames = this.frames.slice(drop);
      this.firstFrame += drop;
    }
    this.audioPrompt = undefined;
  }

  onPackets(packets: readonly StampedPacket[], leadMs: number, now: number): void {
    if (packets.length > 0) this.nextSeq = packets[packets.length - 1]!.seq + 1;
    this.lead = { ms: leadMs, at: now };
  }

  private forgetFrames(): void {
    this.frames = [];
    this.audioPrompt = undefined;
  }
}
