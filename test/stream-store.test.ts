// The cluster's session store against a real redis-server: only the owner writes or deletes, a claim
// is a compare-and-set on the owner, a token is kept as its hash, a key expires without its owner.
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StreamSnapshot, StreamStore, tokenHash } from '../src/cluster/stream-store.ts';

const PORT = 40_000 + Math.floor(Math.random() * 20_000);
let server: ChildProcess;
let redis: Redis;

beforeAll(async () => {
  server = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(PORT), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  redis = new Redis(PORT, '127.0.0.1', { retryStrategy: (n) => (n < 100 ? 50 : null) });
  redis.on('error', () => {}); // refused until redis-server listens: retried
  await redis.ping();
});

afterAll(() => {
  redis?.disconnect();
  server?.kill();
});

const snapshot = (nextSeq: number): StreamSnapshot => ({
  spec: {
    prompts: [{ text: 'rain', weight: 1 }],
    config: { seed: 3 },
    resume: { frames: [[1, 2, 3, 4]], firstFrame: 10, nextSeq, control: 2, leadMs: 900 },
  },
  controls: [{ tag: 4, kind: 'config', config: { temperature: 0.9 } }],
});

describe('StreamStore', () => {
  it('only the owner writes and deletes; a claim moves the stream to one worker only', async () => {
    const a = new StreamStore(redis, 'wa');
    const b = new StreamStore(redis, 'wb');
    const c = new StreamStore(redis, 'wc');
    expect(await a.save('s1', tokenHash('tok'), snapshot(100), 1234)).toBe(true);
    expect(await redis.hget('riverrun:stream:s1', 'token')).toBe(tokenHash('tok'));
    expect(await redis.hget('riverrun:stream:s1', 'token')).not.toContain('tok');
    expect(await a.lookup('s1', 'tok')).toEqual({ owner: 'wa', tokenMatches: true });
    expect(await a.lookup('s1', 'other')).toEqual({ owner: 'wa', tokenMatches: false });
    expect(await a.lookup('nope', 'tok')).toBeNull();
    expect(await b.save('s1', tokenHash('tok'), snapshot(1), 1)).toBe(false);

    // Two workers claim from the same owner at once: one gets it.
    const [fromB, fromC] = await Promise.all([b.claim('s1', 'wa'), c.claim('s1', 'wa')]);
    const winner = fromB.kind === 'claimed' ? fromB : fromC;
    const loser = fromB.kind === 'claimed' ? fromC : fromB;
    expect(winner).toEqual({ kind: 'claimed', stream: { owner: fromB === winner ? 'wb' : 'wc', snapshot: snapshot(100), savedAt: 1234 } });
    expect(loser).toEqual({ kind: 'owner changed', owner: fromB === winner ? 'wb' : 'wc' });
    // The old owner can neither write nor delete it any more.
    expect(await a.save('s1', tokenHash('tok'), snapshot(200))).toBe(false);
    await a.remove('s1');
    expect(await redis.exists('riverrun:stream:s1')).toBe(1);
    await (fromB === winner ? b : c).remove('s1');
    expect(await redis.exists('riverrun:stream:s1')).toBe(0);
    expect(await b.claim('s1', 'wa')).toEqual({ kind: 'missing' });
  });

  it('keys expire without their owner', async () => {
    const a = new StreamStore(redis, 'wa');
    await a.save('s2', tokenHash('t'), snapshot(5));
    await a.save('s3', tokenHash('t'), snapshot(5));
    expect((await redis.keys('riverrun:stream:*')).sort()).toEqual(['riverrun:stream:s2', 'riverrun:stream:s3']);
    const ttl = await redis.pttl('riverrun:stream:s2');
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await a.remove('s2');
    await a.remove('s3');
    expect(await redis.keys('riverrun:stream:*')).toEqual([]);
  });
});
