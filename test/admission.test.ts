// Who may connect and set up now (src/server/admission.ts): the accounting on its own, with a fake
// clock, then through a real server where other loopback addresses (127.0.0.2, 127.0.1.x; Linux routes
// all of 127/8 to lo) stand for other clients.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import type { ErrorCode } from '../src/protocol/errors.ts';
import { Admission, type AdmissionLimits, addressKey } from '../src/server/admission.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { OggOpusMuxer } from '../src/stream/ogg-muxer.ts';
import { OpusPacketizer } from '../src/stream/opus-packetizer.ts';
import { TestClient } from './helpers/ws-client.ts';

const LIMITS: AdmissionLimits = {
  maxConnections: 10,
  maxConnectionsPerAddress: 4,
  maxPendingSetups: 6,
  maxPendingPerAddress: 2,
  maxSessions: 4,
  maxSessionsPerAddress: 2,
  authFailuresAllowed: 3,
  authBackoffMs: 1000,
};

function codeOf(f: () => unknown): ErrorCode | undefined {
  try {
    f();
  } catch (err) {
    return (err as { code: ErrorCode }).code;
  }
  return undefined;
}

describe('Admission (unit)', () => {
  it('caps connections not yet set up per address and server-wide; setting up frees the pending slot', () => {
    const a = new Admission(LIMITS);
    const t1 = a.admit('a');
    a.admit('a');
    expect(codeOf(() => a.admit('a'))).toBe('busy'); // 2 pending from a
    t1.setupStarted();
    const t3 = a.admit('a');
    expect(codeOf(() => a.admit('a'))).toBe('busy');
    t3.setupStarted();
    a.admit('a'); // 4 connections from a now
    expect(codeOf(() => a.admit('a'))).toBe('busy'); // per-address connection cap
    expect(a.stats()).toMatchObject({ connections: 4, pending: 2, addresses: 1 });
    a.admit('b');
    a.admit('c');
    a.admit('d');
    a.admit('d');
    expect(codeOf(() => a.admit('e'))).toBe('busy'); // 6 pending server-wide
    t1.release();
    t1.release(); // twice is harmless
    expect(a.stats()).toMatchObject({ connections: 7, pending: 6 });
    expect(codeOf(() => a.admit('e'))).toBe('busy'); // still 6 pending
  });

  it('caps connections server-wide and forgets an address once all its connections are gone', () => {
    const a = new Admission({ ...LIMITS, maxPendingSetups: 100, maxPendingPerAddress: 100, maxConnectionsPerAddress: 100 });
    const tickets = Array.from({ length: 10 }, (_, i) => a.admit(`x${i % 3}`));
    expect(codeOf(() => a.admit('y'))).toBe('busy');
    for (const t of tickets) t.release();
    expect(a.stats()).toMatchObject({ connections: 0, pending: 0, addresses: 0 });
    a.admit('y');
  });

  it('reserves session slots at once, per address and server-wide; a release is idempotent', () => {
    const a = new Admission(LIMITS);
    const [t1, t2, t3] = ['a', 'b', 'c'].map((x) => a.admit(x));
    const s1 = t1!.reserveSession();
    t1!.reserveSession();
    expect(codeOf(() => t1!.reserveSession())).toBe('busy'); // 2 per address
    t2!.reserveSession();
    const s4 = t2!.reserveSession();
    expect(codeOf(() => t3!.reserveSession())).toBe('busy'); // 4 server-wide
    s4();
    s4();
    expect(a.stats().sessions).toBe(3);
    t3!.reserveSession();
    s1();
    expect(a.stats().sessions).toBe(3);
  });

  it('backs off an address after repeated failed tokens, exponentially, and forgets it later', () => {
    let now = 0;
    const a = new Admission(LIMITS, { now: () => now });
    const t = a.admit('a');
    const other = a.admit('b');
    for (let i = 0; i < 3; i++) {
      t.checkAuth();
      t.authFailed();
    }
    expect(codeOf(() => t.checkAuth())).toBe('rate_limited');
    other.checkAuth(); // another address is not affected
    now += 999;
    expect(codeOf(() => t.checkAuth())).toBe('rate_limited');
    now += 1;
    t.checkAuth();
    t.authFailed(); // the 4th failure: 2 s
    now += 1999;
    expect(codeOf(() => t.checkAuth())).toBe('rate_limited');
    now += 1;
    t.checkAuth();
    t.authFailed(); // the 5th: 4 s
    now += 3999;
    expect(codeOf(() => t.checkAuth())).toBe('rate_limited');
    expect(a.stats().authTracked).toBe(1);
    now += 60 * 60_000; // an hour of quiet: forgotten
    t.checkAuth();
    t.authFailed();
    t.checkAuth();
    expect(a.stats().authBlocked).toBe(0);
  });

  it('keeps the failed-auth table bounded', () => {
    let now = 0;
    const a = new Admission(LIMITS, { now: () => now, maxAuthEntries: 100 });
    for (let i = 0; i < 1000; i++) {
      now += 1;
      const t = a.admit(`addr${i}`);
      t.authFailed();
      t.release();
    }
    expect(a.stats().authTracked).toBeLessThanOrEqual(100);
  });

  it('keys IPv4 by address, IPv4-mapped IPv6 as IPv4, and IPv6 by its /64', () => {
    expect(addressKey('127.0.0.2')).toBe('127.0.0.2');
    expect(addressKey('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey(undefined)).toBe('unknown');
  });
});

// ---- Through a real server ----

let work: string;
let server: RiverrunServer;
let url: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-admission-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  const config = parseServeArgs(
    [
      ...['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1'],
      ...['--token', 'right-secret:session', '--anonymous-role', 'session'],
      ...['--max-sessions', '8', '--max-listeners', '60', '--lead-ms', '500', '--window-seconds', '4'],
    ],
    {},
  )!;
  config.limits = {
    ...config.limits,
    maxConnectionsPerAddress: 16,
    maxPendingPerAddress: 8,
    maxPendingSetups: 40,
    maxSessionsPerAddress: 3,
    // Short, yet long enough for the 70 connections of the idle-socket test to open before it passes.
    setupTimeoutMs: 3000,
    authFailuresAllowed: 5,
    // Long enough that the whole burst below falls inside the first backoff: a count, not a timing.
    authBackoffMs: 120_000,
  };
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
  url = `ws://127.0.0.1:${server.port}/v1/ws`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

const from = (localAddress: string): Promise<TestClient> => TestClient.connect(url, { localAddress });

/** Half a second of a tone as an Ogg Opus file: decoding it awaits the decoder's WASM, a real await. */
function oggOpusPrompt(): Uint8Array {
  const opus = new OpusPacketizer({ channels: 1, bitrate: 32000 });
  const pcm = Float32Array.from({ length: 24000 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 330 * i) / 48000));
  const packets = [...opus.push(pcm), ...opus.flush()];
  const mux = new OggOpusMuxer({ channels: 1, preSkip: opus.preSkip });
  return Buffer.concat([mux.headers(), mux.push(packets), mux.end()]);
}

/** What a setup came to: setup_complete, or the fatal error's code and the close code. */
async function outcome(c: TestClient): Promise<string> {
  const m = await c.until(() => c.messages.find((x) => x.type === 'setup_complete' || x.type === 'error'), 20_000, 'setup outcome');
  if (m.type === 'setup_complete') return 'ok';
  return `${m.code as string} ${(await c.waitClosed()).code}`;
}

/** Waits until every session and connection slot is free again (none leaked). */
async function sessionsFree(): Promise<void> {
  const end = Date.now() + 10_000;
  const held = async (): Promise<number> => {
    const sessions = (await server.metrics.streams.get()).values.find((v) => v.labels.kind === 'session')?.value ?? 0;
    const stats = server.admission.stats();
    return sessions + stats.sessions + stats.connections;
  };
  while ((await held()) > 0) {
    if (Date.now() > end) throw new Error(`slots still held: ${JSON.stringify(server.admission.stats())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tally(outcomes: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const o of outcomes) t[o] = (t[o] ?? 0) + 1;
  return t;
}

describe('admission through the server', () => {
  it('20 setups with an audio prompt at once get exactly 8 sessions; failures and departures release their slots', async () => {
    const prompt = oggOpusPrompt();
    const setup = { type: 'setup', session: { prompts: [{ text: 'piano', weight: 1 }], audio: prompt } };
    // One address each, so only the server-wide cap of 8 applies.
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => from(`127.0.1.${i + 1}`)));
    for (const c of clients) c.send(setup);
    expect(tally(await Promise.all(clients.map(outcome)))).toEqual({ ok: 8, 'busy 1013': 12 });
    for (const c of clients) c.close();
    await sessionsFree();

    // Bad prompts fail after their slot was reserved; clients that leave mid-setup free theirs.
    const bad = await Promise.all(Array.from({ length: 8 }, (_, i) => from(`127.0.2.${i + 1}`)));
    for (const c of bad) c.send({ type: 'setup', session: { audio: Buffer.from('OggS but not really audio at all') } });
    expect(tally(await Promise.all(bad.map(outcome)))).toEqual({ 'invalid_field 1008': 8 });
    const gone = await Promise.all(Array.from({ length: 8 }, (_, i) => from(`127.0.3.${i + 1}`)));
    for (const c of gone) {
      c.send(setup);
      c.ws.terminate();
    }
    await sessionsFree();

    const again = await Promise.all(Array.from({ length: 9 }, (_, i) => from(`127.0.4.${i + 1}`)));
    for (const c of again) c.send(setup);
    expect(tally(await Promise.all(again.map(outcome)))).toEqual({ ok: 8, 'busy 1013': 1 });
    for (const c of again) c.close();
    await sessionsFree();
  }, 90_000);

  it('idle sockets from one address do not lock out another; the one over its cap gets busy (1013)', async () => {
    const idle = await Promise.all(Array.from({ length: 70 }, () => from('127.0.0.2')));
    const refused = await Promise.all(idle.map((c) => c.until(() => c.closed ?? false, 300).catch(() => null)));
    // 8 may wait for setup; every other one was told busy and closed with 1013.
    expect(refused.filter((r) => r === null)).toHaveLength(8);
    for (const c of idle.filter((x) => x.closed)) {
      expect(c.of('error')[0]).toMatchObject({ code: 'busy', fatal: true });
      expect(c.closed!.code).toBe(1013);
    }
    const other = await from('127.0.0.3');
    other.send({ type: 'setup', session: {} });
    expect(await outcome(other)).toBe('ok');
    other.close();
    // And the idle ones are closed after the short setup timeout (3 s here).
    for (const c of idle) expect((await c.waitClosed(8000)).code).toBeOneOf([1008, 1013]);
    expect(idle.filter((c) => c.of('error')[0]?.code === 'setup_required')).toHaveLength(8);
    await sessionsFree();
  }, 30_000);

  it('set-up connections leave the pending count; an address is capped in connections and in sessions', async () => {
    // 12 listeners, one after another: more than may wait for setup at once (8), all admitted.
    const listeners: TestClient[] = [];
    for (let i = 0; i < 12; i++) {
      const c = await from('127.0.0.4');
      c.send({ type: 'setup', listen: 'radio' });
      expect(await outcome(c)).toBe('ok');
      listeners.push(c);
    }
    const more = await Promise.all(Array.from({ length: 5 }, () => from('127.0.0.4')));
    for (const c of more) c.send({ type: 'setup', session: {} });
    // 16 connections per address: the 17th is refused; 3 sessions per address: the 4th is refused.
    expect(tally(await Promise.all(more.map(outcome)))).toEqual({ ok: 3, 'busy 1013': 2 });
    for (const c of [...listeners, ...more]) c.close();
    await sessionsFree();
  }, 30_000);

  it('a burst of wrong tokens from one address is throttled, by count; another address still gets in', async () => {
    const results: string[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await from('127.0.0.5');
      c.send({ type: 'setup', token: `guess-${i}`, session: {} });
      results.push(await outcome(c));
    }
    // 5 guesses are checked; after them the address is refused without checking (4429).
    expect(results.slice(0, 5)).toEqual(Array(5).fill('unauthorized 4401'));
    expect(results.slice(5)).toEqual(Array(15).fill('rate_limited 4429'));
    // Even the right token from the throttled address waits out the backoff...
    const late = await from('127.0.0.5');
    late.send({ type: 'setup', token: 'right-secret', session: {} });
    expect(await outcome(late)).toBe('rate_limited 4429');
    // ...while another address gets its session.
    const ok = await from('127.0.0.6');
    ok.send({ type: 'setup', token: 'right-secret', session: {} });
    expect(await outcome(ok)).toBe('ok');
    ok.close();
    await sessionsFree();
  }, 30_000);
});
