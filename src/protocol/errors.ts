// Every error the server can send over protocol v1, in one registry: a stable code, a message
// template, whether it ends the connection, the WebSocket close code used when it does and, for the
// codes the server also answers HTTP requests with, the HTTP status. docs/errors.md lists the same
// table (with every other family of codes); test/protocol.test.ts checks that the two agree.
//
// Rules for this file:
// - Codes are part of protocol v1: never rename or change the meaning of one. A code that is no longer
//   sent moves to RETIRED_ERROR_CODES and is never reused for anything else.
// - Messages are for people; clients branch on `code` (and `fatal`), never on message text.
// - `fatal` is the default for the code. The server may make any error fatal where the protocol says
//   so (every error before setup_complete is fatal); then the code's `closeCode` is used.
//
// Close codes: standard ones where one fits (RFC 6455 §7.4.1 and the IANA registry: 1001 going away,
// 1008 policy violation, 1009 message too big, 1011 internal error, 1013 try again later), otherwise
// application codes 4000 + the closest HTTP status (4401, 4403, 4404, 4429), as graphql-ws does. The
// close reason (at most 123 bytes) is always the error code itself, so a client that misses the error
// message (a slow consumer, a frame ws refused) still learns why.
import { type ErrorCodeSpec, RiverrunError } from '../errors.ts';
import type { ErrorMessage } from './messages.ts';

/** WebSocket close codes of protocol v1. */
export const CLOSE_CODES = {
  /** A peer ends the connection on purpose (the clients' close()). */
  NORMAL: 1000,
  /** The server is going down (or restarting). */
  GOING_AWAY: 1001,
  /**
   * Never sent in a close frame: what a WebSocket API reports when the connection failed or dropped
   * without one.
   */
  ABNORMAL: 1006,
  /** The client broke the protocol. */
  POLICY_VIOLATION: 1008,
  /** A frame exceeded maxPayload (ws itself closes with this code). */
  MESSAGE_TOO_BIG: 1009,
  /** The server failed. */
  INTERNAL_ERROR: 1011,
  /** The server is full; reconnect later, with backoff. */
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  RATE_LIMITED: 4429,
} as const;

export interface ProtocolErrorSpec extends ErrorCodeSpec {
  /** Message template: each `%s` is replaced by one argument, in order. */
  readonly message: string;
  /** Whether the server closes the connection after sending the error. */
  readonly fatal: boolean;
  /** The close code used when the error is fatal (by default or because the server made it so). */
  readonly closeCode: number;
  /** The first argument is the path of the field at fault (sent as the error's `field`). */
  readonly fieldArg?: boolean;
}

const P = CLOSE_CODES;

export const PROTOCOL_ERRORS = {
  bad_message: {
    message: 'Malformed message: %s',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    meaning:
      'The frame is not one msgpack map with a string `type` (not msgpack, not a map, trailing bytes, non-string keys, duplicate keys, extension types, nesting too deep, too many values, a string that is not valid UTF-8, a text frame).',
  },
  unknown_type: {
    message: 'Unknown message type %s',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    meaning: 'The `type` is not a client message type of protocol v1.',
  },
  invalid_field: {
    message: 'Invalid field %s: %s',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    fieldArg: true,
    meaning: 'A field is missing, has the wrong type or is out of range; `field` names it.',
  },
  unknown_field: {
    message: 'Unknown field %s in a %s message',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    fieldArg: true,
    meaning: 'A field that protocol v1 does not define for this message (perhaps a feature of a newer server); `field` names it.',
  },
  setup_required: {
    message: 'The first message must be setup (got %s)',
    fatal: true,
    closeCode: P.POLICY_VIOLATION,
    meaning: 'A steering message (prompts, config, playback) came before setup_complete.',
  },
  already_setup: {
    message: 'This connection is already set up; open a new connection for a different setup',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    meaning: 'A second setup on the same connection.',
  },
  unauthorized: {
    message: 'Unauthorized: %s',
    fatal: true,
    closeCode: P.UNAUTHORIZED,
    httpStatus: 401,
    meaning:
      'The server requires a token and setup had none, or an unknown one. Over HTTP: the channel list, an Ogg stream or /metrics asked for without a token the server requires, or with an unknown one.',
  },
  forbidden: {
    message: 'Forbidden: %s',
    fatal: false,
    closeCode: P.FORBIDDEN,
    httpStatus: 403,
    meaning:
      "The token's role does not allow this (a listener asking for a session, a non-operator steering a channel). Over HTTP: a WebSocket upgrade from an Origin that is not on the allow-list, or /metrics without an operator token.",
  },
  not_found: {
    message: 'No channel %s',
    fatal: true,
    closeCode: P.NOT_FOUND,
    httpStatus: 404,
    meaning: 'setup asked to listen to a channel that does not exist. Over HTTP: the Ogg stream of an unknown channel.',
  },
  no_session: {
    message: 'No session to resume: %s',
    fatal: true,
    closeCode: P.NOT_FOUND,
    meaning:
      "setup.resume names a session that no server of the cluster keeps (it ended, its resume window passed, or the server is not in a cluster), or its token is not the session's; start a new session. Also sent to a session whose stream another server took over.",
  },
  no_stream: {
    message: 'Nothing to steer: this connection has no session and listens to no channel',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    meaning: 'prompts, config or playback on a connection that has neither a session nor a channel to steer.',
  },
  busy: {
    message: 'Server busy: %s',
    fatal: true,
    closeCode: P.TRY_AGAIN_LATER,
    httpStatus: 503,
    meaning:
      'A cap on personal sessions or connections is reached; try again later with backoff. Over HTTP: the Ogg stream when --max-ogg-listeners are connected (with Retry-After).',
  },
  rate_limited: {
    message: 'Rate limited: %s',
    fatal: false,
    closeCode: P.RATE_LIMITED,
    httpStatus: 429,
    meaning:
      'prompts, config or playback came faster than the steering rate allows; the message was dropped. At setup (fatal then): the client address sent too many wrong tokens and is backing off; setup with a token is refused, unchecked, until the backoff passes. Also fatal: the connection sent more messages per second than its budget, or more than the server queues unanswered. Over HTTP: a request with a token from an address that is backing off.',
  },
  too_large: {
    message: 'Message too large: %s',
    fatal: true,
    closeCode: P.MESSAGE_TOO_BIG,
    meaning: 'A frame exceeded maxPayload. ws closes the connection with 1009 itself, usually before the error message can be sent.',
  },
  prompt_too_long: {
    message: 'Prompt %s is %s characters long; at most %s are allowed',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    fieldArg: true,
    meaning: 'A prompt text is longer than maxPromptChars (counted in Unicode code points, after trimming).',
  },
  too_many_prompts: {
    message: '%s has %s prompts; at most %s are allowed',
    fatal: false,
    closeCode: P.POLICY_VIOLATION,
    fieldArg: true,
    meaning: 'More prompts than maxPrompts in one message.',
  },
  slow_consumer: {
    message: 'Closing: this connection could not keep up (%s)',
    fatal: true,
    closeCode: P.POLICY_VIOLATION,
    meaning:
      'The client read too slowly and its send buffer passed the limit; the error may not arrive, the close reason says it. Reconnecting is fine.',
  },
  shutting_down: {
    message: 'The server is shutting down',
    fatal: true,
    closeCode: P.GOING_AWAY,
    httpStatus: 503,
    meaning: 'The server is stopping or restarting; reconnect later. Over HTTP: an Ogg stream asked for during shutdown.',
  },
  internal: {
    message: 'Internal server error',
    fatal: true,
    closeCode: P.INTERNAL_ERROR,
    httpStatus: 500,
    meaning: 'The server failed; details are in its log, not in the message. Over HTTP: a request handler failed.',
  },
} as const satisfies Record<string, ProtocolErrorSpec>;

