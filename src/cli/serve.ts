// `riverrun serve`: the server's configuration from flags and environment, then the server until
// SIGTERM / SIGINT.
import { pino } from 'pino';
import { PRECISIONS, type Precision } from '../models/graphs/linear.ts';
import { DEVICES, type Device } from '../models/model-bundle.ts';
import { DEFAULT_CHANNELS, DEFAULT_LIMITS, loadChannels, ROLES, type Role, type ServerConfig } from '../server/config.ts';
import { startServer } from '../server/server.ts';
import { parseCommandLine } from './command-line.ts';

const SERVE_USAGE = `Usage: riverrun serve [options]

Start the Riverrun server: protocol v1 at /v1/ws, the web client at /, live Ogg at /v1/channels/ID.ogg,
/metrics, /healthz, /readyz.

  --model DIR            MusicGen checkpoint directory (env RIVERRUN_MODEL; default: the embedded model)
  --precision P          fp32 | q8 | q4 (env RIVERRUN_PRECISION; default fp32)
  --device D             cpu | cuda | webgpu (env RIVERRUN_DEVICE; default cpu)
  --threads N            onnxruntime threads for the engine (default: all cores)
  --port N               port (env PORT; default 8080)
  --host H               address to listen on (env HOST; default 0.0.0.0)
  --channels FILE        JSON list of channels [{id, name, prompts, config?, channels?, icecast?}]
                         (env RIVERRUN_CHANNELS; default one channel "radio")
  --token TOKEN:ROLE     accept TOKEN with ROLE (listener | session | operator); repeatable
                         (env RIVERRUN_TOKENS, comma separated)
  --anonymous-role R     role of connections without a token: none | listener | session | operator
                         (env RIVERRUN_ANONYMOUS_ROLE; default session, or listener when tokens are set)
  --allow-origin URL     allowed Origin for WebSocket connections; repeatable (env RIVERRUN_ALLOWED_ORIGINS,
                         comma separated; default any)
  --max-sessions N       personal streams at once (default ${DEFAULT_LIMITS.maxSessions})
  --max-sessions-per-address N, --max-connections-per-address N
                         sessions and connections from one client address (the socket's, IPv6 by
                         /64; default ${DEFAULT_LIMITS.maxSessionsPerAddress}, ${DEFAULT_LIMITS.maxConnectionsPerAddress})
  --max-pending-setups N, --max-pending-per-address N
                         connections that have not sent setup yet, in all and from one address
                         (default ${DEFAULT_LIMITS.maxPendingSetups}, ${DEFAULT_LIMITS.maxPendingPerAddress})
  --setup-timeout-ms N   time a connection has to send setup (default ${DEFAULT_LIMITS.setupTimeoutMs})
  --auth-failures N      wrong tokens from one address before it backs off (default ${DEFAULT_LIMITS.authFailuresAllowed})
  --auth-backoff-ms N    first backoff; doubles with each further wrong token, up to 5 min
                         (default ${DEFAULT_LIMITS.authBackoffMs})
  --max-listeners N      connections at once (default ${DEFAULT_LIMITS.maxListeners})
  --max-ogg-listeners N  live Ogg (HTTP) listeners at once (default ${DEFAULT_LIMITS.maxOggListeners})
  --ogg-max-behind-kb N  drop an Ogg listener this many KiB behind (default ${DEFAULT_LIMITS.oggMaxBehindBytes / 1024})
  --lead-ms N            audio generated ahead of real time (default 1500)
  --window-seconds S     context window before a stream re-primes (default 30, capped by the model)
  --bitrate N            Opus bitrate in bits/s (default 64000)
  --log-level L          pino level (env LOG_LEVEL; default info)
  --metrics-sd-dir DIR   write this server's Prometheus target to DIR/ID.json while it runs
                         (file_sd; env RIVERRUN_METRICS_SD_DIR; ID: --worker-id, else hostname-port)

Cluster (docs/deploy.md): several servers that share nothing but Redis; a session whose server is gone
is taken up by another one when its client comes back with its resume token.
  --redis URL            redis://host:port of the cluster's store (env RIVERRUN_REDIS; default none:
                         a single server)
  --worker-id ID         this server's id in the cluster (env RIVERRUN_WORKER_ID; default hostname-pid)
  --advertise-url URL    where the other servers reach this one over HTTP (env RIVERRUN_ADVERTISE_URL;
                         default http://HOST:PORT)`;

