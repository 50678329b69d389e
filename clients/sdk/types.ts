// The types of the Riverrun SDK: protocol v1 messages (re-exported from src/protocol), connect
// options and events.

import type { GenerationConfig, PlaybackAction, WeightedPrompt } from '../../src/protocol/controls.ts';
import type {
  AppliedMessage,
  AudioMessage,
  ModelSummary,
  OpusStreamFormat,
  PongMessage,
  ResumeHandle,
  ServerMessage,
  SessionSpec,
  SetupCompleteMessage,
  StatusMessage,
} from '../../src/protocol/messages.ts';
import type { ReconnectOptions } from '../../src/protocol/reconnect.ts';
import type { WebSocketConstructor } from './websocket.ts';

export type { ErrorCode } from '../../src/protocol/errors.ts';
export type { ReconnectOptions } from '../../src/protocol/reconnect.ts';
export type {
  AppliedMessage,
  AudioMessage,
  GenerationConfig,
  ModelSummary,
  OpusStreamFormat,
  PlaybackAction,
  PongMessage,
  ResumeHandle,
  ServerMessage,
  SessionSpec,
  SetupCompleteMessage,
  StatusMessage,
  WeightedPrompt,
};

/** Options common to both kinds of connection. */
export interface CommonConnectOptions {
  /**
   * Server address: `ws://host:port` or `wss://host` (`/v1/ws` is appended when the URL has no path);
   * `http(s)://` is accepted and turned into `ws(s)://`.
   */
  url: string;
  /** Access token (sent in setup, never in the URL). */
  token?: string;
  /** Decode the audio to PCM and emit `pcm` events (loads opus-decoder, WebAssembly). Default false. */
  decode?: boolean;
  /** Reconnect with exponential backoff when the connection drops; false to never reconnect. */
  reconnect?: ReconnectOptions | false;
  /**
   * Keep-alive: a protocol ping every intervalMs; the connection counts as dead (and is dropped, then
   * reconnected) when nothing at all arrived for timeoutMs. false turns it off. Default 5000 / 15000.
   */
  heartbeat?: { intervalMs?: number; timeoutMs?: number } | false;
  /**
   * When the FIRST connection fails (server down, refused), keep retrying with backoff instead of
   * rejecting connect(). Default false: connect() rejects and the client closes.
   */
  waitForServer?: boolean;
  /** WebSocket implementation; default globalThis.WebSocket, else the `ws` package (Node). */
  WebSocket?: WebSocketConstructor;
}

/** Listen to a channel. */
export interface ListenConnectOptions extends CommonConnectOptions {
  listen: string;
  session?: never;
}

/** Open a personal session (a stream of this connection's own, that it steers). */
export interface SessionConnectOptions extends CommonConnectOptions {
  session: SessionSpec;
  listen?: never;
}

export type ConnectOptions = ListenConnectOptions | SessionConnectOptions;

/** An `error` event: a protocol error from the server, or one of the SDK's own (codes starting `client_`). */
export interface RiverrunErrorEvent {
  /** A protocol v1 error code, or the SDK's own `client_decode` / `client_bad_frame` (docs/errors.md). */
  code: string;
  message: string;
  /** The server closes the connection after a fatal error (the client may reconnect, see `close`). */
  fatal: boolean;
  /** For errors about one field: its path, e.g. `prompts[1].weight`. */
  field?: string;
}

/** One decoded Opus packet (20 ms), or the silence standing in for a lost one. */
export interface PcmFrame {
  /** seq of the packet. */
  seq: number;
  /** pts of the packet (as in the `audio` message). */
  pts: number;
  /**
   * Position of channelData[c][0] in the generated audio, in 48 kHz samples: pts - preSkip + the samples
   * dropped from this frame as pre-skip. Consecutive frames have consecutive positions unless packets were
   * lost beyond the concealment limit.
   */
  start: number;
  /** The control version (prompts + config) that produced it. */
  control: number;
  /** One Float32Array per channel (1 or 2, as in setup_complete), 48 kHz, pre-skip already removed. */
  channelData: Float32Array[];
  /** Samples per channel (960, fewer for the frames the pre-skip cuts). */
  samples: number;
  /** True for silence inserted for a packet that never arrived (a gap in seq). */
  lost: boolean;
}

export interface CloseEvent {
  /** WebSocket close code (1006 when the connection failed or dropped without a close frame). */
  code: number;
  /** Close reason; the server puts the error code there when it closes on an error. */
  reason: string;
  /** The fatal error the server sent before closing, if any. */
  error?: RiverrunErrorEvent;
  /** True when the client will reconnect; false when this is the end (close() or a fatal error). */
  willReconnect: boolean;
}

export interface ReconnectingEvent {
  /** 1 for the first retry after a drop, 2 for the next... */
  attempt: number;
  /** Wait before this attempt. */
  delayMs: number;
}

export interface ReconnectEvent {
  /** The attempt that succeeded. */
  attempt: number;
  setup: SetupCompleteMessage;
}

/** Every event of RiverrunClient, by name, with the value listeners receive. */
export interface RiverrunEvents {
  /** setup_complete: on the first connection and after every reconnection (format, session id). */
  setup: SetupCompleteMessage;
  /** Opus packets as received (msgpack bin, 20 ms each), with seq, pts and control. */
  audio: AudioMessage;
  /** Decoded audio, one event per packet (only with `decode: true`). */
  pcm: PcmFrame;
  /** A steering change took effect (also sent once after setup with what is playing). */
  applied: AppliedMessage;
  status: StatusMessage;
  pong: PongMessage;
  error: RiverrunErrorEvent;
  /** The WebSocket closed; `willReconnect` says whether the client goes on. */
  close: CloseEvent;
  /** A reconnection is scheduled. */
  reconnecting: ReconnectingEvent;
  /** A reconnection succeeded: setup_complete again and, for a session, the last steering re-applied. */
  reconnect: ReconnectEvent;
  /** Every decoded server message, known types or not (v1 grows by adding message types). */
  message: ServerMessage | { type: string; [key: string]: unknown };
}

export type ClientState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closed';

/** Prompts as the steering methods take them: a list, or one text (weight 1). */
export type PromptsInput = string | readonly WeightedPrompt[];
