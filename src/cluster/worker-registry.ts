// The cluster's workers in Redis: each one refreshes `riverrun:worker:<id>` (its URL and load) every
// HEARTBEAT_MS with a time to live of HEARTBEAT_TTL_MS, so a worker that dies without a goodbye drops out
// of the registry within that time. Whether a stream's owner is alive is asked of the owner itself when
// its entry is still there: a killed process refuses the connection at once, long before its entry expires.
import type { Redis } from 'ioredis';

export const HEARTBEAT_MS = 1000;
const HEARTBEAT_TTL_MS = 3000;
/** How long an owner has to answer `GET /v1/worker` before it counts as gone. */
const PROBE_TIMEOUT_MS = 500;

/** What a worker publishes of itself, and answers on GET /v1/worker (with the ids). */
export interface WorkerEntry {
  id: string;
  /** Its own HTTP address, where the others probe it. */
  url: string;
  streams: number;
  channels: number;
  /** When the entry was written (ms since the epoch). */
  at: number;
}

function workerKey(id: string): string {
  return `riverrun:worker:${id}`;
}

export async function publishWorker(redis: Redis, entry: WorkerEntry): Promise<void> {
  await redis.set(workerKey(entry.id), JSON.stringify(entry), 'PX', HEARTBEAT_TTL_MS);
}

export async function unpublishWorker(redis: Redis, id: string): Promise<void> {
  await redis.del(workerKey(id));
}

/**
 * Whether worker `id` is alive and holds stream `streamId`: its entry is current and it says so when
 * asked. A worker that does not answer (killed, unreachable) does not hold it, nor one that answers
 * without it (the stream's state outlived it there).
 */
export async function holdsStream(redis: Redis, id: string, streamId: string): Promise<boolean> {
  const raw = await redis.get(workerKey(id));
  if (raw === null) return false;
  const entry = JSON.parse(raw) as WorkerEntry;
  try {
    const res = await fetch(new URL('/v1/worker', entry.url), { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!res.ok) return false;
    const held = (await res.json()) as { id?: string; streams?: string[] };
    return held.id === id && Array.isArray(held.streams) && held.streams.includes(streamId);
  } catch {
    return false;
  }
}
