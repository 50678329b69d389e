// What a client can set on a stream: weighted prompts, the generation config, playback. Part of
// protocol v1; the engine takes the same types.

export interface WeightedPrompt {
  text: string;
  /** Relative weight, >= 0. Weights are normalised over the prompts of a stream. */
  weight: number;
}

export interface GenerationConfig {
  /** Sampling temperature; 0 = greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0 = off). */
  topK: number;
  /** Nucleus sampling mass (0 = off). */
  topP: number;
  /** Classifier-free guidance scale (1 = none). */
  guidance: number;
  /** Seed of the stream's random generator. */
  seed: number;
}

export const DEFAULT_CONFIG: Readonly<GenerationConfig> = { temperature: 1, topK: 250, topP: 0, guidance: 3, seed: 0 };

export type PlaybackAction = 'play' | 'pause' | 'stop' | 'reset_context';
export const PLAYBACK_ACTIONS: readonly PlaybackAction[] = ['play', 'pause', 'stop', 'reset_context'];

export type PlaybackState = 'playing' | 'paused' | 'stopped';

/** A full config from a partial one: omitted fields return to the defaults. */
export function completeConfig(
  partial: Partial<GenerationConfig> = {},
  defaults: Readonly<GenerationConfig> = DEFAULT_CONFIG,
): GenerationConfig {
  return { ...defaults, ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) };
}
