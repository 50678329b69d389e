// When and how soon a client reconnects: exponential backoff with jitter, and which closes are worth
// retrying. The SDK, the CLI (through the SDK) and the web page all follow this policy.
import { CLOSE_CODES, type ErrorCode } from './errors.ts';

export interface ReconnectOptions {
  /** Delay before the first retry, in ms (default 500). */
  initialDelayMs?: number;
  /** Longest delay, in ms (default 15000). */
  maxDelayMs?: number;
  /** Growth of the delay per failed attempt (default 2). */
  factor?: number;
  /**
   * Random part of each delay, 0..1 (default 0.5): the delay is drawn uniformly from
   * [d·(1 − jitter), d], so that many clients dropped together do not come back together.
   */
  jitter?: number;
  /** Attempts in a row without a successful setup before giving up (default: no limit). */
  maxAttempts?: number;
}

export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>> = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 15_000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Number.POSITIVE_INFINITY,
});

/** DEFAULT_RECONNECT with `options` over it; throws a RangeError for values out of range. */
export function reconnectOptions(options: ReconnectOptions | undefined): Required<ReconnectOptions> {
  const o = { ...DEFAULT_RECONNECT, ...stripUndefined(options ?? {}) };
  if (
    !(o.initialDelayMs >= 0) ||
    !(o.maxDelayMs >= o.initialDelayMs) ||
    !(o.factor >= 1) ||
    !(o.jitter >= 0 && o.jitter <= 1) ||
    !(o.maxAttempts >= 0)
  ) {
    throw new RangeError(
      `bad reconnect options ${JSON.stringify(options)}: need 0 <= initialDelayMs <= maxDelayMs, factor >= 1, jitter in 0..1, maxAttempts >= 0`,
    );
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The wait before attempt `attempt` (1, 2, ...): initial·factor^(attempt−1), capped, minus jitter. */
export function backoffDelay(
  attempt: number,
  options: Readonly<Required<ReconnectOptions>> = DEFAULT_RECONNECT,
  random: () => number = Math.random,
): number {
  const base = Math.min(options.maxDelayMs, options.initialDelayMs * options.factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - options.jitter * random()));
}

/**
 * Fatal error codes after which reconnecting makes sense: the server was going down, failed, was full,
 * or dropped a reader that fell behind. Any other fatal error needs the request fixed first
 * (unauthorized, forbidden, not_found, a malformed setup...).
 */
export const RETRYABLE_ERROR_CODES: readonly ErrorCode[] = ['shutting_down', 'internal', 'busy', 'slow_consumer'];

/** Close codes that mean "fix the request first": policy violation, too big, and Riverrun's 44xx. */
const FINAL_CLOSE_CODES: readonly number[] = [
  CLOSE_CODES.POLICY_VIOLATION,
  CLOSE_CODES.MESSAGE_TOO_BIG,
  CLOSE_CODES.UNAUTHORIZED,
  CLOSE_CODES.FORBIDDEN,
  CLOSE_CODES.NOT_FOUND,
];

/**
 * Whether a close is worth a reconnection. `errorCode` is the code of the fatal error the server sent
 * before closing, if one arrived; otherwise the close reason (the server puts the error code there) and
 * then the close code decide. Connections that drop without a close frame (1006) are retried.
 */
export function isRetryable(closeCode: number, reason: string, errorCode?: string): boolean {
  const code = errorCode ?? (/^[a-z_]+$/.test(reason) ? reason : undefined);
  if (code !== undefined && (RETRYABLE_ERROR_CODES as readonly string[]).includes(code)) return true;
  if (code !== undefined && errorCode !== undefined) return false;
  return !FINAL_CLOSE_CODES.includes(closeCode);
}
