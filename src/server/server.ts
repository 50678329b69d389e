// The Riverrun server: HTTP (web client, health, metrics, live Ogg), protocol v1 over WebSocket, radio
// channels, personal sessions and Icecast outputs, around one engine worker.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { Checkpoint } from '../models/checkpoint.ts';
import { defaultModelDir } from '../models/default-model.ts';
import { encodeServerMessage } from '../protocol/codec.ts';
import { PACKET_MS, PROTOCOL_PATH } from '../protocol/constants.ts';
import { errorMessage, PROTOCOL_ERRORS, ProtocolError, toProtocolError } from '../protocol/errors.ts';
import type { SessionSpec } from '../protocol/messages.ts';
import { AudioFileError } from '../stream/audio-file.ts';
import { Engine } from '../stream/engine.ts';
import { keepFramesFor } from '../stream/engine-options.ts';
import { PromptAudioDecoder } from '../stream/prompt-audio-decoder.ts';
import { Admission, addressKey, type Ticket } from './admission.ts';
import { Channel, StreamFeed } from './channel.ts';
import type { ServerConfig } from './config.ts';
import { Connection, type ServerContext } from './connection.ts';
import { checkHttpAccess, type HttpNeed } from './http-access.ts';
import { IcecastSource } from './icecast.ts';
import { Metrics } from './metrics.ts';
import { OggStreams } from './ogg-http.ts';
import { PROTOCOL_MODULE_URL, serveProtocolModule } from './protocol-module.ts';
import { serveStatic } from './static-files.ts';

const DEFAULT_SESSION_PROMPTS = [{ text: 'ambient music', weight: 1 }];
/** Longest audio prompt (and at most half the context window, to leave room to continue). */
const AUDIO_PROMPT_MAX_SECONDS = 10;

export interface RiverrunServer {
  readonly port: number;
  readonly url: string;
  readonly engine: Engine;
  readonly metrics: Metrics;
  /** Who may connect and set up now: connection, session and failed-auth counts per address. */
  readonly admission: Admission;
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
  const engine = await Engine.start({
    modelDir,
    precision: config.precision,
    device: config.device,
    threads: config.threads,
    cacheDir,
    engine: { leadTargetMs: config.leadMs, windowFrames, keepFrames: keepFramesFor(windowFrames), bitrate: config.bitrate },
    faults: config.engineFaults,
    log: (m) => log.info(m),
  });
  log.info({ model: engine.model }, 'model loaded');
  const metrics = new Metrics();
  const feeds = new Map<string, StreamFeed>();
  const channels = new Map<string, Channel>();
  /** Personal sessions: id -> gives its admission slot back. */
  const sessions = new Map<string, () => void>();
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

  engine.on('packets', (id, packets) => feeds.get(id)?.publish(packets));
  engine.on('applied', (id, e) => feeds.get(id)?.applied(e));
  engine.on('codes', (id, frame, codes) => feeds.get(id)?.codes(frame, codes));
  engine.on('streamError', (id, code, message) => log.warn({ stream: id, code }, message));
  engine.on('fatal', (message) => log.error(message));
  metrics.engineUp.set(1);
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
    async openSession(id: string, spec: SessionSpec, ticket: Ticket): Promise<StreamFeed> {
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
      sessions.set(id, release);
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
      return feed;
    },
    closeSession(id: string): void {
      const release = sessions.get(id);
      if (!release) return;
      sessions.delete(id);
      release();
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
      const isReady = ready && !ctx.shuttingDown && engine.running;
      res.writeHead(isReady ? 200 : 503, { 'Content-Type': 'text/plain' }).end(isReady ? 'ready\n' : 'not ready\n');
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
    close(): Promise<void> {
      closing ??= (async () => {
        ctx.shuttingDown = true;
        clearInterval(statusTimer);
        for (const c of channels.values()) c.close();
        const httpClosed = new Promise<void>((r) => http.close(() => r()));
        for (const c of connections) c.close(new ProtocolError('shutting_down'));
        await oggStreams.endAll();
        await Promise.all(icecasts.map((i) => i.stop()));
        await engine.close();
        await promptAudio.close();
        http.closeAllConnections();
        await httpClosed;
        log.info('stopped');
      })();
      return closing;
    },
  };
}
