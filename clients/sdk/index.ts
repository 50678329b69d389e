// Riverrun SDK: a typed client for protocol v1 (docs/protocol.md), for Node (>= 20, with the `ws`
// package) and browsers. Runtime dependencies: msgpackr; opus-decoder (only with `decode: true`); ws
// (Node without a global WebSocket). Usage: docs/sdk.md.

export { backoffDelay, DEFAULT_RECONNECT, isRetryable, RETRYABLE_ERROR_CODES, type ReconnectOptions } from './backoff.ts';
export { RiverrunClient, RiverrunConnectError } from './client.ts';
export { decodeMessage, encodeMessage } from './codec.ts';
export { Emitter, type Listener } from './emitter.ts';
export { FRAME_SAMPLES, MAX_CONCEALED_PACKETS, PcmDecoder } from './pcm-decoder.ts';
export type * from './types.ts';
export { DEFAULT_PATH, normalizeUrl, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from './websocket.ts';
