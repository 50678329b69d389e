// Why RiverrunClient.connect() failed, as an error of Riverrun's one shape (src/errors.ts): a stable
// code, the WebSocket close code, and the server's fatal error when it sent one.
import { type ErrorRegistry, RiverrunError } from '../../src/errors.ts';
import type { RiverrunErrorEvent } from './types.ts';

export const CONNECT_ERRORS = {
  CONNECT_REJECTED: { meaning: 'The server answered setup with a fatal error (`error` holds it: unauthorized, not_found, busy...).' },
  CONNECT_FAILED: { meaning: 'No connection could be made, or it closed before setup_complete without an error from the server.' },
  CONNECT_NO_WEBSOCKET: { meaning: 'The platform has no WebSocket and the `ws` package could not be loaded.' },
  CONNECT_CLOSED: { meaning: 'close() was called before the connection was set up.' },
} as const satisfies ErrorRegistry;

export type ConnectErrorCode = keyof typeof CONNECT_ERRORS;

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
