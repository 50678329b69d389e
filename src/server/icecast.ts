// One piece, over 400 lines: one source connection's handshake, refusal and streaming share its state machine.
// Icecast source client: streams one PacketSource to an Icecast 2.4+ mount as Ogg Opus.
//
// The source connection is an HTTP PUT written on a raw net/tls socket (Node's http client would send
// the body with Transfer-Encoding: chunked, which Icecast 2.4 does not decode). With `Expect:
// 100-continue` Icecast answers `100 Continue` (then, later, a bare `HTTP/1.0 200 OK`); without it,
// `200 OK`. Either status means "stream now"; anything else (401 bad password, 403 "Mountpoint in
// use" or a refused content type, ...) is reported with the server's reason and retried.
//
// Every connection gets a fresh OggOpusMuxer: the two header pages first (Icecast caches them for late
// listeners), then the live packets, one Ogg page run per packet batch. A dropped or refused
// connection is retried with capped exponential backoff and jitter. If the socket's userland buffer
// grows past a bound (Icecast or the network stalls), the connection is dropped and redialled instead
// of buffering without bound. stop() ends the Ogg stream (EOS page) and closes the socket.
import net from 'node:net';
import tls from 'node:tls';
import type { StampedPacket } from '../stream/engine-core.ts';
import { OggOpusMuxer } from '../stream/ogg-muxer.ts';
import type { PacketSource } from './packet-source.ts';

export type IcecastState = 'connecting' | 'streaming' | 'waiting' | 'stopped';

export interface IcecastSourceOptions {
  /** http://source:PASSWORD@host:port/mount.ogg (https: for a TLS listen socket). */
  url: string;
  source: PacketSource;
  name?: string;
  description?: string;
  genre?: string;
  log?: (level: 'info' | 'warn', msg: string) => void;
  /** Reconnect delays: initialMs doubled per failed attempt, capped at maxMs, with jitter (default 1 s .. 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** Drop and redial when this many bytes are queued in the socket beyond the kernel buffer (default 256 KiB). */
  maxBufferedBytes?: number;
  /** Time allowed for TCP connect + the server's response to the PUT (default 10 s). */
  handshakeTimeoutMs?: number;
}

interface Target {
  secure: boolean;
  host: string;
  port: number;
  /** host[:port] as it goes in the Host header */
  hostHeader: string;
  mount: string;
  user: string;
  password: string;
  /** the URL without the password, for logs */
  display: string;
}

/** Parses and checks an Icecast source URL. Throws a RangeError that never contains the password. */
export function parseIcecastUrl(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError('Icecast URL is not a valid URL (expected http://source:PASSWORD@host:port/mount.ogg)');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`Icecast URL must be http: or https: (got ${u.protocol})`);
  const secure = u.protocol === 'https:';
  const mount = u.pathname + u.search;
  if (mount === '/' || mount === '')
    throw new RangeError('Icecast URL has no mount point (e.g. http://source:PASSWORD@host:8000/radio.ogg)');
  if (u.password === '') throw new RangeError('Icecast URL has no source password (http://source:PASSWORD@host:port/mount)');
  const user = u.username === '' ? 'source' : decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  // URL keeps IPv6 hosts in brackets; net.connect wants them bare.
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    secure,
    host,
    port,
    hostHeader: u.host,
    mount,
    user,
    password,
    display: `${u.protocol}//${encodeURIComponent(user)}@${u.host}${mount}`,
  };
}

/** Header values: no control characters (no header injection through a channel name). */
function headerValue(s: string): string {
  let out = '';
  let inRun = false; // a run of control characters becomes one space
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const control = c < 0x20 || c === 0x7f;
    if (!control) out += ch;
    else if (!inRun) out += ' ';
    inRun = control;
  }
  return out.trim();
}

