// Riverrun SDK: a typed client for protocol v1 (docs/protocol.md), for Node (>= 20, with the `ws`
// package) and browsers. Runtime dependencies: msgpackr; opus-decoder (only with `decode: true`); ws
// (Node without a global WebSocket). Usage: docs/sdk.md. The protocol's own definitions (messages,
// codec, codes, ranges, reconnect policy) come from src/protocol and are re-exported here.

export { decodeMessage, encodeMessage } from '../../src/protocol/codec.ts';
export { PACKET_SAMPLES, PROTOCOL_PATH } from '../../src/protocol/constants.ts';
export { CLOSE_CODES } from '../../src/protocol/errors.ts';
export { backoffDelay, DEFAULT_RECONNECT, isRetryable, RETRYABLE_ERROR_CODES } from '../../src/protocol/reconnect.ts';
export { RiverrunClient } from './client.ts';
export { Emitter, type Listener } from './emitter.ts';
export { CLIENT_EVENT_ERRORS, type ClientEventErrorCode, CONNECT_ERRORS, type ConnectErrorCode, RiverrunConnectError } from './errors.ts';
export { MAX_CONCEALED_PACKETS, PcmDecoder } from './pcm-decoder.ts';
export type * from './types.ts';
export { normalizeUrl, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from './websocket.ts';
