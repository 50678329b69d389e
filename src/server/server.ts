// The Riverrun server: HTTP (web client, health, metrics, live Ogg), protocol v1 over WebSocket, radio
// channels, personal sessions and Icecast outputs, around one engine worker.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { Cluster } from '../cluster/cluster.ts';
import { Checkpoint } from '../models/checkpoint.ts';
import { defaultModelDir } from '../models/default-model.ts';
import { encodeServerMessage } from '../protocol/codec.ts';
import { PACKET_MS, PACKET_SAMPLES, PROTOCOL_PATH } from '../protocol/constants.ts';
import { completeConfig } from '../protocol/controls.ts';
import { errorMessage, PROTOCOL_ERRORS, ProtocolError, toProtocolError } from '../protocol/errors.ts';
import type { ResumeHandle, SessionSpec } from '../protocol/messages.ts';
import { AudioFileError } from '../stream/audio-file.ts';
import { Engine } from '../stream/engine.ts';
import { keepFramesFor } from '../stream/engine-options.ts';
import { PromptAudioDecoder } from '../stream/prompt-audio-decoder.ts';
import { Admission, addressKey, type Ticket } from './admission.ts';
import { Channel, StreamFeed } from './channel.ts';
import type { ServerConfig } from './config.ts';
import { Connection, type OpenedSession, type ServerContext } from './connection.ts';
import { checkHttpAccess, type HttpNeed } from './http-access.ts';
import { IcecastSource } from './icecast.ts';
import { Metrics } from './metrics.ts';
import { MetricsTarget } from './metrics-discovery.ts';
import { OggStreams } from './ogg-http.ts';
import { PROTOCOL_MODULE_URL, serveProtocolModule } from './protocol-module.ts';
import { serveStatic } from './static-files.ts';

const DEFAULT_SESSION_PROMPTS = [{ text: 'ambient music', weight: 1 }];
/** How long a cluster worker keeps a session whose connection dropped, waiting for its client to resume it. */
const DETACHED_SESSION_MS = 30_000;
/** Longest audio prompt (and at most half the context window, to leave room to continue). */
const AUDIO_PROMPT_MAX_SECONDS = 10;

export interface RiverrunServer {
  readonly port: number;
  readonly url: string;
  readonly engine: Engine;
  readonly metrics: Metrics;
  /** Who may connect and set up now: connection, session and failed-auth counts per address. */
  readonly admission: Admission;
  /** This server as a worker of a cluster (--redis), else null. */
  readonly cluster: Cluster | null;
  /** Stops accepting, tells every client (close 1001), ends Ogg streams with EOS, stops the engine. */
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  /** Compiled-graph cache (default under RIVERRUN_CACHE). */
  cacheDir?: string;
}

