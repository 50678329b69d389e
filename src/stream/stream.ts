// One generation in the engine: its controls (prompts, config, playback), its random generator, its
// token history, and its audio chain (codec chunks -> 48 kHz -> Opus packets). The engine owns the
// decoder rows; a stream knows how many it needs: one unconditional row, then one per prompt.

import type { GenerationConfig, PlaybackState, WeightedPrompt } from '../protocol/controls.ts';
import type { CodecStream } from './codec-stream.ts';
import type { OpusPacketizer } from './opus-packetizer.ts';
import { PromptMix } from './prompt-mix.ts';
import type { Resampler } from './resampler.ts';
import { Rng } from './rng.ts';
import type { PromptEncoding } from './row-pool.ts';
import { TokenHistory } from './token-history.ts';

/** A steering change waiting for its prompts to be encoded; applied at the first step after. */
export interface PendingControl {
  prompts?: WeightedPrompt[];
  transitionMs: number;
  config?: GenerationConfig;
  encodings: Map<string, PromptEncoding>;
  missing: Set<string>;
}

export class Stream {
  /** Version of prompts + config: bumped whenever a change takes effect. */
  control = 0;
  prompts: WeightedPrompt[];
  config: GenerationConfig;
  rng: Rng;
  readonly mix = new PromptMix();
  history: TokenHistory;
  state: PlaybackState = 'playing';
  pending: PendingControl[] = [];
  /** Set when the stream must restart from an empty history at its next step (reset_context, stop). */
  resetPending = false;
  /** Set when the history has a prefix the decoder has not seen (audio prompt, re-prime). */
  needsPrefill = false;
  /** Prompts added mid-stream whose rows have not seen the history yet (their windows are built from it
   * under their own text before the stream's next step). */
  readonly unprimedPrompts = new Set<string>();
  /** Absolute index of the next frame to complete: where the audio timeline continues after a reset. */
  nextFrame = 0;

  // Lead accounting, in ms of the stream's own audio clock.
  /** wall time at which the listener's playback of packet 0 (re-anchored after pauses and underruns) began */
  anchor: number | null = null;
  emittedMs = 0;
  underruns = 0;
  pausedAt: number | null = null;

  /** Absolute frame index -> control that generated it (pruned as packets go out). */
  readonly frameControl = new Map<number, number>();
  framesGenerated = 0;
  /** recent (wall ms, frames generated) samples for the real-time factor */
  readonly progress: [number, number][] = [];

  constructor(
    readonly id: string,
    prompts: WeightedPrompt[],
    config: GenerationConfig,
    codebooks: number,
    pad: number,
    readonly codec: CodecStream,
    readonly resampler: Resampler,
    readonly packetizer: OpusPacketizer,
    readonly tapCodes: boolean,
  ) {
    this.prompts = prompts;
    this.config = config;
    this.rng = new Rng(config.seed);
    this.history = new TokenHistory(codebooks, pad);
  }

  /** Rows in the decoder: the unconditional row, then one per prompt in the mix. */
  get rows(): number {
    return 1 + this.mix.prompts.length;
  }

  /** Audio buffered ahead of the listener, in ms (negative: the listener ran dry). */
  lead(now: number): number {
    if (this.anchor === null) return 0;
    const clock = this.pausedAt ?? now;
    return this.emittedMs - (clock - this.anchor);
  }

  /** Generated audio per wall time over the last few seconds (1 = just real time). */
  rtf(frameRate: number): number {
    if (this.progress.length < 2) return 0;
    const [t0, f0] = this.progress[0]!;
    const [t1, f1] = this.progress[this.progress.length - 1]!;
    return t1 > t0 ? (f1 - f0) / frameRate / ((t1 - t0) / 1000) : 0;
  }
}
