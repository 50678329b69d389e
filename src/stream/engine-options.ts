// The engine's tunables and their defaults for a model.
import type { ModelBundle } from '../models/model-bundle.ts';
import { type CodecStreamOptions, DEFAULT_CODEC_STREAM } from './codec-stream.ts';

export interface EngineOptions {
  /** Audio to keep generated ahead of the listener (ms). Streams ahead of it take no compute. */
  leadTargetMs: number;
  /** Self-attention window in positions; a stream re-primes when it is full. */
  windowFrames: number;
  /** Frames of context kept when re-priming. */
  keepFrames: number;
  /** Most decoder rows in one run. */
  maxBatchRows: number;
  /**
   * Row-tokens of history a stream may run per step through rows that have not seen it (after an audio
   * prompt, a re-prime or a reset, and for a prompt coming in mid-stream): bounds what such a step costs
   * beyond an ordinary one. A stream whose own rows are being rebuilt does not sample, and runs twice
   * this. See prefill.ts, and docs/benchmarks.md for what the default 4 costs.
   */
  prefillTokensPerStep: number;
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
    prefillTokensPerStep: 4,
    maxTextTokens: 64,
    codec: DEFAULT_CODEC_STREAM,
    bitrate: 64000,
    now: () => performance.now(),
  };
}
