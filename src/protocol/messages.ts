// The messages of protocol v1, both ways. docs/protocol.md describes them for client authors; these
// types are their definition. Every message is one binary WebSocket frame holding one msgpack map with a
// string `type` (codec.ts).
import type { GenerationConfig, PlaybackAction, WeightedPrompt } from './controls.ts';
import type { ErrorCode } from './errors.ts';

// ---------------------------------------------------------------------------------------------------
// Client → server

/**
 * Every client message may carry an `id` (1..MAX_MESSAGE_ID_CHARS characters; ping's own id may also be
 * a number). The `error` that answers the message, and for a personal session the `applied` that a
 * prompts or config message causes, echo it, so that a client can match replies to what it sent.
 */
export type MessageId = string | number;

/** Prompts and config of a personal session, set at setup. */
export interface SessionSpec {
  prompts?: WeightedPrompt[];
  /** Omitted fields take their defaults. */
  config?: Partial<GenerationConfig>;
  /** A short clip (WAV or Ogg Opus bytes) that the stream continues from. */
  audio?: Uint8Array;
  /** Also send the codec tokens of every frame (`codes` messages). */
  tapCodes?: boolean;
}

export interface SetupMessage {
  type: 'setup';
  id?: string;
  token?: string;
  /** Channel to listen to. */
  listen?: string;
  /** Create a personal stream for this connection. Exactly one of listen, session and resume. */
  session?: SessionSpec;
  /** Take up a personal session whose connection (or whose server) was lost: what setup_complete gave. */
  resume?: ResumeHandle;
}

/** What takes a personal session up again on any server of its cluster (setup_complete.resume). */
export interface ResumeHandle {
  session: string;
  token: string;
}

export interface PromptsMessage {
  type: 'prompts';
  id?: string;
  prompts: WeightedPrompt[];
  /** Cross-fade length in ms (default 0: at once). */
  transitionMs?: number;
}

export interface ConfigMessage {
  type: 'config';
  id?: string;
  /** The whole config: omitted fields return to their defaults. */
  config: Partial<GenerationConfig>;
}

export interface PlaybackMessage {
  type: 'playback';
  id?: string;
  action: PlaybackAction;
}

export interface PingMessage {
  type: 'ping';
  id: MessageId;
}

export type ClientMessage = SetupMessage | PromptsMessage | ConfigMessage | PlaybackMessage | PingMessage;
export type ClientMessageType = ClientMessage['type'];
export const CLIENT_MESSAGE_TYPES: readonly ClientMessageType[] = ['setup', 'prompts', 'config', 'playback', 'ping'];

/** Fields of each client message, `type` included; the server refuses any other (unknown_field). */
export const CLIENT_MESSAGE_FIELDS: Readonly<Record<ClientMessageType, readonly string[]>> = Object.freeze({
  setup: ['type', 'id', 'token', 'listen', 'session', 'resume'],
  prompts: ['type', 'id', 'prompts', 'transitionMs'],
  config: ['type', 'id', 'config'],
  playback: ['type', 'id', 'action'],
  ping: ['type', 'id'],
});

/** Fields of `setup.session`. */
export const SESSION_FIELDS: readonly (keyof SessionSpec)[] = ['prompts', 'config', 'audio', 'tapCodes'];
/** Fields of `setup.resume`. */
export const RESUME_FIELDS: readonly (keyof ResumeHandle)[] = ['session', 'token'];
/** Fields of one prompt. */
export const PROMPT_FIELDS: readonly (keyof WeightedPrompt)[] = ['text', 'weight'];

// ---------------------------------------------------------------------------------------------------
// Server → client

/** The audio of a connection (setup_complete.audio): Opus packets of 20 ms at 48 kHz. */
export interface OpusStreamFormat {
  codec: 'opus';
  sampleRate: 48000;
  channels: 1 | 2;
  frameMs: 20;
  /** Samples (48 kHz) the decoder drops at the start: the encoder's lookahead (RFC 7845 pre-skip). */
  preSkip: number;
}

/** The model generating the stream, as setup_complete names it. */
export interface ModelSummary {
  name: string;
  /** True when the weights are random (a preset for tests and benchmarks): the audio is noise. */
  random: boolean;
}

export interface SetupCompleteMessage {
  type: 'setup_complete';
  sessionId: string;
  /** The channel listened to, when setup asked for one. */
  channel?: string;
  audio: OpusStreamFormat;
  model: ModelSummary;
  /**
   * A personal session on a server of a cluster: what a new connection sends as `setup.resume` to take
   * the session up again after its server is gone. Kept secret, like a token.
   */
  resume?: ResumeHandle;
  /** True when this setup took up an existing session (setup.resume): its audio goes on at the next seq. */
  resumed?: boolean;
}

export interface AudioMessage {
  type: 'audio';
  /** seq of the first packet; the others follow without gaps. */
  seq: number;
  /** pts (48 kHz samples) of the first packet; each packet adds PACKET_SAMPLES. */
  pts: number;
  /** Opus packets, one per 20 ms. */
  packets: readonly Uint8Array[];
  /** The control version (prompts + config) that produced this audio. */
  control: number;
}

/**
 * A control (prompts + config) in effect from `pts` on. Sent when a change takes effect, and right after
 * setup_complete with the stream's current control (control 0 with the starting prompts and config for
 * a fresh stream).
 */
export interface AppliedMessage {
  type: 'applied';
  control: number;
  prompts: readonly WeightedPrompt[];
  config: GenerationConfig;
  /** pts of the first audio generated under this control. */
  pts: number;
  /** The id of the prompts or config message that caused it (a personal session's own changes). */
  id?: string;
}

export interface StatusMessage {
  type: 'status';
  /** Audio generated ahead of real time, in ms. */
  leadMs: number;
  /** Generation speed as a multiple of real time. */
  rtf: number;
  /** Times the stream ran dry since it started. */
  underruns: number;
  /** Listeners of the channel (channels only). */
  listeners?: number;
}

/** The `error` message. */
export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  fatal: boolean;
  /** Path of the field at fault (`prompts[1].weight`), for the codes about one field. */
  field?: string;
  /** The id of the message this error answers, when it carried a valid one. */
  id?: MessageId;
}

export interface PongMessage {
  type: 'pong';
  id: MessageId;
}

/** The codec tokens of one complete frame (sessions that asked for them with `session.tapCodes`). */
export interface CodesMessage {
  type: 'codes';
  /** Frame index (50 per second; frame f starts at pts f * 960). */
  frame: number;
  /** One code per codebook. */
  codes: number[];
}

export type ServerMessage =
  | SetupCompleteMessage
  | AudioMessage
  | AppliedMessage
  | StatusMessage
  | ErrorMessage
  | PongMessage
  | CodesMessage;
export type ServerMessageType = ServerMessage['type'];
export const SERVER_MESSAGE_TYPES: readonly ServerMessageType[] = [
  'setup_complete',
  'audio',
  'applied',
  'status',
  'error',
  'pong',
  'codes',
];
