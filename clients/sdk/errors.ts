// The SDK's own error codes. RiverrunConnectError says why connect() failed, in Riverrun's one error
// shape (src/errors.ts): a stable code, the WebSocket close code, and the server's fatal error when it
// sent one. CLIENT_EVENT_ERRORS are the codes of `error` events that the SDK raises itself; they share
// the event's `code` field with protocol v1's wire codes, hence lower_snake with a `client_` prefix.
import { type ErrorRegistry, RiverrunError } from '../../src/errors.ts';
import type { RiverrunErrorEvent } from './types.ts';

export const CONNECT_ERRORS = {
  CONNECT_REJECTED: { meaning: 'The server answered setup with a fatal error (`error` holds it: unauthorized, not_found, busy...).' },
  CONNECT_FAILED: { meaning: 'No connection could be made, or it closed before setup_complete without an error from the server.' },
  CONNECT_NO_WEBSOCKET: { meaning: 'The platform has no WebSocket and the `ws` package could not be loaded.' },
  CONNECT_CLOSED: { meaning: 'close() was called before the connection was set up.' },
} as const satisfies ErrorRegistry;

export type ConnectErrorCode = keyof typeof CONNECT_ERRORS;

export const CLIENT_EVENT_ERRORS = {
  client_decode: { meaning: 'The PCM decoder failed (loading opus-decoder, or a packet libopus refuses); not fatal.' },
  client_bad_frame: { meaning: 'A frame from the server is not msgpack; it is dropped, not fatal.' },
} as const satisfies ErrorRegistry;

export type ClientEventErrorCode = keyof typeof CLIENT_EVENT_ERRORS;

/** connect() failed, or the client closed before connecting. */
export class RiverrunConnectError extends RiverrunError<ConnectErrorCode> {
  constructor(
    code: ConnectErrorCode,
    message: string,
    /** WebSocket close code (1006: could not connect, or dropped). */
    readonly closeCode: number,
    /** The server's fatal error, when it sent one (e.g. unauthorized, not_found). */
    readonly error?: RiverrunErrorEvent,
  ) {
    super(code, message);
  }
}
