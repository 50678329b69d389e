// One WebSocket connection speaking protocol v1: setup, then listening to a channel or steering a
// personal session. Everything a client sends is validated (message-validation.ts); a rejected message
// gets an `error` and, unless fatal, the connection stays usable. Messages are handled one at a time, in
// the order they came (an async handler finishes before the next message is looked at), so replies come
// in message order; errors (and a session's applied) echo the message's id. A connection that sends more
// than its message budget, or piles up messages behind a slow handler, is closed (rate_limited). A slow
// reader skips audio, then is closed; it never holds up anyone else.
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { encodeServerMessage } from '../protocol/codec.ts';
import type { WeightedPrompt } from '../protocol/controls.ts';
import { errorMessage, ProtocolError, toProtocolError } from '../protocol/errors.ts';
import type { ClientMessage, ErrorMessage, MessageId, ResumeHandle, ServerMessage, SessionSpec } from '../protocol/messages.ts';
import type { Engine } from '../stream/engine.ts';
import type { AppliedEvent, StampedPacket } from '../stream/engine-core.ts';
import type { Ticket } from './admission.ts';
import type { Channel, StreamFeed } from './channel.ts';
import type { Role, ServerConfig } from './config.ts';
import { parseClientFrame } from './message-validation.ts';
import type { Metrics } from './metrics.ts';
import { TokenBucket } from './rate-limit.ts';

/** A personal session as setup gets it: its feed and, on a cluster worker, what resumes it elsewhere. */
export interface OpenedSession {
  feed: StreamFeed;
  resume?: ResumeHandle;
}

/** What connections share: the engine, channels, sessions and the server's settings. */
export interface ServerContext {
  engine: Engine;
  config: ServerConfig;
  metrics: Metrics;
  log: Logger;
  channels: Map<string, Channel>;
  /**
   * Creates a personal stream, in a slot of the ticket's; throws ProtocolError('busy') at a cap. `lost`
   * is called if another worker of the cluster takes the session up meanwhile.
   */
  openSession(id: string, spec: SessionSpec, ticket: Ticket, lost: () => void): Promise<OpenedSession>;
  /** Takes up a session of the cluster whose connection was lost; throws ProtocolError no_session or busy. */
  resumeSession(handle: ResumeHandle, ticket: Ticket, lost: () => void): Promise<OpenedSession>;
  closeSession(id: string): void;
  /** The session's connection dropped without a goodbye: keep the session a while for a resume. */
  detachSession(id: string): void;
  shuttingDown: boolean;
}

const STATUS_INTERVAL_MS = 1000;
/** WebSocket ping frames (answered by every client's WebSocket stack, browsers included). */
const HEARTBEAT_MS = 1000;
/** A client that has not answered a ping for this long is not reading: its audio is skipped. */
const SILENT_SKIP_MS = 3000;
/**
 * Messages that may wait behind the one being handled (a setup decoding its audio prompt, an engine
 * request), and their bytes. A client that sends more without waiting for replies is closed.
 */
const MAX_QUEUED_MESSAGES = 32;
const MAX_QUEUED_BYTES = 256 * 1024;

type Frame = Buffer | ArrayBuffer | Buffer[];

function frameSize(data: Frame): number {
  return Array.isArray(data) ? data.reduce((n, b) => n + b.byteLength, 0) : data.byteLength;
}

function samePrompts(a: readonly WeightedPrompt[], b: readonly WeightedPrompt[]): boolean {
  return a.length === b.length && a.every((p, i) => p.text === b[i]!.text && p.weight === b[i]!.weight);
}

