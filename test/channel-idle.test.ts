// Channels nobody hears, through a real server (tiny random preset): an idle channel generates nothing
// (counted in the engine's packets, not by timing), wakes for its first WebSocket, Ogg or Icecast
// listener with the continuation of what it was playing (seq and pts go on, a full buffer at once, no
// underrun), pauses again after its last listener; `whenIdle: "run"` keeps generating.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { type Msg, TestClient } from './helpers/ws-client.ts';

const IDLE_AFTER_MS = 200;
const LEAD_MS = 1000;
const prompts = [{ text: 'calm piano', weight: 1 }];

let work: string;
let server: RiverrunServer;
/** A stand-in Icecast server: accepts the source and reads what it pushes, until it is shut. */
let icecast: net.Server;
const iceSockets = new Set<net.Socket>();
/** Packets the engine has emitted, per engine stream. */
const emitted = new Map<string, number>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-channel-idle-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  icecast = net.createServer((sock) => {
    iceSockets.add(sock);
    sock.on('close', () => iceSockets.delete(sock));
    sock.on('error', () => {});
    sock.once('data', () => sock.write('HTTP/1.1 100 Continue\r\n\r\n'));
    sock.resume();
  });
  await new Promise<void>((resolve) => icecast.listen(0, '127.0.0.1', resolve));
  const icePort = (icecast.address() as net.AddressInfo).port;
  const config = parseServeArgs(
    ['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--lead-ms', String(LEAD_MS), '--window-seconds', '4'],
    {},
  )!;
  config.channels = [
    { id: 'radio', name: 'Radio', prompts, idleAfterMs: IDLE_AFTER_MS },
    { id: 'always', name: 'Always', prompts, whenIdle: 'run' },
    { id: 'oggy', name: 'Oggy', prompts, idleAfterMs: IDLE_AFTER_MS },
    { id: 'ice', name: 'Ice', prompts, idleAfterMs: IDLE_AFTER_MS, icecast: `http://source:pw@127.0.0.1:${icePort}/ice.ogg` },
  ];
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
  server.engine.on('packets', (id, packets) => emitted.set(id, (emitted.get(id) ?? 0) + packets.length));
}, 60_000);

