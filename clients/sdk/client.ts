// One piece, over 400 lines: connecting, reconnecting and the steering kept across drops share one state machine.
// RiverrunClient: one protocol v1 connection (a channel listened to, or a personal session), kept up
// across drops. Events in, steering out; see docs/sdk.md.
//
// Life cycle: idle → connect() → connecting (WebSocket opening, setup sent, waiting for setup_complete)
// → ready → (drop) → reconnecting (backoff timer) → connecting → ready ... → closed (close(), a fatal
// error that reconnecting cannot fix, or reconnect attempts exhausted). Each WebSocket gets its own
// handlers, and events from a socket that is no longer the current one are ignored.
//
// Steering state of a session, for reconnections: `confirmed` is what the server last reported in
// effect (its `applied` messages; the setup's prompts and config before the first), `desired` what the
// application asked for and the server has not confirmed yet. A new connection's setup carries
// `confirmed` (so setup never carries something the server refused), then `desired` is sent again, and a
// pause or stop is re-applied. A steering error about prompts or config drops the refused request.
// A session on a cluster comes back with its resume handle instead (setup.resume): the server it reaches
// takes the session up where it stood, steering included; if the session is gone, a new one is opened.
import { decodeMessage, encodeMessage } from '../../src/protocol/codec.ts';
import { CLOSE_CODES } from '../../src/protocol/errors.ts';
import { backoffDelay, isRetryable, type ReconnectOptions, reconnectOptions } from '../../src/protocol/reconnect.ts';
import { Emitter } from './emitter.ts';
import { type ClientEventErrorCode, RiverrunConnectError } from './errors.ts';
import { PcmDecoder } from './pcm-decoder.ts';
import type {
  AppliedMessage,
  AudioMessage,
  ClientState,
  ConnectOptions,
  GenerationConfig,
  PongMessage,
  PromptsInput,
  ResumeHandle,
  RiverrunErrorEvent,
  RiverrunEvents,
  SetupCompleteMessage,
  StatusMessage,
  WeightedPrompt,
} from './types.ts';
import { normalizeUrl, resolveWebSocket, type WebSocketConstructor, type WebSocketLike, WS_OPEN, withSessionParam } from './websocket.ts';

interface PendingPing {
  sentAt: number;
  resolve: (rttMs: number) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

type PersistentPlayback = 'play' | 'pause' | 'stop';

const DEFAULT_HEARTBEAT = { intervalMs: 5000, timeoutMs: 15_000 };
const HEARTBEAT_ID_PREFIX = 'riverrun-sdk-heartbeat-';
/** How long close() waits for the close handshake before giving up on it. */
const CLOSE_GRACE_MS = 2000;
/** Close code of the client's own close after a heartbeat timeout (application range, never sent by servers). */
const HEARTBEAT_TIMEOUT_CLOSE = 4000;

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function promptsFrom(input: PromptsInput): WeightedPrompt[] {
  return typeof input === 'string' ? [{ text: input, weight: 1 }] : input.map((p) => ({ text: p.text, weight: p.weight }));
}

function samePrompts(a: readonly WeightedPrompt[], b: readonly WeightedPrompt[]): boolean {
  return a.length === b.length && a.every((p, i) => p.text.trim() === b[i]!.text.trim() && p.weight === b[i]!.weight);
}

function configMatches(wanted: Partial<GenerationConfig>, actual: GenerationConfig): boolean {
  return (Object.keys(wanted) as (keyof GenerationConfig)[]).every((k) => wanted[k] === undefined || wanted[k] === actual[k]);
}

export class RiverrunClient extends Emitter<RiverrunEvents> {
  private opts: ConnectOptions | null = null;
  private url = '';
  private reconnectConfig: Required<ReconnectOptions> | null = null;
  private heartbeatConfig: { intervalMs: number; timeoutMs: number } | null = null;
  private ws: WebSocketLike | null = null;
  private _state: ClientState = 'idle';
  private everReady = false;
  private userClosed = false;
  /** Failed attempts in a row (0 while connected). */
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private heartbeatCount = 0;
  /** What the current socket's last error event said (Node only). */
  private socketError = '';
  /** The fatal error received on the current socket. */
  private fatal: RiverrunErrorEvent | null = null;
  private decoder: PcmDecoder | null = null;
  private pingCount = 0;
  private readonly pings = new Map<number, PendingPing>();
  private pendingConnect: { resolve: (m: SetupCompleteMessage) => void; reject: (e: Error) => void } | null = null;
  private closeWaiters: (() => void)[] = [];
  private confirmed: { prompts?: WeightedPrompt[]; config?: Partial<GenerationConfig> } = {};
  private desired: { prompts?: { prompts: WeightedPrompt[]; transitionMs?: number }; config?: Partial<GenerationConfig> } = {};
  private playback: PersistentPlayback = 'play';
  private _setup: SetupCompleteMessage | null = null;
  /**
   * A session on a cluster: what takes it up again after a drop, on whichever server the front picks
   * (setup_complete.resume). Null once the server says the session is gone (a new one is opened then).
   */
  private resumeHandle: ResumeHandle | null = null;
  /** Whether the current socket's setup is a resume. */
  private resuming = false;
  private _applied: AppliedMessage | null = null;
  private _status: StatusMessage | null = null;

