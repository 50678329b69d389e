// The WebSocket the client uses: the platform's (browsers, Deno, Node >= 22) or the `ws` package (Node
// 20 has no global WebSocket). Only the part of the WHATWG API that both provide is used, so this file
// needs neither DOM nor `ws` typings.
import { PROTOCOL_PATH } from '../../src/protocol/constants.ts';

interface WebSocketMessageEventLike {
  data: unknown;
}

interface WebSocketCloseEventLike {
  code: number;
  reason: string;
}

/** The subset of the WHATWG WebSocket the client needs (browsers and `ws` both have it). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: WebSocketMessageEventLike) => void) | null;
  onclose: ((event: WebSocketCloseEventLike) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** readyState of an open WebSocket. */
export const WS_OPEN = 1;

/**
 * `ws://host:port` → `ws://host:port/v1/ws`; a URL with a path keeps it. http(s) becomes ws(s).
 * Throws a TypeError for anything that is not a ws, wss, http or https URL.
 */
export function normalizeUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(input)} (expected ws://host:port or wss://host)`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw new TypeError(`not a WebSocket URL: ${JSON.stringify(input)} (expected ws:// or wss://)`);
  if (url.pathname === '' || url.pathname === '/') url.pathname = PROTOCOL_PATH;
  return url.toString();
}

/** The URL with `session=ID` in its query, for a front that routes a resuming connection on it. */
export function withSessionParam(url: string, session: string): string {
  const u = new URL(url);
  u.searchParams.set('session', session);
  return u.toString();
}

let nodeWebSocket: Promise<WebSocketConstructor> | null = null;

/**
 * globalThis.WebSocket when there is one; otherwise the `ws` package, imported on first use. The
 * specifier is a variable so that browser bundlers do not try to bundle `ws`.
 */
export function resolveWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof global === 'function') return Promise.resolve(global);
  const specifier = 'ws';
  nodeWebSocket ??= (
    import(/* @vite-ignore */ specifier) as Promise<{ default?: WebSocketConstructor; WebSocket?: WebSocketConstructor }>
  ).then(
    (mod) => {
      const ctor = mod.default ?? mod.WebSocket;
      if (typeof ctor !== 'function')
        throw new Error('no WebSocket: this platform has no globalThis.WebSocket and the `ws` package has none');
      return ctor;
    },
    (err: unknown) => {
      nodeWebSocket = null;
      throw new Error(
        `no WebSocket: this platform has no globalThis.WebSocket and the \`ws\` package could not be loaded (${err instanceof Error ? err.message : String(err)})`,
      );
    },
  );
  return nodeWebSocket;
}