export type ErrorCode = keyof typeof PROTOCOL_ERRORS;

/** Every code in use, in registry order. */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(PROTOCOL_ERRORS) as ErrorCode[];

/**
 * Codes that protocol v1 once sent and no longer does. They are never reused, with any meaning.
 * (None yet.)
 */
export const RETIRED_ERROR_CODES: readonly string[] = [];

/** One argument per `%s` of a template. */
type TemplateArgs<S extends string> = S extends `${string}%s${infer Rest}` ? [string | number, ...TemplateArgs<Rest>] : [];
export type ErrorArgs<C extends ErrorCode> = TemplateArgs<(typeof PROTOCOL_ERRORS)[C]['message']>;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(PROTOCOL_ERRORS, code);
}

function errorSpec(code: ErrorCode): ProtocolErrorSpec {
  return PROTOCOL_ERRORS[code];
}

function format(template: string, args: readonly (string | number)[]): string {
  let i = 0;
  return template.replace(/%s/g, () => (i < args.length ? String(args[i++]) : '?'));
}

/** A rejected message or a failed connection, as the client will be told about it. */
export class ProtocolError<C extends ErrorCode = ErrorCode> extends RiverrunError<C> {
  readonly fatal: boolean;
  /** The WebSocket close code to use when the error is fatal. */
  readonly closeCode: number;
  /** The HTTP status used when the error answers an HTTP request (the codes that do have one). */
  readonly httpStatus: number | undefined;
  /** Path of the field at fault, for invalid_field, unknown_field, prompt_too_long, too_many_prompts. */
  readonly field: string | undefined;
  private readonly args: readonly (string | number)[];

  constructor(code: C, ...args: ErrorArgs<C>) {
    const spec = errorSpec(code);
    super(code, format(spec.message, args));
    this.fatal = spec.fatal;
    this.closeCode = spec.closeCode;
    this.httpStatus = spec.httpStatus;
    this.args = args;
    this.field = spec.fieldArg && args.length > 0 ? String(args[0]) : undefined;
  }

  /** The same error, closing the connection (e.g. any error before setup_complete). */
  asFatal(): ProtocolError<C> {
    if (this.fatal) return this;
    const e = new ProtocolError<C>(this.code, ...(this.args as ErrorArgs<C>));
    (e as { fatal: boolean }).fatal = true;
    return e;
  }

  /** The close reason to send with `closeCode`: the code itself (always well under 123 bytes). */
  get closeReason(): string {
    return this.code;
  }
}

/** Any thrown value as a ProtocolError; anything that is not one becomes `internal` (details stay in the log). */
export function toProtocolError(err: unknown): ProtocolError {
  return err instanceof ProtocolError ? err : new ProtocolError('internal');
}

/** The `{type:'error', code, message, fatal}` message for an error (`field` added when known). */
export function errorMessage(err: ProtocolError): ErrorMessage {
  const msg: ErrorMessage = { type: 'error', code: err.code, message: err.message, fatal: err.fatal };
  if (err.field !== undefined) msg.field = err.field;
  return msg;
}