export async function startServer(config: ServerConfig, { log, cacheDir }: StartOptions): Promise<RiverrunServer> {
  const modelDir = config.modelDir ?? defaultModelDir();
  const model = Checkpoint.open(modelDir).config;
  const frameRate = model.codec.samplingRate / model.codec.hop;
  const windowFrames = Math.min(model.decoder.maxPositions, Math.round(config.windowSeconds * frameRate));
  // Redis first: a worker that cannot reach its cluster's store says so before it loads a model.
  const cluster = config.cluster
    ? await Cluster.connect({
        redisUrl: config.cluster.redisUrl,
        workerId: config.cluster.workerId,
        log,
        snapshotOf: (id) => engine.snapshot(id),
      })
    : null;
  const engine = await startEngine().catch(async (err: unknown) => {
    await cluster?.close();
    throw err;
  });
  function startEngine(): Promise<Engine> {
    return Engine.start({
      modelDir,
      precision: config.precision,
      device: config.device,
      threads: config.threads,
      cacheDir,
      engine: { leadTargetMs: config.leadMs, windowFrames, keepFrames: keepFramesFor(windowFrames), bitrate: config.bitrate },
      faults: config.engineFaults,
      log: (m) => log.info(m),
    });
  }
  log.info({ model: engine.model }, 'model loaded');
  const metrics = new Metrics();
  const feeds = new Map<string, StreamFeed>();
  const channels = new Map<string, Channel>();
  /**
   * Personal sessions: id -> gives its admission slot back, ends its connection (another worker took
   * it), and, while its connection is gone and its client may resume it, the timer that ends it.
   */
  const sessions = new Map<string, { release: () => void; lost: () => void; detached?: NodeJS.Timeout }>();
  const connections = new Set<Connection>();
  const oggStreams = new OggStreams({ maxListeners: config.limits.maxOggListeners });
  const icecasts: IcecastSource[] = [];
  /** Audio prompts are decoded and resampled in a worker, never on this thread. */
  const promptAudio = new PromptAudioDecoder();
  let ready = false;
  const { limits } = config;
  const admission = new Admission(
    {
      maxConnections: limits.maxListeners,
      maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
      maxPendingSetups: limits.maxPendingSetups,
      maxPendingPerAddress: limits.maxPendingPerAddress,
      maxSessions: limits.maxSessions,
      maxSessionsPerAddress: limits.maxSessionsPerAddress,
      authFailuresAllowed: limits.authFailuresAllowed,
      authBackoffMs: limits.authBackoffMs,
    },
    { onRefused: (reason) => metrics.refused.inc({ reason }) },
  );
  metrics.trackAdmission(() => admission.stats());

  engine.on('packets', (id, packets) => {
    feeds.get(id)?.publish(packets);
    cluster?.changed(id);
  });
  engine.on('applied', (id, e) => {
    feeds.get(id)?.applied(e);
    cluster?.changed(id);
  });
  engine.on('codes', (id, frame, codes) => feeds.get(id)?.codes(frame, codes));
  engine.on('streamError', (id, code, message) => log.warn({ stream: id, code }, message));
  engine.on('fatal', (message) => log.error(message));
  metrics.engineUp.set(1);
  if (cluster) {
    metrics.trackClusterStore(() => cluster.storeUp);
    cluster.on('lost', (id) => {
      log.warn({ stream: id }, 'another worker took this session up: ending it here');
      sessions.get(id)?.lost();
    });
  }
  engine.on('crashed', (reason) => {
    metrics.engineUp.set(0);
    log.error({ reason, streams: feeds.size }, 'engine worker died: starting a new one, every stream resumes in it');
  });
  engine.on('restarted', (r) => {
    metrics.engineUp.set(1);
    metrics.engineRestarts.inc();
    metrics.engineRestartSeconds.observe(r.ms / 1000);
    log.warn({ streams: r.streams, ms: Math.round(r.ms), restarts: r.restarts }, 'engine worker restarted: streams resumed');
  });
  engine.on('failed', (reason) => {
    metrics.engineUp.set(0);
    log.fatal({ reason }, 'engine stopped for good: not ready');
  });
  engine.on('step', (r) => {
    metrics.steps.inc();
    metrics.batchRows.observe(r.rows);
    metrics.batchStreams.observe(r.streams);
    metrics.stepSeconds.observe(r.totalMs / 1000);
    metrics.decoderSeconds.inc(r.decoderMs / 1000);
    metrics.codecSeconds.inc(r.codecMs / 1000);
  });

  const ctx: ServerContext = {
    engine,
    config,
    metrics,
    log,
    channels,
    shuttingDown: false,
    async openSession(id: string, spec: SessionSpec, ticket: Ticket, lost: () => void): Promise<OpenedSession> {
      // The slot is taken before the first await, so setups arriving together cannot all pass the caps.
      const release = ticket.reserveSession();
      let audioPrompt: Float32Array | undefined;
      if (spec.audio) {
        try {
          audioPrompt = await promptAudio.decode(spec.audio, model.codec.samplingRate, {
            maxSeconds: Math.min(AUDIO_PROMPT_MAX_SECONDS, (windowFrames * 0.5) / frameRate),
          });
        } catch (err) {
          release();
          if (err instanceof AudioFileError) throw new ProtocolError('invalid_field', 'session.audio', err.message);
          throw err;
        }
      }
      const feed = new StreamFeed(id, 2);
      sessions.set(id, { release, lost });
      feeds.set(id, feed);
      metrics.streams.set({ kind: 'session' }, sessions.size);
      try {
        await engine.createStream(id, {
          prompts: spec.prompts ?? DEFAULT_SESSION_PROMPTS,
          config: spec.config,
          channels: 2,
          audioPrompt,
          tapCodes: spec.tapCodes ?? false,
        });
      } catch (err) {
        ctx.closeSession(id);
        throw err;
      }
      return { feed, resume: cluster?.track(id) };
    },
    async resumeSession(handle: ResumeHandle, ticket: Ticket, lost: () => void): Promise<OpenedSession> {
      if (!cluster) throw new ProtocolError('no_session', 'this server is not part of a cluster: a session ends with its connection');
      const id = handle.session;
      const release = ticket.reserveSession();
      try {
        if (sessions.get(id)?.detached) {
          // Still here, waiting since its connection dropped: the new connection takes it as it stands,
          // unless another worker took it up meanwhile (then this copy goes).
          if ((await cluster.ownerOf(handle)) !== cluster.workerId) ctx.closeSession(id);
          else if (sessions.get(id)?.detached) {
            await engine.setIdle(id, false);
            const local = sessions.get(id);
            // Still waiting after that await (its wait may have run out meanwhile: then it is gone).
            if (local?.detached) {
              clearTimeout(local.detached);
              sessions.set(id, { release, lost });
              const feed = feeds.get(id)!;
              feed.startClock();
              metrics.sessionsResumed.inc();
              log.info({ stream: id }, 'session taken up again by a new connection');
              return { feed, resume: handle };
            }
          }
        }
      } catch (err) {
        release();
        throw err;
      }
      let stored: Awaited<ReturnType<Cluster['takeOver']>>;
      try {
        stored = await cluster.takeOver(handle, (held) => sessions.has(held));
      } catch (err) {
        release();
        throw err;
      }
      const { spec, controls } = stored.snapshot;
      // The listener's buffer ran down since the state was written (unless nothing was playing).
      if (spec.resume && (spec.state ?? 'playing') === 'playing' && !spec.idle)
        spec.resume.leadMs = Math.max(0, spec.resume.leadMs - (Date.now() - stored.savedAt));
      // Idle only while it waited for its connection (detachSession): a client is here now.
      spec.idle = false;
      const feed = new StreamFeed(id, spec.channels ?? 2);
      // What is playing, for the client (a resumed stream announces nothing until its next change).
      if (spec.resume)
        feed.lastApplied = {
          control: spec.resume.control,
          prompts: spec.prompts,
          config: completeConfig(spec.config),
          pts: spec.resume.nextSeq * PACKET_SAMPLES,
        };
      sessions.set(id, { release, lost });
      feeds.set(id, feed);
      metrics.streams.set({ kind: 'session' }, sessions.size);
      try {
        await engine.createStream(id, spec);
        for (const c of controls)
          await (c.kind === 'prompts' ? engine.setPrompts(id, c.prompts, c.transitionMs) : engine.setConfig(id, c.config));
      } catch (err) {
        ctx.closeSession(id);
        throw err;
      }
      metrics.sessionsResumed.inc();
      log.info({ stream: id, from: stored.owner, savedMsAgo: Date.now() - stored.savedAt }, 'session taken up from the cluster store');
      cluster.changed(id);
      return { feed, resume: stored.resume };
    },
    detachSession(id: string): void {
      const session = sessions.get(id);
      if (!session) return;
      if (!cluster || ctx.shuttingDown) {
        ctx.closeSession(id);
        return;
      }
      // Its slot is free for the next connection (a resume takes one again); its stream stands still.
      session.release();
      const feed = feeds.get(id)!;
      feed.stopClock();
      void engine.setIdle(id, true).catch(() => {});
      const ends = setTimeout(() => ctx.closeSession(id), DETACHED_SESSION_MS);
      ends.unref();
      sessions.set(id, { release: () => {}, lost: () => ctx.closeSession(id), detached: ends });
    },
    closeSession(id: string): void {
      const session = sessions.get(id);
      if (!session) return;
      sessions.delete(id);
      clearTimeout(session.detached);
      session.release();
      cluster?.forget(id);
      feeds.delete(id);
      metrics.streams.set({ kind: 'session' }, sessions.size);
      for (const g of [metrics.realtimeFactor, metrics.leadSeconds, metrics.underruns]) g.remove({ stream: id });
      void engine.closeStream(id).catch(() => {});
    },
  };

  for (const spec of config.channels) {
    const channel = new Channel(spec);
    channels.set(spec.id, channel);
    feeds.set(channel.streamId, channel);
    await channel.start(engine);
    if (spec.icecast) {
      const ice = new IcecastSource({
        url: spec.icecast,
        source: channel,
        name: spec.name,
        log: (level, msg) => log[level]({ channel: spec.id }, msg),
      });
      ice.start();
      icecasts.push(ice);
    }
  }
  metrics.streams.set({ kind: 'channel' }, channels.size);
  metrics.trackChannels(() => [...channels.values()].map((c) => ({ id: c.spec.id, idle: c.idle })));

  // Stream status once a second for every feed: one engine round trip per stream, not per listener.
  const statusTimer = setInterval(() => {
    for (const [id, feed] of feeds) {
      engine.status(id).then(
        (s) => {
          if (feeds.get(id) !== feed) return; // closed meanwhile: leave its series removed
          feed.status = s;
          metrics.realtimeFactor.set({ stream: id }, s.rtf);
          metrics.leadSeconds.set({ stream: id }, s.leadMs / 1000);
          metrics.underruns.set({ stream: id }, s.underruns);
        },
        () => {},
      );
    }
  }, 1000);

  const http = createServer((req, res) => {
    void handleHttp(req, res).catch((err: unknown) => {
      log.error({ err }, 'http handler failed');
      if (!res.headersSent) res.writeHead(PROTOCOL_ERRORS.internal.httpStatus).end();
      else res.destroy();
    });
  });

  /** Whether the request may read what needs `need` (http-access.ts); if not, answers it. */
  function allowed(need: HttpNeed, req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    try {
      checkHttpAccess(need, { headers: req.headers, url, address: addressKey(req.socket.remoteAddress) }, config, admission);
      return true;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      const headers: Record<string, string> = { 'Content-Type': 'text/plain' };
      if (err.code === 'unauthorized') headers['WWW-Authenticate'] = 'Bearer realm="riverrun"';
      res.writeHead(err.httpStatus ?? 400, headers).end(`${err.message}\n`);
      return false;
    }
  }

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      // Not ready while a new engine worker starts (new sessions would wait), nor once the engine gave up.
      // A cluster worker without Redis serves on (ready), and says that failover is unavailable.
      const isReady = ready && !ctx.shuttingDown && engine.running;
      const failover = cluster && !cluster.storeUp ? 'failover unavailable: Redis is unreachable\n' : '';
      res.writeHead(isReady ? 200 : 503, { 'Content-Type': 'text/plain' }).end(`${isReady ? 'ready' : 'not ready'}\n${failover}`);
      return;
    }
    if (path === '/v1/worker') {
      // What this worker holds now, for operators, tests and the other workers (ids only: resuming needs a token).
      const attached = [...sessions].filter(([, s]) => !s.detached).map(([id]) => id);
      const detached = [...sessions].filter(([, s]) => s.detached).map(([id]) => id);
      const held = { id: cluster?.workerId ?? null, streams: attached, detached, channels: [...channels.keys()] };
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(held));
      return;
    }
    const ogg = /^\/v1\/channels\/([a-z0-9][a-z0-9_-]{0,63})\.ogg$/.exec(path);
    const need: HttpNeed | null = path === '/metrics' ? 'operator' : path === '/v1/channels' || ogg ? 'any role' : null;
    if (need && !allowed(need, req, res, url)) return;
    if (path === '/metrics') {
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return;
    }
    if (path === '/v1/channels') {
      const list = [...channels.values()].map((c) => ({
        id: c.spec.id,
        name: c.spec.name,
        listeners: c.listenerCount,
        whenIdle: c.spec.whenIdle ?? 'pause',
        idle: c.idle,
        ogg: `/v1/channels/${c.spec.id}.ogg`,
      }));
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ channels: list, model: engine.model }));
      return;
    }
    if (ogg) {
      const channel = channels.get(ogg[1]!);
      if (!channel || ctx.shuttingDown) {
        const code = channel ? 'shutting_down' : 'not_found';
        res
          .writeHead(PROTOCOL_ERRORS[code].httpStatus, { 'Content-Type': 'text/plain' })
          .end(channel ? 'shutting down\n' : 'no such channel\n');
        return;
      }
      metrics.listeners.inc({ transport: 'ogg' });
      const handle = oggStreams.serve(req, res, channel, {
        maxBufferedBytes: config.limits.oggMaxBehindBytes,
        tags: { TITLE: channel.spec.name },
      });
      void handle.done.then(() => {
        metrics.listeners.dec({ transport: 'ogg' });
        metrics.bytesSent.inc({ transport: 'ogg' }, handle.stats?.totalBytes ?? 0);
      });
      return;
    }
    if (path === PROTOCOL_MODULE_URL) {
      await serveProtocolModule(req, res);
      return;
    }
    if (!serveStatic(config.webRoot, req, res, path)) res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.limits.maxPayload });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const refuse = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== PROTOCOL_PATH) return refuse(404, 'Not Found');
    const origin = req.headers.origin;
    if (config.allowedOrigins.length > 0 && origin !== undefined && !config.allowedOrigins.includes(origin))
      return refuse(PROTOCOL_ERRORS.forbidden.httpStatus, 'Forbidden');
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (ctx.shuttingDown) return turnAway(ws, new ProtocolError('shutting_down'));
      let ticket: Ticket;
      try {
        // The socket's own peer address: headers such as X-Forwarded-For are not trusted.
        ticket = admission.admit(addressKey(req.socket.remoteAddress));
      } catch (err) {
        return turnAway(ws, toProtocolError(err));
      }
      const id = randomUUID();
      const conn = new Connection(ws, id, ctx, log.child({ conn: id }), ticket);
      connections.add(conn);
      ws.on('close', () => connections.delete(conn));
    });
  });

  /** Refuses a WebSocket connection before it counts anywhere: the error, then its close code. */
  function turnAway(ws: WebSocket, err: ProtocolError): void {
    const e = err.asFatal();
    const bytes = encodeServerMessage(errorMessage(e));
    metrics.errors.inc({ code: e.code });
    metrics.bytesSent.inc({ transport: 'websocket' }, bytes.byteLength);
    ws.send(bytes, { binary: true });
    ws.close(e.closeCode, e.closeReason);
    // A peer that ignores the close handshake is cut off.
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const advertised =
    config.cluster?.advertiseUrl ?? `http://${config.host === '0.0.0.0' || config.host === '::' ? hostname() : config.host}:${port}`;
  cluster?.startHeartbeat(() => ({ url: advertised, streams: sessions.size, channels: channels.size }));
  const metricsTarget = config.metricsSdDir
    ? new MetricsTarget(config.metricsSdDir, cluster?.workerId ?? `${hostname()}-${port}`, new URL(advertised).host)
    : null;
  ready = true;
  log.info(
    { port, channels: [...channels.keys()], packetMs: PACKET_MS },
    `Riverrun listening on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}/`,
  );

  let closing: Promise<void> | null = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    engine,
    metrics,
    admission,
    cluster,
    close(): Promise<void> {
      closing ??= (async () => {
        ctx.shuttingDown = true;
        clearInterval(statusTimer);
        metricsTarget?.remove();
        // Sessions' last state to the store, and out of the registry: their clients resume elsewhere.
        await cluster?.handOver();
        // Sessions waiting for their client end here (their state stays in the store, for a resume elsewhere).
        for (const [id, s] of sessions) if (s.detached) ctx.closeSession(id);
        for (const c of channels.values()) c.close();
        const httpClosed = new Promise<void>((r) => http.close(() => r()));
        for (const c of connections) c.close(new ProtocolError('shutting_down'));
        await oggStreams.endAll();
        await Promise.all(icecasts.map((i) => i.stop()));
        await engine.close();
        await cluster?.close();
        await promptAudio.close();
        http.closeAllConnections();
        await httpClosed;
        log.info('stopped');
      })();
      return closing;
    },
  };
}