afterAll(async () => {
  await server?.close();
  for (const s of iceSockets) s.destroy();
  icecast?.close();
  rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

type ChannelInfo = { id: string; idle: boolean; whenIdle: string; listeners: number };

async function channel(id: string): Promise<ChannelInfo> {
  const list = (await (await fetch(`${server.url}/v1/channels`)).json()) as { channels: ChannelInfo[] };
  return list.channels.find((c) => c.id === id)!;
}

async function idleGauge(id: string): Promise<number | null> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(`^riverrun_channel_idle\\{channel="${id}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

const untilIdle = (id: string, idle: boolean, ms?: number): Promise<void> =>
  until(`${id} to be ${idle ? 'idle' : 'awake'}`, async () => (await channel(id)).idle === idle, ms);

const packetsOf = (id: string): number => emitted.get(`channel:${id}`) ?? 0;

async function listener(id: string): Promise<TestClient> {
  const c = await TestClient.connect(`ws://127.0.0.1:${server.port}/v1/ws`);
  c.send({ type: 'setup', listen: id });
  await c.next('setup_complete');
  return c;
}

/** The packets of a listener's audio messages, as [seq, pts] in arrival order. */
function packets(audio: Msg[]): [number, number][] {
  return audio.flatMap((a) =>
    (a.packets as unknown[]).map((_, i): [number, number] => [(a.seq as number) + i, (a.pts as number) + 960 * i]),
  );
}

describe('idle channels', () => {
  it('a channel nobody hears goes idle and generates nothing; whenIdle "run" keeps generating', async () => {
    await untilIdle('radio', true);
    expect(await channel('radio')).toMatchObject({ idle: true, whenIdle: 'pause', listeners: 0 });
    expect(await channel('always')).toMatchObject({ idle: false, whenIdle: 'run', listeners: 0 });
    expect(await idleGauge('radio')).toBe(1);
    expect(await idleGauge('always')).toBe(0);
    const radio = packetsOf('radio');
    const always = packetsOf('always');
    await sleep(1500);
    expect(packetsOf('radio')).toBe(radio);
    // 1.5 s of real time: the engine keeps its lead topped up, ~75 packets of new audio.
    expect(packetsOf('always') - always).toBeGreaterThanOrEqual(50);
  });

  it('its first WebSocket listener hears the continuation at once: seq and pts go on, a full buffer, no underrun', async () => {
    // Heard for a while, then left: the channel goes idle after idleAfterMs.
    const a = await listener('radio');
    await a.until(() => a.of('audio').length >= 6);
    await sleep(500);
    a.close();
    const sentToA = packets(a.of('audio'));
    const lastSent = sentToA[sentToA.length - 1]![0];
    await sleep(IDLE_AFTER_MS);
    await untilIdle('radio', true);
    const idleSince = packetsOf('radio');
    // Idle for longer than the lead: a clock that kept running would drop the whole backlog as played.
    await sleep(2 * LEAD_MS);
    expect(packetsOf('radio')).toBe(idleSince);

    const t0 = Date.now();
    const b = await listener('radio');
    await b.until(() => b.of('audio').length > 0, 1000);
    const joinMs = Date.now() - t0;
    await sleep(100);
    const atOnce = packets(b.of('audio'));
    expect(joinMs).toBeLessThan(500);
    // The backlog frozen at the pause: what was due next then, at least half the lead of buffer.
    expect(atOnce.length * 20).toBeGreaterThanOrEqual(LEAD_MS / 2);
    const first = atOnce[0]![0];
    expect(first).toBeLessThanOrEqual(lastSent); // not skipped ahead by the paused time
    expect(first).toBeGreaterThan(lastSent - (2 * LEAD_MS) / 20); // nor back to an earlier moment
    expect(await channel('radio')).toMatchObject({ idle: false, listeners: 1 });

    // Awake again, new packets follow the backlog without a gap, on time (not dropped as late).
    await b.until(() => packets(b.of('audio')).at(-1)![0] > lastSent + (LEAD_MS / 20) * 2, 5000);
    const all = packets(b.of('audio'));
    all.forEach(([seq, pts], i) => {
      expect(seq).toBe(first + i);
      expect(pts).toBe(seq * 960);
    });
    const status = await server.engine.status('channel:radio');
    expect(status.underruns).toBe(0);
    expect(status.leadMs).toBeGreaterThan(0);

    // The last listener leaves: idle again after idleAfterMs, and nothing more is generated.
    b.close();
    await untilIdle('radio', true, 2000);
    const after = packetsOf('radio');
    await sleep(1000);
    expect(packetsOf('radio')).toBe(after);
    expect(await idleGauge('radio')).toBe(1);
  });

  it('an Ogg (HTTP) listener wakes it too, and its leaving pauses it again', async () => {
    await untilIdle('oggy', true);
    const before = packetsOf('oggy');
    let bytes = 0;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(`${server.url}/v1/channels/oggy.ogg`, resolve).on('error', reject),
    );
    res.on('data', (c: Buffer) => (bytes += c.length));
    res.on('error', () => {});
    await untilIdle('oggy', false, 1000);
    await until('new audio for the Ogg listener', () => packetsOf('oggy') > before + 25);
    expect(bytes).toBeGreaterThan(1000);
    res.destroy();
    await untilIdle('oggy', true, 2000);
  });

  it('an Icecast source counts as a listener while it pushes', async () => {
    await until('the Icecast source to connect', () => iceSockets.size > 0);
    await sleep(3 * IDLE_AFTER_MS);
    expect((await channel('ice')).idle).toBe(false);
    const pushing = packetsOf('ice');
    await until('the channel to keep generating', () => packetsOf('ice') > pushing + 25);
    // The Icecast server goes away: nobody hears the channel any more.
    icecast.close();
    for (const s of iceSockets) s.destroy();
    await untilIdle('ice', true, 2000);
  });
});