  /** idle, connecting, ready (setup_complete received), reconnecting (waiting to retry) or closed. */
  get state(): ClientState {
    return this._state;
  }

  /** The latest setup_complete (audio format, session id), or null before the first. */
  get setup(): SetupCompleteMessage | null {
    return this._setup;
  }

  /** The latest `applied` message: the prompts and config in effect. */
  get applied(): AppliedMessage | null {
    return this._applied;
  }

  /** The latest `status` message. */
  get status(): StatusMessage | null {
    return this._status;
  }

  /** True for a personal session, false for a channel. */
  get isSession(): boolean {
    return this.opts?.session !== undefined;
  }

  /**
   * Opens the connection and sends setup. Resolves with setup_complete; rejects (RiverrunConnectError)
   * when the first connection fails: a fatal error in answer to setup (unauthorized, forbidden, not_found,
   * busy...), or no connection at all (unless `waitForServer`). A client connects once; after close(),
   * make a new one.
   */
  connect(options: ConnectOptions): Promise<SetupCompleteMessage> {
    if (this._state !== 'idle') return Promise.reject(new Error(`RiverrunClient.connect: already ${this._state}; use a new client`));
    try {
      if ((options.listen === undefined) === (options.session === undefined))
        throw new TypeError('RiverrunClient.connect: give exactly one of `listen` (a channel id) and `session`');
      this.url = normalizeUrl(options.url);
      this.reconnectConfig = options.reconnect === false ? null : reconnectOptions(options.reconnect);
      this.heartbeatConfig = options.heartbeat === false ? null : { ...DEFAULT_HEARTBEAT, ...options.heartbeat };
    } catch (err) {
      return Promise.reject(err);
    }
    this.opts = options;
    if (options.session !== undefined) {
      const { prompts, config } = options.session;
      if (prompts !== undefined) this.confirmed.prompts = promptsFrom(prompts);
      if (config !== undefined) this.confirmed.config = { ...config };
    }
    this._state = 'connecting';
    const promise = new Promise<SetupCompleteMessage>((resolve, reject) => {
      this.pendingConnect = { resolve, reject };
    });
    void this.open();
    return promise;
  }

  /**
   * New prompts (a text means one prompt of weight 1), cross-faded over `transitionMs`. Returns true when
   * sent now; false when not connected: a session then sends the latest prompts, config and
   * play/pause/stop asked for as soon as it is (re)connected; a channel connection drops it. The server
   * answers `applied` when it takes effect, or `error`.
   */
  setPrompts(prompts: PromptsInput, transitionMs?: number): boolean {
    const list = promptsFrom(prompts);
    if (this.isSession) this.desired.prompts = { prompts: list, ...(transitionMs !== undefined && { transitionMs }) };
    return this.sendSteering({ type: 'prompts', prompts: list, transitionMs });
  }

