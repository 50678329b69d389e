// The server's configuration (built from flags and environment by src/cli/serve.ts; README.md lists them).
import { readFileSync } from 'node:fs';
import type { Precision } from '../models/graphs/linear.ts';
import type { Device } from '../models/model-bundle.ts';
import { CHANNEL_ID_PATTERN, DEFAULT_PROTOCOL_LIMITS } from '../protocol/limits.ts';
import { type ChannelSpec, WHEN_IDLE, type WhenIdle } from './channel.ts';
import { parseStreamControls } from './message-validation.ts';

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
  /** Messages of any kind (errors and pings included) per second per connection, and the burst; past it the connection is closed. */
  messagesPerSecond: number;
  messageBurst: number;
  maxSessions: number;
  maxListeners: number;
  /** Per client address (the socket's; IPv6 by /64): connections and personal sessions at once. */
  maxConnectionsPerAddress: number;
  maxSessionsPerAddress: number;
  /** Connections that have not sent setup yet, server-wide and per address, and how long they may wait (ms). */
  maxPendingSetups: number;
  maxPendingPerAddress: number;
  setupTimeoutMs: number;
  /** Wrong tokens an address may send before it backs off, and the first backoff (ms; doubles after each further one). */
  authFailuresAllowed: number;
  authBackoffMs: number;
  /** Live Ogg (HTTP) listeners at once; one more is answered 503 `busy` with Retry-After. */
  maxOggListeners: number;
  /**
   * Bytes an Ogg listener may be behind before it is dropped: unsent in Node plus, where the OS tells
   * (Linux), sent to the kernel but not yet acknowledged by the client.
   */
  oggMaxBehindBytes: number;
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
  /** Where to write this server's Prometheus scrape target (file_sd), if anywhere. */
  metricsSdDir?: string;
  /** A worker of a cluster (src/cluster/): its sessions' state in Redis, resumable on any worker. */
  cluster?: ClusterConfig;
  /** Let Engine.injectFault make the engine worker fail (tests and drills of its restart; no CLI flag). */
  engineFaults?: boolean;
}

interface ClusterConfig {
  /** redis://host:port of the store every worker shares. */
  redisUrl: string;
  /** This worker's id (default hostname-pid). */
  workerId?: string;
  /** Where the other workers reach this one's HTTP (default http://HOST:PORT as listened on). */
  advertiseUrl?: string;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxPayload: 64 * 1024,
  maxPromptChars: DEFAULT_PROTOCOL_LIMITS.maxPromptChars,
  maxPrompts: DEFAULT_PROTOCOL_LIMITS.maxPrompts,
  steeringPerSecond: 5,
  steeringBurst: 10,
  // 10x what a lively client needs (steering is 5/s, a ping a second); each message costs at most one
  // checked frame (64 KiB, 1024 values), so a connection cannot keep a core busy with messages.
  messagesPerSecond: 50,
  messageBurst: 100,
  maxSessions: 8,
  maxListeners: 1000,
  // A household or office behind one NAT fits in 64 connections; 16 addresses are needed to fill the server.
  maxConnectionsPerAddress: 64,
  // Sessions are the costly resource: one address may take half of the default 8.
  maxSessionsPerAddress: 4,
  // Idle sockets are cheap to open: at most 8 per address and 128 in all may wait, for 5 s each.
  maxPendingSetups: 128,
  maxPendingPerAddress: 8,
  setupTimeoutMs: 5000,
  // 5 typos are free; then 1 s, 2 s, 4 s ... up to 5 min between guesses.
  authFailuresAllowed: 5,
  authBackoffMs: 1000,
  maxOggListeners: 1000,
  // 16 s of a 64 kbit/s stream: a listener that reads has at most a batch (0.5 s) in flight.
  oggMaxBehindBytes: 128 * 1024,
  skipAfterBytes: 256 * 1024,
  closeAfterBytes: 1024 * 1024,
  closeAfterMs: 10_000,
};

export const DEFAULT_CHANNELS: ChannelSpec[] = [
  { id: 'radio', name: 'Riverrun Radio', prompts: [{ text: 'calm ambient piano with soft pads', weight: 1 }] },
];

const CHANNEL_FIELDS = ['id', 'name', 'prompts', 'config', 'channels', 'icecast', 'whenIdle', 'idleAfterMs'];
/** Longest idleAfterMs: a day (and well inside what a timer can wait). */
const MAX_IDLE_AFTER_MS = 86_400_000;

/** Reads and checks a channels file; errors name the file and the channel at fault. */
export function loadChannels(path: string): ChannelSpec[] {
  const fail = (msg: string): never => {
    throw new Error(msg);
  };
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
    if (typeof c !== 'object' || c === null || Array.isArray(c)) fail(`${where} is not an object`);
    const unknown = Object.keys(c).find((k) => !CHANNEL_FIELDS.includes(k));
    if (unknown !== undefined) fail(`${where}: unknown field ${JSON.stringify(unknown)} (known: ${CHANNEL_FIELDS.join(', ')})`);
    const id = c.id;
    if (typeof id !== 'string' || !CHANNEL_ID_PATTERN.test(id)) fail(`${where}: id must match ${CHANNEL_ID_PATTERN}`);
    if (seen.has(id as string)) fail(`${where}: duplicate id ${id}`);
    seen.add(id as string);
    let controls: ReturnType<typeof parseStreamControls>;
    try {
      controls = parseStreamControls(c.prompts, c.config, `channel ${id as string}`);
    } catch (err) {
      return fail(`${where}: ${(err as Error).message}`);
    }
    if (c.channels !== undefined && c.channels !== 1 && c.channels !== 2) fail(`${where}: channels must be 1 or 2`);
    if (c.icecast !== undefined && typeof c.icecast !== 'string') fail(`${where}: icecast must be a URL string`);
    if (c.whenIdle !== undefined && !WHEN_IDLE.includes(c.whenIdle as WhenIdle))
      fail(`${where}: whenIdle must be ${WHEN_IDLE.map((w) => JSON.stringify(w)).join(' or ')}, got ${JSON.stringify(c.whenIdle)}`);
    const idleAfter = c.idleAfterMs;
    if (
      idleAfter !== undefined &&
      !(Number.isInteger(idleAfter) && (idleAfter as number) >= 0 && (idleAfter as number) <= MAX_IDLE_AFTER_MS)
    )
      fail(`${where}: idleAfterMs must be an integer number of ms in [0, ${MAX_IDLE_AFTER_MS}], got ${JSON.stringify(idleAfter)}`);
    return {
      id: id as string,
      name: typeof c.name === 'string' ? c.name : (id as string),
      prompts: controls.prompts,
      config: controls.config,
      channels: c.channels as 1 | 2 | undefined,
      icecast: c.icecast as string | undefined,
      whenIdle: c.whenIdle as WhenIdle | undefined,
      idleAfterMs: idleAfter as number | undefined,
    };
  });
}