const MAX_RESPONSE_HEAD = 16 * 1024;
const MAX_ERROR_BODY = 2048;
/** How long to wait for the body of an error response (its reason text) before giving up on it. */
const ERROR_BODY_WAIT_MS = 1000;
/** A connection that streamed at least this long resets the backoff. */
const STABLE_MS = 10_000;
const STOP_CLOSE_WAIT_MS = 2000;
/** Longest time a packet waits in the muxer for its page to fill. */
const PAGE_FLUSH_MS = 100;

type Phase = 'handshake' | 'refused' | 'streaming' | 'closed';

interface Connection {
  socket: net.Socket;
  phase: Phase;
  head: Buffer;
  /** the refusal (status line), while its body is read */
  refusal: string;
  body: Buffer;
  timer: NodeJS.Timeout | null;
  muxer: OggOpusMuxer | null;
  /** flushes packets left waiting for a full page (see onPackets) */
  flushTimer: NodeJS.Timeout | null;
  unsubscribe: (() => void) | null;
  streamingSince: number;
  /** the first socket error, if any: the reason given when the socket closes */
  error: Error | null;
  closed: Promise<void>;
}

export class IcecastSource {
  private readonly target: Target;
  private readonly source: PacketSource;
  private readonly log: (level: 'info' | 'warn', msg: string) => void;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly maxBuffered: number;
  private readonly handshakeTimeoutMs: number;
  private readonly requestHead: Buffer;
  private readonly streamTitle: string | undefined;

  private _state: IcecastState = 'stopped';
  private running = false;
  private conn: Connection | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private stopping: Promise<void> | null = null;
  private _lastError: string | null = null;
  private _connections = 0;

