// This server as one worker of a cluster that shares nothing but Redis: it publishes itself in the
// registry (worker-registry.ts), keeps the state of each of its personal sessions current in the store
// (stream-store.ts, written after every batch of packets and every applied change), and takes up a
// session of a worker that is gone when that session's client comes back with its resume token.
//
// Redis being unreachable during a run costs only failover: the streams play on, their state is written
// again once Redis is back, and resuming answers `busy` meanwhile (reported in /readyz and the metrics).
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.ts';
import type { ResumeHandle } from '../protocol/messages.ts';
import { ClusterError } from './cluster-errors.ts';
import { type StoredStream, type StreamSnapshot, StreamStore, tokenHash } from './stream-store.ts';
import { HEARTBEAT_MS, holdsStream, publishWorker, unpublishWorker, type WorkerEntry } from './worker-registry.ts';

export interface ClusterOptions {
  /** redis://[user:password@]host:port[/db] */
  redisUrl: string;
  /** This worker's id in the registry (default: hostname-pid). */
  workerId?: string;
  log: Logger;
  /** The current state of a stream this worker owns (Engine.snapshot). */
  snapshotOf: (id: string) => StreamSnapshot | undefined;
}

interface Tracked {
  tokenSha: string;
  saving: boolean;
  /** Changed again while a write was under way: write once more after it. */
  again: boolean;
}

export interface ClusterEvents {
  /** Another worker owns this stream now (it was taken up there): this worker must end its copy. */
  lost: [id: string];
}

/** The URL without its password, for messages and logs. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

export class Cluster extends EventEmitter<ClusterEvents> {
  private readonly store: StreamStore;
  private readonly tracked = new Map<string, Tracked>();
  private heartbeat: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    private readonly redis: Redis,
    readonly workerId: string,
    private readonly options: ClusterOptions,
  ) {
    super();
    this.store = new StreamStore(redis, workerId);
  }

  /** Connects to Redis; throws ClusterError (CLUSTER_REDIS_UNREACHABLE, CLUSTER_BAD_URL) if it cannot. */
  static async connect(options: ClusterOptions): Promise<Cluster> {
    const { redisUrl, log } = options;
    let url: URL;
    try {
      url = new URL(redisUrl);
    } catch {
      throw new ClusterError('CLUSTER_BAD_URL', `--redis ${JSON.stringify(redisUrl)} is not a URL (redis://host:port)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
      throw new ClusterError('CLUSTER_BAD_URL', `--redis ${safeUrl(redisUrl)}: the URL must start with redis:// or rediss://`);
    let connected = false;
    const redis = new Redis(redisUrl, {
      lazyConnect: true,
      connectTimeout: 3000,
      // Requests fail at once while Redis is away (the streams do not wait for it); reconnects back off to 2 s.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => (connected ? Math.min(attempt * 200, 2000) : null),
    });
    let lastError = '';
    redis.on('error', (err: Error) => {
      if (connected && err.message !== lastError)
        log.warn({ err: err.message }, 'redis: connection problem; failover is unavailable until it is back');
      lastError = err.message;
    });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new ClusterError(
        'CLUSTER_REDIS_UNREACHABLE',
        `cannot reach Redis at ${safeUrl(redisUrl)}: ${(err as Error).message || lastError}`,
      );
    }
    connected = true;
    redis.on('ready', () => {
      lastError = '';
      log.info('redis: connected again; failover is available');
    });
    return new Cluster(redis, options.workerId ?? `${hostname()}-${process.pid}`, options);
  }

  /** Whether Redis answers now: without it, no stream's state is kept current and none can be taken up. */
  get storeUp(): boolean {
    return this.redis.status === 'ready';
  }

  /** Publishes this worker (its URL and load, from `entry`) every HEARTBEAT_MS until close(). */
  startHeartbeat(entry: () => Omit<WorkerEntry, 'id' | 'at'>): void {
    const beat = (): void => {
      if (!this.storeUp || this.closed) return;
      publishWorker(this.redis, { id: this.workerId, ...entry(), at: Date.now() }).catch(() => {});
    };
    beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_MS);
  }

  /** A new session of this worker: its state is kept from now on; returns its resume handle. */
  track(id: string): ResumeHandle {
    const token = randomBytes(24).toString('base64url');
    this.tracked.set(id, { tokenSha: tokenHash(token), saving: false, again: false });
    this.changed(id);
    return { session: id, token };
  }

  /** The stream's state changed (packets went out, a control was applied): write it. */
  changed(id: string): void {
    const t = this.tracked.get(id);
    // After handOver() the state stays as its clients last had it: they resume from there elsewhere.
    if (!t || this.closed) return;
    if (t.saving) {
      t.again = true;
      return;
    }
    const snapshot = this.options.snapshotOf(id);
    if (!snapshot || !this.storeUp) return;
    t.saving = true;
    t.again = false;
    this.store.save(id, t.tokenSha, snapshot).then(
      (owned) => {
        t.saving = false;
        if (this.tracked.get(id) !== t) return;
        if (!owned) {
          this.tracked.delete(id);
          this.emit('lost', id);
        } else if (t.again) this.changed(id);
      },
      () => {
        // Redis went away: the next change after it is back writes the state again.
        t.saving = false;
      },
    );
  }

  /** The session ended: its state is removed (unless the worker is handing it over, see handOver()). */
  forget(id: string): void {
    if (!this.tracked.delete(id) || this.closed || !this.storeUp) return;
    this.store.remove(id).catch(() => {});
  }

  /**
   * Takes up a session whose connection was lost (its worker died or shut down): checks the token and
   * that no live worker holds it, and makes it this worker's. Throws ProtocolError no_session (unknown,
   * wrong token, in use) or busy (Redis unreachable).
   */
  async takeOver(handle: ResumeHandle, heldHere: (id: string) => boolean): Promise<StoredStream & { resume: ResumeHandle }> {
    const { session: id, token } = handle;
    const owner = await this.ownerOf(handle);
    const inUse = owner === this.workerId ? heldHere(id) : await holdsStream(this.redis, owner, id);
    if (inUse) throw new ProtocolError('no_session', 'the session is in use on another connection');
    const claim = await this.store.claim(id, owner);
    if (claim.kind !== 'claimed')
      throw new ProtocolError(
        'no_session',
        claim.kind === 'missing' ? 'the session ended meanwhile' : 'another connection took the session up',
      );
    this.tracked.set(id, { tokenSha: tokenHash(token), saving: false, again: false });
    return { ...claim.stream, resume: handle };
  }

  /** The session's owner in the store; throws ProtocolError busy (Redis unreachable) or no_session (unknown, wrong token). */
  async ownerOf(handle: ResumeHandle): Promise<string> {
    if (!this.storeUp) throw new ProtocolError('busy', 'sessions cannot be resumed now: the cluster store (Redis) is unreachable');
    const found = await this.store.lookup(handle.session, handle.token);
    if (!found?.tokenMatches) throw new ProtocolError('no_session', 'no session has this id and token (it ended or expired)');
    return found.owner;
  }

  /**
   * Writes every session's state one last time and leaves the registry, so that other workers take the
   * sessions up when their clients come back: for a graceful shutdown. forget() removes nothing after it.
   */
  async handOver(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (!this.storeUp) return;
    await Promise.all(
      [...this.tracked].map(async ([id, t]) => {
        const snapshot = this.options.snapshotOf(id);
        if (snapshot) await this.store.save(id, t.tokenSha, snapshot).catch(() => false);
      }),
    );
    await unpublishWorker(this.redis, this.workerId).catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.storeUp) await this.redis.quit().catch(() => {});
    this.redis.disconnect();
  }
}
