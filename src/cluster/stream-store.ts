// The small state of every personal stream of a cluster, in Redis: who owns it, the hash of its resume
// token, and what creates it again where it stood (Engine.snapshot: prompts, config, control number,
// playback, the last frames' codes, the next seq, the listener's lead), with the time it was taken.
// Each key is one hash, `riverrun:stream:<id>`, that expires when its owner stops refreshing it: a
// stream whose worker died and whose client never came back is gone after RESUME_WINDOW_MS.
//
// Every write is a script that checks the owner first, so a worker that lost a stream (another one took
// it over) can neither overwrite it nor delete it.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StreamSpec } from '../stream/engine-core.ts';
import type { UnappliedControl } from '../stream/stream-record.ts';

/** How long a stream's state outlives its owner's last write: the time a client has to resume it. */
const RESUME_WINDOW_MS = 60_000;

export interface StreamSnapshot {
  spec: StreamSpec;
  controls: UnappliedControl[];
}

export interface StoredStream {
  owner: string;
  snapshot: StreamSnapshot;
  /** When the snapshot was taken (ms since the epoch). */
  savedAt: number;
}

/** Outcome of a claim: taken (now ours), or why not. */
export type ClaimResult = { kind: 'claimed'; stream: StoredStream } | { kind: 'missing' } | { kind: 'owner changed'; owner: string };

const SAVE = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', ARGV[2], 'snapshot', ARGV[3], 'savedAt', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

const CLAIM = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return {'missing'} end
if owner ~= ARGV[1] then return {'owner changed', owner} end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'snapshot', 'savedAt')
return {'claimed', h[1], h[2]}`;

const REMOVE = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

function streamKey(id: string): string {
  return `riverrun:stream:${id}`;
}

/** What the store keeps of a resume token: its SHA-256, so that reading Redis does not give it away. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class StreamStore {
  constructor(
    private readonly redis: Redis,
    /** This worker's id: the owner of what it saves. */
    private readonly workerId: string,
  ) {}

  /** Writes the stream's state as its owner; false if another worker owns it now. */
  async save(id: string, tokenSha: string, snapshot: StreamSnapshot, savedAt = Date.now()): Promise<boolean> {
    const done = await this.redis.eval(
      SAVE,
      1,
      streamKey(id),
      this.workerId,
      tokenSha,
      JSON.stringify(snapshot),
      String(savedAt),
      String(RESUME_WINDOW_MS),
    );
    return done === 1;
  }

  /** The stream's owner and whether `token` is its resume token; null if no such stream is stored. */
  async lookup(id: string, token: string): Promise<{ owner: string; tokenMatches: boolean } | null> {
    const [owner, sha] = await this.redis.hmget(streamKey(id), 'owner', 'token');
    if (owner === null || owner === undefined) return null;
    return { owner, tokenMatches: sha === tokenHash(token) };
  }

  /** Takes the stream from `from` (its owner as looked up), atomically: no two workers get it. */
  async claim(id: string, from: string): Promise<ClaimResult> {
    const r = (await this.redis.eval(CLAIM, 1, streamKey(id), from, this.workerId, String(RESUME_WINDOW_MS))) as string[];
    if (r[0] === 'missing') return { kind: 'missing' };
    if (r[0] === 'owner changed') return { kind: 'owner changed', owner: r[1]! };
    return { kind: 'claimed', stream: { owner: this.workerId, snapshot: JSON.parse(r[1]!) as StreamSnapshot, savedAt: Number(r[2]) } };
  }

  /** Forgets a stream that ended (only if this worker still owns it). */
  async remove(id: string): Promise<void> {
    await this.redis.eval(REMOVE, 1, streamKey(id), this.workerId);
  }
}