/** The server's configuration from flags and environment (flags win); null after --help. */
export function parseServeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig | null {
  const line = parseCommandLine('serve', SERVE_USAGE, args, {
    model: { type: 'string' },
    precision: { type: 'string' },
    device: { type: 'string' },
    threads: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    channels: { type: 'string' },
    token: { type: 'string', multiple: true },
    'anonymous-role': { type: 'string' },
    'allow-origin': { type: 'string', multiple: true },
    'max-sessions': { type: 'string' },
    'max-sessions-per-address': { type: 'string' },
    'max-connections-per-address': { type: 'string' },
    'max-pending-setups': { type: 'string' },
    'max-pending-per-address': { type: 'string' },
    'setup-timeout-ms': { type: 'string' },
    'auth-failures': { type: 'string' },
    'auth-backoff-ms': { type: 'string' },
    'max-listeners': { type: 'string' },
    'max-ogg-listeners': { type: 'string' },
    'ogg-max-behind-kb': { type: 'string' },
    'lead-ms': { type: 'string' },
    'window-seconds': { type: 'string' },
    bitrate: { type: 'string' },
    'log-level': { type: 'string' },
    'metrics-sd-dir': { type: 'string' },
    redis: { type: 'string' },
    'worker-id': { type: 'string' },
    'advertise-url': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!line) return null;
  const { values, fail } = line;
  const int = (name: string, v: string | undefined, fallback: number, min: number, max: number): number => {
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) fail(`${name} must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
    return n;
  };
  const list = (flag: string[] | undefined, envValue: string | undefined): string[] =>
    flag ??
    (envValue
      ? envValue
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : []);

  const precision = (values.precision ?? env.RIVERRUN_PRECISION ?? 'fp32') as Precision;
  if (!PRECISIONS.includes(precision)) fail(`--precision must be one of ${PRECISIONS.join(', ')}`);
  const device = (values.device ?? env.RIVERRUN_DEVICE ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) fail(`--device must be one of ${DEVICES.join(', ')}`);

  const tokens = new Map<string, Role>();
  for (const entry of list(values.token, env.RIVERRUN_TOKENS)) {
    const at = entry.lastIndexOf(':');
    const role = entry.slice(at + 1) as Role;
    if (at <= 0 || !ROLES.includes(role))
      fail(`token ${JSON.stringify(`${entry.slice(0, 4)}…`)} must be TOKEN:ROLE with ROLE one of ${ROLES.join(', ')}`);
    tokens.set(entry.slice(0, at), role);
  }
  const anonymous = values['anonymous-role'] ?? env.RIVERRUN_ANONYMOUS_ROLE ?? (tokens.size > 0 ? 'listener' : 'session');
  if (anonymous !== 'none' && !ROLES.includes(anonymous as Role)) fail('--anonymous-role must be none, listener, session or operator');

  const channelsFile = values.channels ?? env.RIVERRUN_CHANNELS;
  let channels = DEFAULT_CHANNELS;
  if (channelsFile) {
    try {
      channels = loadChannels(channelsFile);
    } catch (err) {
      fail((err as Error).message);
    }
  }

  const metricsSdDir = values['metrics-sd-dir'] ?? env.RIVERRUN_METRICS_SD_DIR;
  const redisUrl = values.redis ?? env.RIVERRUN_REDIS;
  const workerId = values['worker-id'] ?? env.RIVERRUN_WORKER_ID;
  const advertiseUrl = values['advertise-url'] ?? env.RIVERRUN_ADVERTISE_URL;
  if (!redisUrl && (workerId || advertiseUrl)) fail('--worker-id and --advertise-url need --redis (they are for a cluster)');
  if (workerId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(workerId))
    fail(`--worker-id must be 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit (got ${JSON.stringify(workerId)})`);
  if (advertiseUrl !== undefined && !/^https?:\/\/[^/]+\/?$/.test(advertiseUrl))
    fail(`--advertise-url must be http://host:port (got ${JSON.stringify(advertiseUrl)})`);

  return {
    port: int('--port', values.port ?? env.PORT, 8080, 0, 65535),
    host: values.host ?? env.HOST ?? '0.0.0.0',
    modelDir: values.model ?? env.RIVERRUN_MODEL ?? null,
    precision,
    device,
    threads: values.threads === undefined ? undefined : int('--threads', values.threads, 1, 1, 256),
    channels,
    tokens,
    anonymousRole: anonymous as Role | 'none',
    allowedOrigins: list(values['allow-origin'], env.RIVERRUN_ALLOWED_ORIGINS),
    limits: {
      ...DEFAULT_LIMITS,
      maxSessions: int('--max-sessions', values['max-sessions'], DEFAULT_LIMITS.maxSessions, 0, 10_000),
      ...admissionLimits(int, values),
      maxListeners: int('--max-listeners', values['max-listeners'], DEFAULT_LIMITS.maxListeners, 1, 1_000_000),
      maxOggListeners: int('--max-ogg-listeners', values['max-ogg-listeners'], DEFAULT_LIMITS.maxOggListeners, 0, 1_000_000),
      oggMaxBehindBytes:
        1024 * int('--ogg-max-behind-kb', values['ogg-max-behind-kb'], DEFAULT_LIMITS.oggMaxBehindBytes / 1024, 4, 1024 * 1024),
    },
    leadMs: int('--lead-ms', values['lead-ms'], 1500, 100, 60_000),
    windowSeconds: int('--window-seconds', values['window-seconds'], 30, 2, 600),
    bitrate: int('--bitrate', values.bitrate, 64000, 6000, 510_000),
    webRoot: new URL('../../clients/web/', import.meta.url).pathname,
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
    ...(metricsSdDir && { metricsSdDir }),
    ...(redisUrl && { cluster: { redisUrl, workerId, advertiseUrl } }),
  };
}

/** The per-address, pending-setup and failed-token limits (admission.ts) from their flags. */
function admissionLimits(
  int: (name: string, v: string | undefined, fallback: number, min: number, max: number) => number,
  values: Record<string, unknown>,
): Partial<ServerConfig['limits']> {
  const d = DEFAULT_LIMITS;
  const flag = (name: string, fallback: number, min: number, max: number): number =>
    int(`--${name}`, values[name] as string | undefined, fallback, min, max);
  return {
    maxSessionsPerAddress: flag('max-sessions-per-address', d.maxSessionsPerAddress, 0, 10_000),
    maxConnectionsPerAddress: flag('max-connections-per-address', d.maxConnectionsPerAddress, 1, 1_000_000),
    maxPendingSetups: flag('max-pending-setups', d.maxPendingSetups, 1, 1_000_000),
    maxPendingPerAddress: flag('max-pending-per-address', d.maxPendingPerAddress, 1, 1_000_000),
    setupTimeoutMs: flag('setup-timeout-ms', d.setupTimeoutMs, 100, 600_000),
    authFailuresAllowed: flag('auth-failures', d.authFailuresAllowed, 0, 1_000_000),
    authBackoffMs: flag('auth-backoff-ms', d.authBackoffMs, 1, 3_600_000),
  };
}

export async function runServe(args: string[]): Promise<void> {
  const config = parseServeArgs(args);
  if (!config) return;
  const log = pino({ level: config.logLevel, base: { service: 'riverrun' } });
  const server = await startServer(config, { log });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      void server.close().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    // An engine that gave up (its worker kept dying) serves nothing: exit non-zero so that whatever
    // supervises the process (systemd, Kubernetes) starts it again.
    server.engine.once('failed', () => {
      process.exitCode = 1;
      stop('engine failed');
    });
  });
}
