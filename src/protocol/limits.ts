// What protocol v1 accepts from clients: value ranges (fixed by v1, the same on every server) and the
// limits on one message (defaults here; a server may configure them).
import type { GenerationConfig } from './controls.ts';

export interface NumberRange {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
}

/** Limits on what one client message may carry (configurable per server). */
export interface ProtocolLimits {
  /** Longest prompt text, in Unicode code points after trimming. */
  maxPromptChars: number;
  /** Most prompts in one message (each prompt is a decoder row of the stream at every step). */
  maxPrompts: number;
}

/**
 * 300 code points is past what the text encoder reads anyway (64 T5 tokens, roughly 250-300 characters
 * of English); 4 prompts keep a stream at 5 decoder rows (4 conditioned + 1 unconditioned) and at most 9
 * while it cross-fades to 4 new ones.
 */
export const DEFAULT_PROTOCOL_LIMITS: Readonly<ProtocolLimits> = Object.freeze({ maxPromptChars: 300, maxPrompts: 4 });

/**
 * Largest topK accepted: the codebook size of MusicGen (2048), the largest codebook of the models
 * Riverrun serves. A topK at or above the served model's own codebook size (512 for the demo model)
 * keeps every token, as 0 does. The range does not depend on the model, so that v1's ranges are the same
 * on every server.
 */
export const TOP_K_MAX = 2048;

/**
 * Accepted values of the generation config (the defaults are DEFAULT_CONFIG in controls.ts).
 * - temperature 0..5: 0 samples greedily; MusicGen sounds right around 0.8-1.3 and turns to noise
 *   past ~2; 5 leaves room to experiment without being meaningless.
 * - topK 0..TOP_K_MAX (integer): 0 = off.
 * - topP 0..1: 0 = off (1 keeps everything too).
 * - guidance 0..10: classifier-free guidance scale, 0 = unconditioned, 1 = conditioned only (no
 *   guidance), 3 = MusicGen's default; beyond ~10 the logits blow up and the music falls apart.
 * - seed 0..2^32-1 (integer).
 */
export const CONFIG_RANGES: Readonly<Record<keyof GenerationConfig, NumberRange>> = Object.freeze({
  temperature: { min: 0, max: 5, integer: false },
  topK: { min: 0, max: TOP_K_MAX, integer: true },
  topP: { min: 0, max: 1, integer: false },
  guidance: { min: 0, max: 10, integer: false },
  seed: { min: 0, max: 0xffff_ffff, integer: true },
});

/** A prompt's weight: relative, normalised over the prompts; at least one prompt must be above 0. */
export const WEIGHT_RANGE: NumberRange = Object.freeze({ min: 0, max: 100, integer: false });
/** Length of the cross-fade to new prompts, in ms (0 = at once). */
export const TRANSITION_MS_RANGE: NumberRange = Object.freeze({ min: 0, max: 60_000, integer: false });
/** Longest token, in code points. */
export const MAX_TOKEN_CHARS = 4096;
/** Longest session id or resume token in `setup.resume`, in code points. */
export const MAX_RESUME_CHARS = 128;
/** Longest ping id (a string), in code points. */
export const MAX_PING_ID_CHARS = 64;
/** Longest id of any other client message (a string, echoed by its error and applied), in code points; as for ping. */
export const MAX_MESSAGE_ID_CHARS = 64;
/** A channel id: 1-64 of a-z 0-9 _ -, starting with a letter or digit. */
export const CHANNEL_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Deepest nesting of maps and arrays in a client frame (v1 needs 4). */
export const MAX_NESTING = 8;
/**
 * Most values (map keys included) in a client frame; v1 needs under 60 with 4 prompts. Bounds the work
 * per frame: a full 64 KiB frame of tiny maps would otherwise cost milliseconds to refuse. A server with
 * a higher maxPrompts raises it.
 */
export const MAX_VALUES = 1024;