  /** The whole generation config: omitted fields return to their defaults. Returns as setPrompts does. */
  setConfig(config: Partial<GenerationConfig>): boolean {
    const copy = { ...config };
    if (this.isSession) this.desired.config = copy;
    return this.sendSteering({ type: 'config', config: copy });
  }

  /** Resume (after pause) or start afresh (after stop). */
  play(): boolean {
    return this.playbackAction('play');
  }

  /** Stop generating and sending audio; play() goes on from where it was. */
  pause(): boolean {
    return this.playbackAction('pause');
  }

  /** Stop and forget the music (prompts and config stay); play() starts afresh. */
  stop(): boolean {
    return this.playbackAction('stop');
  }

  /** Forget the musical context (out of a loop or a drift) and go on from the current prompts. */
  resetContext(): boolean {
    return this.playbackAction('reset_context');
  }

  /** Round trip to the server in ms (protocol ping / pong). Rejects when not connected, on close or after timeoutMs. */
  ping(timeoutMs = 10_000): Promise<number> {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WS_OPEN) return Promise.reject(new Error('RiverrunClient.ping: not connected'));
    const id = ++this.pingCount;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error(`RiverrunClient.ping: no pong within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(id, { sentAt: now(), resolve, reject, timer });
      this.sendRaw(ws, { type: 'ping', id });
    });
  }

  /**
   * Resolves with the next `type` event that passes `filter`; rejects after timeoutMs (default: none) or
   * when the client closes for good.
   */
  waitFor<K extends keyof RiverrunEvents>(
    type: K,
    filter?: (event: RiverrunEvents[K]) => boolean,
    timeoutMs?: number,
  ): Promise<RiverrunEvents[K]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        offEvent();
        offClose();
        if (timer !== undefined) clearTimeout(timer);
      };
      const offEvent = this.on(type, (event) => {
        if (filter !== undefined && !filter(event)) return;
        done();
        resolve(event);
      });
      const offClose = this.on('close', (event) => {
        if (event.willReconnect || type === 'close') return;
        done();
        reject(
          new Error(`RiverrunClient closed (${event.code}${event.reason ? ` ${event.reason}` : ''}) while waiting for ${String(type)}`),
        );
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(type)}`));
        }, timeoutMs);
      }
      if (this._state === 'closed' && type !== 'close') {
        done();
        reject(new Error(`RiverrunClient is closed; no ${String(type)} will come`));
      }
    });
  }

  /** Closes the connection for good (no reconnection). Resolves once the WebSocket is closed. */
  close(): Promise<void> {
    if (this._state === 'closed') return Promise.resolve();
    this.userClosed = true;
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const ws = this.ws;
    if (ws === null) {
      // Not connected (idle, waiting to reconnect, or resolving the WebSocket implementation).
      const wasIdle = this._state === 'idle';
      this.finish(new RiverrunConnectError('CONNECT_CLOSED', 'RiverrunClient: closed by the client before connecting', CLOSE_CODES.NORMAL));
      if (!wasIdle) this.emit('close', { code: CLOSE_CODES.NORMAL, reason: 'closed by the client', willReconnect: false });
    } else {
      try {
        ws.close(CLOSE_CODES.NORMAL, 'bye');
      } catch {
        // already closing
      }
      // A close handshake can hang on a dead connection: end it without waiting.
      const grace = setTimeout(() => {
        if (this.ws === ws) this.socketClosed(ws, CLOSE_CODES.ABNORMAL, 'close handshake timed out');
      }, CLOSE_GRACE_MS);
      this.closeWaiters.push(() => clearTimeout(grace));
    }
    return closed;
  }

  // -------------------------------------------------------------------------------------------------
  // Connection

  private async open(): Promise<void> {
    const opts = this.opts!;
    let WebSocketImpl: WebSocketConstructor;
    try {
      WebSocketImpl = opts.WebSocket ?? (await resolveWebSocket());
    } catch (err) {
      this.fail(new RiverrunConnectError('CONNECT_NO_WEBSOCKET', (err as Error).message, CLOSE_CODES.ABNORMAL));
      return;
    }
    if (this._state !== 'connecting') return; // closed meanwhile
    let ws: WebSocketLike;
    this.resuming = this.resumeHandle !== null;
    // A resuming connection names its session in the URL, for a front that routes on it (infra/haproxy).
    const url = this.resumeHandle ? withSessionParam(this.url, this.resumeHandle.session) : this.url;
    try {
      ws = new WebSocketImpl(url);
    } catch (err) {
      this.fail(new RiverrunConnectError('CONNECT_FAILED', `cannot open ${url}: ${(err as Error).message}`, CLOSE_CODES.ABNORMAL));
      return;
    }
    this.ws = ws;
    this.fatal = null;
    this.socketError = '';
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.sendRaw(ws, this.setupMessage());
      this.startHeartbeat(ws);
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this.onFrame(event.data);
    };
    ws.onerror = (event) => {
      // A close event follows; keep what the error says (Node's ws tells why, browsers do not).
      const e = event as { message?: unknown; error?: { message?: unknown } } | null;
      const message = e?.error?.message ?? e?.message;
      if (this.ws === ws && typeof message === 'string') this.socketError = message;
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.socketClosed(ws, event.code, event.reason);
    };
  }

  private setupMessage(): Record<string, unknown> & { type: string } {
    const opts = this.opts!;
    const msg: Record<string, unknown> & { type: string } = { type: 'setup', token: opts.token };
    if (this.resuming && this.resumeHandle) msg.resume = this.resumeHandle;
    else if (opts.listen !== undefined) msg.listen = opts.listen;
    else msg.session = { ...opts.session, prompts: this.confirmed.prompts, config: this.confirmed.config };
    return msg;
  }

  private sendRaw(ws: WebSocketLike, message: Record<string, unknown> & { type: string }): boolean {
    if (ws.readyState !== WS_OPEN) return false;
    try {
      ws.send(encodeMessage(message));
      return true;
    } catch {
      return false; // closing: the close event follows
    }
  }

  private sendSteering(message: Record<string, unknown> & { type: string }): boolean {
    if (this._state !== 'ready' || this.ws === null) return false;
    return this.sendRaw(this.ws, message);
  }

  private playbackAction(action: 'play' | 'pause' | 'stop' | 'reset_context'): boolean {
    if (this.isSession && action !== 'reset_context') this.playback = action;
    return this.sendSteering({ type: 'playback', action });
  }

  private startHeartbeat(ws: WebSocketLike): void {
    this.lastMessageAt = now();
    const hb = this.heartbeatConfig;
    if (hb === null) return;
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (this.ws !== ws) return;
      if (now() - this.lastMessageAt > hb.timeoutMs) {
        try {
          ws.close(HEARTBEAT_TIMEOUT_CLOSE, 'heartbeat timeout');
        } catch {
          // ignore
        }
        this.socketClosed(ws, CLOSE_CODES.ABNORMAL, `nothing received for ${hb.timeoutMs} ms`);
        return;
      }
      this.sendRaw(ws, { type: 'ping', id: `${HEARTBEAT_ID_PREFIX}${++this.heartbeatCount}` });
    }, hb.intervalMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** The current socket is gone: tell, then reconnect or finish. */
  private socketClosed(ws: WebSocketLike, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    this.stopHeartbeat();
    this.decoder?.close();
    this.decoder = null;
    for (const [id, p] of this.pings) {
      clearTimeout(p.timer);
      p.reject(new Error('RiverrunClient.ping: the connection closed'));
      this.pings.delete(id);
    }
    const fatal = this.fatal ?? undefined;
    const maxAttempts = this.reconnectConfig?.maxAttempts ?? 0;
    // The session could not be taken up (it ended, or expired): the next attempt opens a new one.
    const sessionGone = this.resuming && fatal?.code === 'no_session';
    if (sessionGone) this.resumeHandle = null;
    const willReconnect =
      !this.userClosed &&
      this.reconnectConfig !== null &&
      (this.everReady || this.opts!.waitForServer === true) &&
      this.attempt < maxAttempts &&
      (sessionGone || isRetryable(code, reason, fatal?.code));
    if (!willReconnect) {
      // Closed for good: settle first, so that listeners of `close` see a closed client.
      const detail = reason || this.socketError;
      const why = fatal ? `${fatal.code}: ${fatal.message}` : `connection closed (${code}${detail ? `: ${detail}` : ''})`;
      const errorCode = this.userClosed ? 'CONNECT_CLOSED' : fatal ? 'CONNECT_REJECTED' : 'CONNECT_FAILED';
      this.finish(
        new RiverrunConnectError(
          errorCode,
          this.userClosed ? 'RiverrunClient: closed by the client' : `RiverrunClient: ${why}`,
          code,
          fatal,
        ),
      );
    }
    this.emit('close', { code, reason, ...(fatal && { error: fatal }), willReconnect });
    if (willReconnect && !this.isClosed()) this.scheduleReconnect(); // unless close() was called from a listener
  }

  private scheduleReconnect(): void {
    this.attempt++;
    const delayMs = backoffDelay(this.attempt, this.reconnectConfig!);
    this._state = 'reconnecting';
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    if (this.isClosed()) return; // close() from a listener
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this._state = 'connecting';
      void this.open();
    }, delayMs);
  }

  /** Failed to even create a socket: as a close without a socket. */
  private fail(err: RiverrunConnectError): void {
    if (this._state === 'closed') return;
    const willReconnect =
      !this.userClosed &&
      this.reconnectConfig !== null &&
      (this.everReady || this.opts!.waitForServer === true) &&
      this.attempt < this.reconnectConfig.maxAttempts;
    if (!willReconnect) this.finish(err);
    this.emit('close', { code: err.closeCode, reason: err.message, willReconnect });
    if (willReconnect && !this.isClosed()) this.scheduleReconnect();
  }

  /** Whether the client is closed (a method, so that TypeScript does not narrow it away after emit()). */
  private isClosed(): boolean {
    return this._state === 'closed';
  }

  private finish(err: RiverrunConnectError): void {
    this._state = 'closed';
    this.stopHeartbeat();
    this.decoder?.close();
    this.decoder = null;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const pending = this.pendingConnect;
    this.pendingConnect = null;
    pending?.reject(err);
    for (const w of this.closeWaiters.splice(0)) w();
  }

  // -------------------------------------------------------------------------------------------------
  // Messages

  private onFrame(data: unknown): void {
    this.lastMessageAt = now();
    let msg: ReturnType<typeof decodeMessage>;
    try {
      msg = decodeMessage(data);
    } catch (err) {
      this.emit('error', {
        code: 'client_bad_frame' satisfies ClientEventErrorCode,
        message: `undecodable frame from the server: ${(err as Error).message}`,
        fatal: false,
      });
      return;
    }
    if (msg === null) return; // not a protocol v1 message: ignored
    this.emit('message', msg);
    switch (msg.type) {
      case 'setup_complete':
        this.onSetupComplete(msg as unknown as SetupCompleteMessage);
        break;
      case 'audio': {
        const audio = msg as unknown as AudioMessage;
        this.emit('audio', audio);
        this.decoder?.push(audio);
        break;
      }
      case 'applied':
        this.onApplied(msg as unknown as AppliedMessage);
        break;
      case 'status':
        this._status = msg as unknown as StatusMessage;
        this.emit('status', this._status);
        break;
      case 'error':
        this.onError(msg as unknown as RiverrunErrorEvent);
        break;
      case 'pong': {
        const pong = msg as unknown as PongMessage;
        if (typeof pong.id === 'string' && pong.id.startsWith(HEARTBEAT_ID_PREFIX)) break;
        const p = typeof pong.id === 'number' ? this.pings.get(pong.id) : undefined;
        if (p !== undefined) {
          this.pings.delete(pong.id as number);
          clearTimeout(p.timer);
          p.resolve(now() - p.sentAt);
        }
        this.emit('pong', pong);
        break;
      }
      default:
        break; // v1 grows by adding message types: ignore those we do not know
    }
  }

  private onSetupComplete(msg: SetupCompleteMessage): void {
    const ws = this.ws;
    this._state = 'ready';
    this._setup = msg;
    if (this.isSession) this.resumeHandle = msg.resume ?? null;
    const reconnected = this.everReady;
    const attempt = this.attempt;
    this.everReady = true;
    this.attempt = 0;
    this.decoder?.close();
    this.decoder = null;
    if (this.opts!.decode === true) {
      this.decoder = new PcmDecoder(
        msg.audio,
        (frame) => this.emit('pcm', frame),
        (err) => this.emit('error', { code: 'client_decode' satisfies ClientEventErrorCode, message: err.message, fatal: false }),
      );
    }
    this.emit('setup', msg);
    if (this.ws !== ws || this._state !== 'ready') return;
    // Steering asked for while not connected (before the first setup_complete too) goes out now.
    // A resumed session kept its steering on the server: only what it had not confirmed goes again.
    if (this.isSession) this.reapplySteering(reconnected && msg.resumed !== true && this._applied !== null);
    if (reconnected) {
      this.emit('reconnect', { attempt, setup: msg });
    } else {
      const pending = this.pendingConnect;
      this.pendingConnect = null;
      pending?.resolve(msg);
    }
  }

  /**
   * After setup_complete of a session. The setup already carried the prompts and config last confirmed; when the
   * session had been steered, they are sent again as steering (a change to the same thing, which the
   * server confirms with `applied`, so the application sees what is in effect, as before the drop),
   * or what the application asked for since, if the server had not confirmed it yet. Then a pause or stop.
   */
  private reapplySteering(steered: boolean): void {
    const d = this.desired;
    const c = this.confirmed;
    if (d.prompts !== undefined) this.sendSteering({ type: 'prompts', prompts: d.prompts.prompts, transitionMs: d.prompts.transitionMs });
    else if (steered && c.prompts !== undefined) this.sendSteering({ type: 'prompts', prompts: c.prompts });
    if (d.config !== undefined) this.sendSteering({ type: 'config', config: d.config });
    else if (steered && c.config !== undefined) this.sendSteering({ type: 'config', config: c.config });
    if (this.playback !== 'play') this.sendSteering({ type: 'playback', action: this.playback });
  }

  private onApplied(msg: AppliedMessage): void {
    this._applied = msg;
    if (this.isSession) {
      this.confirmed = { prompts: promptsFrom(msg.prompts), config: { ...msg.config } };
      if (this.desired.prompts !== undefined && samePrompts(this.desired.prompts.prompts, msg.prompts)) delete this.desired.prompts;
      if (this.desired.config !== undefined && configMatches(this.desired.config, msg.config)) delete this.desired.config;
    }
    this.emit('applied', msg);
  }

  private onError(msg: RiverrunErrorEvent): void {
    const event: RiverrunErrorEvent = {
      code: String(msg.code),
      message: String(msg.message),
      fatal: msg.fatal === true,
      ...(typeof msg.field === 'string' && { field: msg.field }),
    };
    if (this._state === 'connecting' && !event.fatal) {
      // Every error before setup_complete ends the connection (docs/protocol.md), even one that says
      // otherwise (some servers answer a malformed setup with fatal: false, then wait).
      event.fatal = true;
      const ws = this.ws;
      queueMicrotask(() => {
        if (this.ws !== ws || ws === null) return;
        try {
          ws.close(CLOSE_CODES.NORMAL, event.code);
        } catch {
          // ignore
        }
        this.socketClosed(ws, CLOSE_CODES.POLICY_VIOLATION, event.code);
      });
    }
    if (event.fatal) this.fatal = event;
    else if (this.isSession) {
      // The server refused a steering request: do not send it again after a reconnection.
      const field = event.field ?? '';
      if (event.code === 'too_many_prompts' || event.code === 'prompt_too_long' || field.startsWith('prompts') || field === 'transitionMs')
        delete this.desired.prompts;
      if (field.startsWith('config')) delete this.desired.config;
    }
    this.emit('error', event);
  }
}
