// Server configuration from flags and environment (flags win). Documented in README.md.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PRECISIONS, type Precision } from '../models/graphs/linear.ts';
import { DEVICES, type Device } from '../models/model-bundle.ts';
import { UsageError } from '../cli/usage-error.ts';
import type { ChannelSpec } from './channel.ts';
import { DEFAULT_PROTOCOL_LIMITS } from './protocol.ts';

export type Role = 'listener' | 'session' | 'operator';
export const ROLES: readonly Role[] = ['listener', 'session', 'operator'];

export interface ServerLimits {
  /** Largest WebSocket frame accepted (bytes). */
  maxPayload: number;
  maxPromptChars: number;
  maxPrompts: number;
  /** Steering messages (prompts/config/playback) per second per connection, with a burst allowance. */
  steeringPerSecond: number;
  steeringBurst: number;
  maxSessions: number;
  maxListeners: number;
  /** Bytes a connection may have queued before its audio is skipped, and before it is closed. */
  skipAfterBytes: number;
  closeAfterBytes: number;
  /** How long a connection may stay behind before it is closed (ms). */
  closeAfterMs: number;
}

export interface ServerConfig {
  port: number;
  host: string;
  modelDir: string | null;
  precision: Precision;
  device: Device;
  threads?: number;
  channels: ChannelSpec[];
  /** token -> role; empty means every connection gets `anonymousRole`. */
  tokens: Map<string, Role>;
  anonymousRole: Role | 'none';
  /** Allowed Origin headers for WebSocket connections; empty = any. */
  allowedOrigins: string[];
  limits: ServerLimits;
  leadMs: number;
  windowSeconds: number;
  bitrate: number;
  webRoot: string;
  logLevel: string;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxPayload: 64 * 1024,
  maxPromptChars: DEFAULT_PROTOCOL_LIMITS.maxPromptChars,
  maxPrompts: DEFAULT_PROTOCOL_LIMITS.maxPrompts,
  steeringPerSecond: 5,
  steeringBurst: 10,
  maxSessions: 8,
  maxListeners: 1000,
  skipAfterBytes: 256 * 1024,
  closeAfterBytes: 1024 * 1024,
  closeAfterMs: 10_000,
};

export const DEFAULT_CHANNELS: ChannelSpec[] = [
  { id: 'radio', name: 'Riverrun Radio', prompts: [{ text: 'calm ambient piano with soft pads', weight: 1 }] },
];

export const SERVE_USAGE = `Usage: riverrun serve [options]

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
  --max-listeners N      connections at once (default ${DEFAULT_LIMITS.maxListeners})
  --lead-ms N            audio generated ahead of real time (default 1500)
  --window-seconds S     context window before a stream re-primes (default 30, capped by the model)
  --bitrate N            Opus bitrate in bits/s (default 64000)
  --log-level L          pino level (env LOG_LEVEL; default info)`;

export function parseServeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
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
        'max-listeners': { type: 'string' },
        'lead-ms': { type: 'string' },
        'window-seconds': { type: 'string' },
        bitrate: { type: 'string' },
        'log-level': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new UsageError(`riverrun serve: ${(err as Error).message}`, SERVE_USAGE);
  }
  const fail = (msg: string): never => {
    throw new UsageError(`riverrun serve: ${msg}`, SERVE_USAGE);
  };
  const int = (name: string, v: string | undefined, fallback: number, min: number, max: number): number => {
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) fail(`${name} must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
    return n;
  };
  const list = (flag: string[] | undefined, envValue: string | undefined): string[] =>
    flag ?? (envValue ? envValue.split(',').map((s) => s.trim()).filter(Boolean) : []);

  const precision = (values.precision ?? env.RIVERRUN_PRECISION ?? 'fp32') as Precision;
  if (!PRECISIONS.includes(precision)) fail(`--precision must be one of ${PRECISIONS.join(', ')}`);
  const device = (values.device ?? env.RIVERRUN_DEVICE ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) fail(`--device must be one of ${DEVICES.join(', ')}`);

  const tokens = new Map<string, Role>();
  for (const entry of list(values.token, env.RIVERRUN_TOKENS)) {
    const at = entry.lastIndexOf(':');
    const role = entry.slice(at + 1) as Role;
    if (at <= 0 || !ROLES.includes(role)) fail(`token ${JSON.stringify(entry.slice(0, 4) + '…')} must be TOKEN:ROLE with ROLE one of ${ROLES.join(', ')}`);
    tokens.set(entry.slice(0, at), role);
  }
  const anonymous = values['anonymous-role'] ?? env.RIVERRUN_ANONYMOUS_ROLE ?? (tokens.size > 0 ? 'listener' : 'session');
  if (anonymous !== 'none' && !ROLES.includes(anonymous as Role)) fail('--anonymous-role must be none, listener, session or operator');

  const channelsFile = values.channels ?? env.RIVERRUN_CHANNELS;
  const channels = channelsFile ? readChannels(channelsFile, fail) : DEFAULT_CHANNELS;

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
      maxListeners: int('--max-listeners', values['max-listeners'], DEFAULT_LIMITS.maxListeners, 1, 1_000_000),
    },
    leadMs: int('--lead-ms', values['lead-ms'], 1500, 100, 60_000),
    windowSeconds: int('--window-seconds', values['window-seconds'], 30, 2, 600),
    bitrate: int('--bitrate', values.bitrate, 64000, 6000, 510_000),
    webRoot: new URL('../../clients/web/', import.meta.url).pathname,
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
  };
}

const CHANNEL_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function readChannels(path: string, fail: (msg: string) => never): ChannelSpec[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail(`cannot read channels file ${path}: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length === 0) fail(`${path} must hold a non-empty JSON list of channels`);
  const seen = new Set<string>();
  return (raw as Record<string, unknown>[]).map((c, i) => {
    const where = `${path}: channel ${i}`;
    if (typeof c !== 'object' || c === null) fail(`${where} is not an object`);
    const id = c.id;
    if (typeof id !== 'string' || !CHANNEL_ID.test(id)) fail(`${where}: id must match ${CHANNEL_ID}`);
    if (seen.has(id as string)) fail(`${where}: duplicate id ${id}`);
    seen.add(id as string);
    const prompts = c.prompts;
    if (!Array.isArray(prompts) || prompts.length === 0 || !prompts.every((p) => typeof p?.text === 'string' && p.text.trim() !== '' && typeof p?.weight === 'number' && p.weight >= 0)) {
      fail(`${where}: prompts must be a non-empty list of {text, weight}`);
    }
    if (c.channels !== undefined && c.channels !== 1 && c.channels !== 2) fail(`${where}: channels must be 1 or 2`);
    if (c.icecast !== undefined && typeof c.icecast !== 'string') fail(`${where}: icecast must be a URL string`);
    return {
      id: id as string,
      name: typeof c.name === 'string' ? c.name : (id as string),
      prompts: prompts as ChannelSpec['prompts'],
      config: (c.config ?? undefined) as ChannelSpec['config'],
      channels: c.channels as 1 | 2 | undefined,
      icecast: c.icecast as string | undefined,
    };
  });
}