export class Connection {
  private state: 'awaiting_setup' | 'setting_up' | 'ready' | 'closed' = 'awaiting_setup';
  private role: Role | null = null;
  private channel: Channel | null = null;
  private session: StreamFeed | null = null;
  private readonly cleanups: (() => void)[] = [];
  private readonly steering: TokenBucket;
  /** Every message counts, errors and pings included. */
  private readonly budget: TokenBucket;
  /** Messages waiting for the one being handled to finish, oldest first. */
  private readonly queue: { data: Frame; isBinary: boolean; size: number }[] = [];
  private queuedBytes = 0;
  private draining = false;
  /**
   * This session's prompts and config changes sent to the engine and not applied yet, oldest first, with
   * their message ids (echoed by the `applied` each causes). `prompts` is set for a prompts change.
   */
  private readonly unapplied: { id: string | undefined; prompts?: readonly WeightedPrompt[] }[] = [];
  private behindSince: number | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private lastPong = Date.now();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly setupTimer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    readonly id: string,
    private readonly ctx: ServerContext,
    private readonly log: Logger,
    /** Its place in the server's per-address counts (admission.ts), given back on close. */
    private readonly ticket: Ticket,
  ) {
    this.steering = new TokenBucket(ctx.config.limits.steeringPerSecond, ctx.config.limits.steeringBurst);
    this.budget = new TokenBucket(ctx.config.limits.messagesPerSecond, ctx.config.limits.messageBurst);
    ws.on('message', (data, isBinary) => this.enqueue(data as Frame, isBinary));
    // 1006: the connection dropped without a close frame (a network blip, a crash of the client).
    ws.on('close', (code) => this.cleanup(code === 1006));
    ws.on('error', (err) => this.log.debug({ err }, 'socket error'));
    // Kernel socket buffers hide a stalled reader from bufferedAmount for megabytes; an unanswered
    // ping does not hide it. Both are checked before audio is sent.
    ws.on('pong', () => {
      this.lastPong = Date.now();
    });
    this.heartbeat = setInterval(() => {
      if (ws.readyState === ws.OPEN) ws.ping();
    }, HEARTBEAT_MS);
    const setupMs = ctx.config.limits.setupTimeoutMs;
    this.setupTimer = setTimeout(() => {
      if (this.state === 'awaiting_setup') this.close(new ProtocolError('setup_required', `nothing within ${setupMs / 1000} s`));
    }, setupMs);
  }

  /** The feed whose audio this connection receives (its session, else its channel). */
  private get feed(): StreamFeed | null {
    return this.session ?? this.channel;
  }

  /** A frame as it arrives: counted against the budget, then queued behind the messages before it. */
  private enqueue(data: Frame, isBinary: boolean): void {
    if (this.state === 'closed') return;
    const { messagesPerSecond, messageBurst } = this.ctx.config.limits;
    if (!this.budget.take()) {
      this.close(
        new ProtocolError('rate_limited', `more than ${messagesPerSecond} messages per second (bursts of ${messageBurst})`).asFatal(),
      );
      return;
    }
    const size = frameSize(data);
    if (this.queue.length >= MAX_QUEUED_MESSAGES || this.queuedBytes + size > MAX_QUEUED_BYTES) {
      this.close(new ProtocolError('rate_limited', `more than ${MAX_QUEUED_MESSAGES} messages waiting for replies`).asFatal());
      return;
    }
    this.queue.push({ data, isBinary, size });
    this.queuedBytes += size;
    if (!this.draining) void this.drain();
  }

  /** Handles the queued messages one at a time (the first at once, without waiting for a tick). */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let next = this.queue.shift(); next !== undefined && this.state !== 'closed'; next = this.queue.shift()) {
        this.queuedBytes -= next.size;
        await this.onMessage(next.data, next.isBinary);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.draining = false;
    }
  }

  private async onMessage(data: Frame, isBinary: boolean): Promise<void> {
    if (this.state === 'closed') return;
    const { limits } = this.ctx.config;
    const parsed = parseClientFrame(data, { maxPromptChars: limits.maxPromptChars, maxPrompts: limits.maxPrompts }, isBinary);
    if ('error' in parsed) {
      // Every error before setup_complete ends the connection.
      this.reject(this.state === 'ready' ? parsed.error : parsed.error.asFatal(), parsed.id);
      return;
    }
    const msg = parsed.message;
    try {
      await this.handle(msg);
    } catch (err) {
      this.reject(err, msg.id);
    }
  }

  private async handle(msg: ClientMessage): Promise<void> {
    if (msg.type === 'ping') {
      this.send({ type: 'pong', id: msg.id });
      return;
    }
    if (msg.type === 'setup') {
      if (this.state !== 'awaiting_setup') throw new ProtocolError('already_setup');
      this.state = 'setting_up';
      this.ticket.setupStarted();
      try {
        await this.setup(msg);
      } catch (err) {
        // Every error before setup_complete ends the connection.
        throw toProtocolError(err).asFatal();
      }
      return;
    }
    if (this.state !== 'ready') throw new ProtocolError('setup_required', msg.type);
    if (!this.steering.take())
      throw new ProtocolError('rate_limited', `at most ${this.ctx.config.limits.steeringPerSecond} steering messages per second`);
    const target = this.steerTarget();
    const { engine } = this.ctx;
    switch (msg.type) {
      case 'prompts':
        await this.untilQueued(target, { id: msg.id, prompts: msg.prompts }, () =>
          engine.setPrompts(target, msg.prompts, msg.transitionMs ?? 0),
        );
        break;
      case 'config':
        await this.untilQueued(target, { id: msg.id }, () => engine.setConfig(target, msg.config));
        break;
      case 'playback':
        await engine.playback(target, msg.action);
        break;
    }
  }

  /**
   * Sends a prompts or config change to the engine. For this connection's own session it is remembered
   * (before the request, since its applied may come at any time after) until its applied echoes its id.
   */
  private async untilQueued(target: string, change: Connection['unapplied'][number], request: () => Promise<void>): Promise<void> {
    if (target !== this.session?.id) return request();
    this.unapplied.push(change);
    try {
      await request();
    } catch (err) {
      this.unapplied.splice(this.unapplied.indexOf(change), 1);
      throw err;
    }
  }

  /**
   * The id of the change an applied announces (a session's own changes only; a channel's applied goes to
   * every listener). The engine applies changes in order, one applied each, but drops a prompts change
   * whose texts could not be encoded: such a change, whose prompts are not the applied ones, is skipped.
   */
  private appliedId(e: AppliedEvent): string | undefined {
    if (!this.session || e.control === 0) return undefined;
    for (let c = this.unapplied.shift(); c !== undefined; c = this.unapplied.shift()) {
      if (!c.prompts || samePrompts(c.prompts, e.prompts)) return c.id;
    }
    return undefined;
  }

  /** Engine stream that steering messages address: the session, else the channel (operators only). */
  private steerTarget(): string {
    if (this.session) return this.session.id;
    if (this.channel) {
      if (this.role !== 'operator')
        throw new ProtocolError('forbidden', `steering channel ${this.channel.spec.id} needs an operator token`);
      return this.channel.streamId;
    }
    throw new ProtocolError('no_stream');
  }

  private async setup(msg: Extract<ClientMessage, { type: 'setup' }>): Promise<void> {
    const { config } = this.ctx;
    if (msg.token !== undefined) {
      // An address that keeps guessing is refused without its token being looked at.
      this.ticket.checkAuth();
      const role = config.tokens.get(msg.token);
      if (!role) {
        this.ticket.authFailed();
        throw new ProtocolError('unauthorized', 'unknown token');
      }
      this.role = role;
    } else {
      if (config.anonymousRole === 'none') throw new ProtocolError('unauthorized', 'a token is required');
      this.role = config.anonymousRole;
    }
    if (msg.listen !== undefined) {
      const channel = this.ctx.channels.get(msg.listen);
      if (!channel) throw new ProtocolError('not_found', msg.listen);
      this.channel = channel;
    }
    let opened: OpenedSession | null = null;
    if (msg.session !== undefined || msg.resume !== undefined) {
      if (this.role === 'listener') throw new ProtocolError('forbidden', 'a personal session needs a session or operator token');
      const lost = (): void => this.close(new ProtocolError('no_session', 'another connection took this session up'));
      opened = msg.resume
        ? await this.ctx.resumeSession(msg.resume, this.ticket, lost)
        : await this.ctx.openSession(`session:${this.id}`, msg.session!, this.ticket, lost);
      this.session = opened.feed;
      if (this.state === 'closed') {
        this.ctx.closeSession(this.session.id);
        return;
      }
    }
    const feed = this.feed!;
    this.state = 'ready';
    const model = this.ctx.engine.model;
    this.send({
      type: 'setup_complete',
      sessionId: this.id,
      ...(this.channel && { channel: this.channel.spec.id }),
      audio: feed.format,
      model: { name: model.name, random: model.random },
      ...(opened?.resume && { resume: opened.resume }),
      ...(msg.resume && { resumed: true }),
    });
    // A channel's current prompts and config, so a late joiner knows what is playing.
    if (feed.lastApplied) this.sendApplied(feed.lastApplied);
    this.cleanups.push(feed.onApplied((e) => this.sendApplied(e)));
    this.cleanups.push(feed.subscribe((packets) => this.sendAudio(packets)));
    if (msg.session?.tapCodes) this.cleanups.push(feed.onCodes((frame, codes) => this.send({ type: 'codes', frame, codes })));
    this.statusTimer = setInterval(() => this.sendStatus(), STATUS_INTERVAL_MS);
    this.ctx.metrics.listeners.inc({ transport: 'websocket' });
    this.cleanups.push(() => this.ctx.metrics.listeners.dec({ transport: 'websocket' }));
  }

  private sendApplied(e: AppliedEvent): void {
    const id = this.appliedId(e);
    this.send({ type: 'applied', control: e.control, prompts: e.prompts, config: e.config, pts: e.pts, ...(id !== undefined && { id }) });
  }

  private sendStatus(): void {
    const feed = this.feed;
    if (!feed) return;
    const { leadMs, rtf, underruns } = feed.status;
    this.send({
      type: 'status',
      leadMs: Math.round(leadMs),
      rtf: Math.round(rtf * 100) / 100,
      underruns,
      ...(this.channel && !this.session && { listeners: this.channel.listenerCount }),
    });
  }

  /**
   * Audio, as one message per run of packets with the same control. While the client is behind (data
   * queued, or pings unanswered) its audio is skipped, so it resumes at the live edge; behind for too
   * long, it is closed.
   */
  private sendAudio(packets: StampedPacket[]): void {
    const { limits } = this.ctx.config;
    const queued = this.ws.bufferedAmount;
    const now = Date.now();
    const silentMs = now - this.lastPong;
    if (queued > limits.skipAfterBytes || silentMs > SILENT_SKIP_MS) {
      this.behindSince ??= now;
      this.ctx.metrics.packetsSkipped.inc(packets.length);
      if (queued > limits.closeAfterBytes || now - this.behindSince > limits.closeAfterMs) {
        this.close(
          new ProtocolError(
            'slow_consumer',
            queued > limits.closeAfterBytes ? `${queued} bytes queued` : `no reply to pings for ${Math.round(silentMs / 1000)} s`,
          ),
        );
      }
      return;
    }
    this.behindSince = null;
    let start = 0;
    for (let i = 1; i <= packets.length; i++) {
      if (i === packets.length || packets[i]!.control !== packets[start]!.control) {
        const run = packets.slice(start, i);
        this.send(
          { type: 'audio', seq: run[0]!.seq, pts: run[0]!.pts, packets: run.map((p) => p.data), control: run[0]!.control },
          'audio',
        );
        start = i;
      }
    }
  }

  send(msg: ServerMessage, kind: 'audio' | 'control' = 'control'): void {
    if (this.state === 'closed' || this.ws.readyState !== this.ws.OPEN) return;
    const bytes = encodeServerMessage(msg);
    this.ctx.metrics.bytesSent.inc({ transport: 'websocket' }, bytes.byteLength);
    this.ws.send(bytes, { binary: true });
    if (kind === 'control' && msg.type === 'error') this.ctx.metrics.errors.inc({ code: msg.code });
  }

  /** Answers a rejected message (echoing its id); closes the connection when the error is fatal. */
  private reject(err: unknown, id?: MessageId): void {
    const e = toProtocolError(err);
    if (e.code === 'internal') this.log.error({ err }, 'internal error handling a message');
    if (e.fatal) this.close(e, e.closeCode, id);
    else this.send(withId(errorMessage(e), id));
  }

  private fail(err: unknown): void {
    this.log.error({ err }, 'connection failed');
    this.close(new ProtocolError('internal'));
  }

  /** Sends the error (with the id of the message it answers, if any) and closes with its close code. Safe to call twice. */
  close(err: ProtocolError, closeCode = err.closeCode, id?: MessageId): void {
    if (this.state === 'closed') return;
    this.send(withId(errorMessage(err.asFatal()), id));
    this.state = 'closed';
    this.cleanup();
    this.ws.close(closeCode, err.closeReason);
    // A peer that ignores the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  /** `dropped`: the peer vanished without a goodbye (its session waits for a resume, on a cluster). */
  private cleanup(dropped = false): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
    clearInterval(this.heartbeat);
    clearTimeout(this.setupTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    for (const c of this.cleanups.splice(0)) c();
    if (this.session) {
      if (dropped && this.state !== 'closed') this.ctx.detachSession(this.session.id);
      else this.ctx.closeSession(this.session.id);
      this.session = null;
    }
    this.ticket.release();
    this.state = 'closed';
  }
}

function withId(msg: ErrorMessage, id: MessageId | undefined): ErrorMessage {
  if (id !== undefined) msg.id = id;
  return msg;
}
