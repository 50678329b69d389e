// A real cluster on loopback (infra/local/cluster.sh): Redis with AOF, HAProxy and 3 workers with the
// demo model. Sessions are opened through HAProxy; a worker is killed (SIGKILL) or stopped (SIGTERM) and
// its sessions' clients come back through HAProxy with their resume handle, as the SDK does.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Msg, TestClient } from './helpers/ws-client.ts';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const CLUSTER = join(ROOT, 'infra/local/cluster.sh');
const BIN = join(ROOT, 'bin/riverrun');
const work = mkdtempSync(join(tmpdir(), 'riverrun-cluster-'));
const env = { ...process.env, RIVERRUN_CLUSTER_RUN: join(work, 'run') };
// A base port per run, so that a leftover cluster of another run cannot answer.
const PORT = 20_000 + Math.floor(Math.random() * 20_000);
const FRONT = `ws://127.0.0.1:${PORT}/v1/ws`;

interface WorkerInfo {
  id: string;
  pid: number;
  port: number;
  url: string;
}
let workers: WorkerInfo[] = [];
let redis: Redis;

beforeAll(async () => {
  // One onnxruntime thread per worker: three engines share this machine's cores.
  const flags = ['--threads', '1', '--max-sessions', '12', '--max-sessions-per-address', '12', '--log-level', 'info'];
  await run(CLUSTER, ['up', '--workers', '3', '--port', String(PORT), '--', ...flags], { env, timeout: 240_000 });
  workers = (JSON.parse(readFileSync(join(work, 'run/workers.json'), 'utf8')) as { workers: WorkerInfo[] }).workers;
  redis = new Redis(PORT + 1, '127.0.0.1');
}, 260_000);

afterAll(async () => {
  redis?.disconnect();
  await run(CLUSTER, ['down'], { env, timeout: 60_000 }).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}, 70_000);

async function held(w: WorkerInfo): Promise<{ id: string; streams: string[]; channels: string[] }> {
  const res = await fetch(`${w.url}/v1/worker`);
  return (await res.json()) as { id: string; streams: string[]; channels: string[] };
}

/** A session's client: records every audio message's arrival, and comes back with its resume handle when dropped. */
class SessionClient {
  client!: TestClient;
  resume!: { session: string; token: string };
  /** Every audio message, with its arrival time, across connections. */
  readonly audio: { at: number; seq: number; pts: number; packets: number; connection: number }[] = [];
  readonly connections: TestClient[] = [];

  constructor(readonly prompt: string) {}

  private track(c: TestClient): void {
    const connection = this.connections.push(c) - 1;
    c.ws.on('message', () => {
      const m = c.messages[c.messages.length - 1]!;
      if (m.type === 'audio')
        this.audio.push({
          at: performance.now(),
          seq: m.seq as number,
          pts: m.pts as number,
          packets: (m.packets as unknown[]).length,
          connection,
        });
    });
  }

  async open(): Promise<void> {
    this.client = await TestClient.connect(FRONT);
    this.track(this.client);
    this.client.send({ type: 'setup', session: { prompts: [{ text: this.prompt, weight: 1 }], config: { seed: 7 } } });
    const done = await this.client.next('setup_complete', 0, 60_000);
    this.resume = done.resume as { session: string; token: string };
  }

  /** Reconnects through the front, naming the session in the URL (for HAProxy) and resuming it. */
  async comeBack(): Promise<Msg> {
    this.client = await TestClient.connect(`${FRONT}?session=${encodeURIComponent(this.resume.session)}`);
    this.track(this.client);
    this.client.send({ type: 'setup', resume: this.resume });
    return this.client.until(() => this.client.of('setup_complete')[0] ?? this.client.of('error')[0], 30_000, 'resume answer');
  }

  /** Seconds of audio received by `at` beyond what a player started at the first packet has played. */
  bufferedAt(at: number): number {
    const first = this.audio[0]!;
    const received = this.audio.filter((a) => a.at <= at).reduce((n, a) => n + a.packets, 0) * 0.02;
    return received - (at - first.at) / 1000;
  }
}

describe('a cluster of 3 workers behind HAProxy', () => {
  it('answers GET /v1/worker on every worker', async () => {
    for (const w of workers) expect(await held(w)).toEqual({ id: w.id, streams: [], channels: ['radio'] });
  });

  it('a killed worker: its sessions come back on the others, with seq and pts going on, under the same prompts', async () => {
    const clients = Array.from({ length: 12 }, (_, i) => new SessionClient(`test prompt ${i}`));
    for (const c of clients) await c.open();
    await new Promise((r) => setTimeout(r, 4000));
    const holdings = await Promise.all(workers.map(held));
    expect(holdings.flatMap((h) => h.streams).sort()).toEqual(clients.map((c) => c.resume.session).sort());
    const victim = workers[holdings.reduce((best, h, i) => (h.streams.length > holdings[best]!.streams.length ? i : best), 0)]!;
    const moved = clients.filter((c) => holdings[workers.indexOf(victim)]!.streams.includes(c.resume.session));
    expect(moved.length).toBeGreaterThan(0);
    const stored = await redis.hgetall(`riverrun:stream:${moved[0]!.resume.session}`);
    expect(stored.owner).toBe(victim.id);

    const killedAt = performance.now();
    process.kill(victim.pid, 'SIGKILL');
    const answers = await Promise.all(
      moved.map(async (c) => {
        const closed = await c.client.waitClosed(10_000);
        expect(closed.code).toBe(1006);
        return c.comeBack();
      }),
    );
    for (const a of answers) expect(a).toMatchObject({ type: 'setup_complete', resumed: true });
    await new Promise((r) => setTimeout(r, 4000));

    const gaps: number[] = [];
    const stalls: number[] = [];
    for (const c of moved) {
      const before = c.audio.filter((a) => a.connection === 0);
      const after = c.audio.filter((a) => a.connection === 1);
      expect(after.length).toBeGreaterThan(0);
      const last = before[before.length - 1]!;
      const lastSeq = last.seq + last.packets - 1;
      // seq goes on from where the stream's state was last written: at most one batch of packets again.
      expect(after[0]!.seq).toBeGreaterThan(lastSeq - 30);
      expect(after[0]!.seq).toBeLessThanOrEqual(lastSeq + 1);
      for (const a of after) expect(a.pts).toBe(a.seq * 960);
      gaps.push(after[0]!.at - killedAt);
      // What a player that started at the first packet would have missed: the gap beyond its buffer.
      stalls.push(Math.max(0, after[0]!.at - killedAt - 1000 * c.bufferedAt(killedAt)));
      // The same prompts as before: the resumed session says what it plays.
      const applied = c.client.of('applied');
      expect(applied[0]).toMatchObject({ prompts: [{ text: c.prompt, weight: 1 }] });
    }
    const ms = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(', ');
    console.log(`SIGKILL: ${moved.length} sessions back; first audio after the kill ${ms(gaps)} ms; a player's stall ${ms(stalls)} ms`);
    for (const g of gaps) expect(g).toBeLessThan(2000);

    const after = await Promise.all(workers.filter((w) => w !== victim).map(held));
    expect(after.flatMap((h) => h.streams).sort()).toEqual(clients.map((c) => c.resume.session).sort());
    for (const s of moved) expect(await redis.hget(`riverrun:stream:${s.resume.session}`, 'owner')).not.toBe(victim.id);

    for (const c of clients) c.client.close();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await redis.keys('riverrun:stream:*')).toEqual([]);
  }, 120_000);
});