  constructor(options: IcecastSourceOptions) {
    this.target = parseIcecastUrl(options.url);
    this.source = options.source;
    this.log = options.log ?? ((level, msg) => (level === 'warn' ? console.warn : console.log)(`[icecast] ${msg}`));
    this.initialMs = options.backoff?.initialMs ?? 1000;
    this.maxMs = options.backoff?.maxMs ?? 30_000;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs))
      throw new RangeError(`backoff must have 0 < initialMs <= maxMs (got ${this.initialMs}, ${this.maxMs})`);
    this.maxBuffered = options.maxBufferedBytes ?? 256 * 1024;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.streamTitle = options.name;

    const t = this.target;
    const auth = Buffer.from(`${t.user}:${t.password}`, 'utf8').toString('base64');
    const lines = [
      `PUT ${t.mount} HTTP/1.1`,
      `Host: ${t.hostHeader}`,
      `Authorization: Basic ${auth}`,
      'User-Agent: riverrun',
      'Content-Type: audio/ogg',
      'Ice-Public: 0',
      `Ice-Audio-Info: channels=${this.source.format.channels};samplerate=${this.source.format.sampleRate}`,
    ];
    if (options.name !== undefined) lines.push(`Ice-Name: ${headerValue(options.name)}`);
    if (options.description !== undefined) lines.push(`Ice-Description: ${headerValue(options.description)}`);
    if (options.genre !== undefined) lines.push(`Ice-Genre: ${headerValue(options.genre)}`);
    lines.push('Expect: 100-continue', '', '');
    this.requestHead = Buffer.from(lines.join('\r\n'), 'utf8');
  }

  get state(): IcecastState {
    return this._state;
  }

  /** Why the last connection attempt failed or the last connection dropped; null once streaming. */
  get lastError(): string | null {
    return this._lastError;
  }

  /** Connections that reached 'streaming' so far. */
  get connections(): number {
    return this._connections;
  }

  /** Starts connecting (and keeps reconnecting until stop()). No-op while running. */
  start(): void {
    if (this.running) return;
    if (this.stopping) throw new Error('IcecastSource: start() while stop() is in progress');
    this.running = true;
    this.attempt = 0;
    this.connect();
  }

  /** Ends the stream cleanly (EOS page, socket closed) and stops reconnecting. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const conn = this.conn;
    this.conn = null;
    if (!conn) {
      this._state = 'stopped';
      return Promise.resolve();
    }
    this.stopping = this.closeGracefully(conn).finally(() => {
      this._state = 'stopped';
      this.stopping = null;
    });
    return this.stopping;
  }

  private async closeGracefully(c: Connection): Promise<void> {
    c.unsubscribe?.();
    c.unsubscribe = null;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    if (c.flushTimer) clearTimeout(c.flushTimer);
    c.flushTimer = null;
    if (c.phase === 'streaming' && c.muxer && !c.socket.destroyed) {
      c.phase = 'closed';
      try {
        c.socket.end(c.muxer.end());
      } catch {
        c.socket.destroy();
      }
      this.log('info', `stopped streaming to ${this.target.display}`);
      const timeout = setTimeout(() => c.socket.destroy(), STOP_CLOSE_WAIT_MS);
      await c.closed;
      clearTimeout(timeout);
    } else {
      c.phase = 'closed';
      c.socket.destroy();
      await c.closed;
    }
  }

  private connect(): void {
    this.retryTimer = null;
    if (!this.running) return;
    this._state = 'connecting';
    const t = this.target;
    const socket = t.secure
      ? tls.connect({ host: t.host, port: t.port, servername: net.isIP(t.host) ? undefined : t.host })
      : net.connect({ host: t.host, port: t.port });
    let resolveClosed!: () => void;
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
    const c: Connection = {
      socket,
      phase: 'handshake',
      head: Buffer.alloc(0),
      refusal: '',
      body: Buffer.alloc(0),
      timer: null,
      muxer: null,
      flushTimer: null,
      unsubscribe: null,
      streamingSince: 0,
      error: null,
      closed,
    };
    this.conn = c;
    socket.setNoDelay(true);
    c.timer = setTimeout(() => this.fail(c, `no response from ${t.display} within ${this.handshakeTimeoutMs} ms`), this.handshakeTimeoutMs);
    socket.once(t.secure ? 'secureConnect' : 'connect', () => {
      if (c.phase === 'handshake') socket.write(this.requestHead);
    });
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', (err) => {
      c.error ??= err;
    });
    socket.on('close', () => {
      resolveClosed();
      if (c.phase === 'refused') this.refused(c);
      else if (c.phase !== 'closed') {
        const why = c.error
          ? c.error.message
          : c.phase === 'streaming'
            ? 'connection closed by the server'
            : 'connection closed before a response';
        this.fail(c, `${c.phase === 'streaming' ? 'lost connection to' : 'could not connect to'} ${t.display}: ${why}`);
      }
    });
  }

  private onData(c: Connection, chunk: Buffer): void {
    if (c.phase === 'refused') {
      if (c.body.length < MAX_ERROR_BODY) c.body = Buffer.concat([c.body, chunk]);
      if (c.body.length >= MAX_ERROR_BODY) this.refused(c);
      return;
    }
    // While streaming, Icecast may still send its late `HTTP/1.0 200 OK`: nothing else comes, ignore it.
    if (c.phase !== 'handshake') return;
    c.head = Buffer.concat([c.head, chunk]);
    const end = c.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (c.head.length > MAX_RESPONSE_HEAD) this.fail(c, `${this.target.display} sent an oversized response header`);
      return;
    }
    const statusLine = c.head.subarray(0, c.head.indexOf('\r\n')).toString('latin1');
    const m = /^HTTP\/\d(?:\.\d)?\s+(\d{3})\s*(.*)$/.exec(statusLine);
    if (!m) {
      this.fail(c, `${this.target.display} is not an Icecast server (response: ${JSON.stringify(statusLine.slice(0, 80))})`);
      return;
    }
    const status = Number(m[1]);
    if (status === 100 || (status >= 200 && status < 300)) {
      this.go(c);
      return;
    }
    // Refused: read the body for the server's reason ("Mountpoint in use", ...) until close or a timeout.
    c.phase = 'refused';
    c.refusal = `${status} ${m[2] ?? ''}`.trim();
    c.body = c.head.subarray(end + 4);
    if (c.timer) clearTimeout(c.timer);
    c.timer = setTimeout(() => this.refused(c), ERROR_BODY_WAIT_MS);
    if (c.body.length >= MAX_ERROR_BODY) this.refused(c);
  }

  private refused(c: Connection): void {
    if (c.phase !== 'refused') return;
    const body = c.body
      .subarray(0, MAX_ERROR_BODY)
      .toString('utf8')
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    const status = Number(c.refusal.slice(0, 3));
    const hint =
      status === 401
        ? ' (check the source user and password)'
        : status === 403 || status === 409
          ? ' (is another source on this mount?)'
          : '';
    this.fail(c, `${this.target.display} refused the source: ${c.refusal}${body ? `: ${body}` : ''}${hint}`);
  }

  private go(c: Connection): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.phase = 'streaming';
    c.streamingSince = Date.now();
    c.head = Buffer.alloc(0);
    const format = this.source.format;
    const tags: Record<string, string> = {};
    if (this.streamTitle !== undefined) tags.TITLE = this.streamTitle;
    c.muxer = new OggOpusMuxer({ channels: format.channels, preSkip: format.preSkip, vendor: 'riverrun', tags });
    this._state = 'streaming';
    this._lastError = null;
    this._connections++;
    this.log('info', `streaming to ${this.target.display}`);
    if (!this.write(c, c.muxer.headers())) return;
    // subscribe() may call back synchronously (a backlog of packets): write() handles any phase.
    const unsubscribe = this.source.subscribe((packets) => this.onPackets(c, packets));
    if (c.phase === 'streaming') c.unsubscribe = unsubscribe;
    else unsubscribe();
  }

  /**
   * The muxer emits a page per DEFAULT_MAX_PACKETS_PER_PAGE packets (100 ms); packets that do not fill a
   * page (live 20 ms batches) go out at the latest PAGE_FLUSH_MS later, so framing overhead stays small
   * and no packet waits long. Icecast listeners buffer far more than that anyway.
   */
  private onPackets(c: Connection, packets: StampedPacket[]): void {
    const muxer = c.muxer;
    if (c.phase !== 'streaming' || !muxer || packets.length === 0) return;
    let pages: Buffer;
    try {
      pages = muxer.push(packets);
    } catch (err) {
      // A malformed packet: never let it escape into the PacketSource's fan-out.
      this.log('warn', `dropped a batch of ${packets.length} packets for ${this.target.display}: ${(err as Error).message}`);
      return;
    }
    if (!this.write(c, pages)) return;
    if (muxer.pendingPackets > 0 && c.flushTimer === null) {
      c.flushTimer = setTimeout(() => {
        c.flushTimer = null;
        if (c.phase === 'streaming') this.write(c, muxer.flush());
      }, PAGE_FLUSH_MS);
    }
  }

  /** Writes to the socket; false (and the connection dropped) when its buffer is over the bound. */
  private write(c: Connection, data: Buffer): boolean {
    if (c.phase !== 'streaming' || c.socket.destroyed) return false;
    if (data.length > 0) c.socket.write(data);
    if (c.socket.writableLength > this.maxBuffered) {
      this.fail(
        c,
        `${this.target.display} is not keeping up (${c.socket.writableLength} bytes queued, limit ${this.maxBuffered}): reconnecting`,
      );
      return false;
    }
    return true;
  }

  /** Drops connection c (if it is still the current one) and schedules the next attempt. */
  private fail(c: Connection, reason: string): void {
    if (c.phase === 'closed') return;
    const wasStreaming = c.phase === 'streaming';
    c.phase = 'closed';
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    if (c.flushTimer) clearTimeout(c.flushTimer);
    c.flushTimer = null;
    c.unsubscribe?.();
    c.unsubscribe = null;
    c.socket.destroy();
    if (this.conn !== c) return;
    this.conn = null;
    if (!this.running) return;
    this._lastError = reason;
    if (wasStreaming && Date.now() - c.streamingSince >= STABLE_MS) this.attempt = 0;
    const cap = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    // "Equal jitter": half fixed, half random, so that many channels do not redial in lockstep.
    const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
    this.log('warn', `${reason}; retrying in ${delay} ms`);
    this._state = 'waiting';
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
