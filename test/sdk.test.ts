// The SDK (clients/sdk) against a real server on a fixed free port: listening with decoding, a session
// steered through the client, protocol errors, and reconnection after the server restarts.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backoffDelay,
  DEFAULT_RECONNECT,
  isRetryable,
  normalizeUrl,
  RiverrunClient,
  RiverrunConnectError,
  type RiverrunEvents,
} from '../clients/sdk/index.ts';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';

let work: string;
let port: number;
let server: RiverrunServer;
let url: string;
const clients: RiverrunClient[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function start(): Promise<RiverrunServer> {
  const config = parseServeArgs(
    ['--model', join(work, 'tiny'), '--port', String(port), '--host', '127.0.0.1', '--lead-ms', '1000', '--window-seconds', '4'],
    {},
  )!;
  return startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
}

function client(): RiverrunClient {
  const c = new RiverrunClient();
  clients.push(c);
  return c;
}

/** Collects every event of `type` from now on. */
function collect<K extends keyof RiverrunEvents>(c: RiverrunClient, type: K): RiverrunEvents[K][] {
  const out: RiverrunEvents[K][] = [];
  c.on(type, (e) => out.push(e));
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-sdk-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  port = await freePort();
  server = await start();
  url = `ws://127.0.0.1:${port}`;
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('helpers', () => {
  it('normalizes URLs: /v1/ws when there is no path, http → ws', () => {
    expect(normalizeUrl('ws://localhost:8080')).toBe('ws://localhost:8080/v1/ws');
    expect(normalizeUrl('ws://localhost:8080/')).toBe('ws://localhost:8080/v1/ws');
    expect(normalizeUrl('https://radio.example')).toBe('wss://radio.example/v1/ws');
    expect(normalizeUrl('ws://h:1/custom/path')).toBe('ws://h:1/custom/path');
    expect(() => normalizeUrl('localhost:8080')).toThrow(TypeError);
    expect(() => normalizeUrl('ftp://x')).toThrow(/WebSocket URL/);
  });

  it('backs off exponentially up to the cap, with jitter below the nominal delay', () => {
    const o = { ...DEFAULT_RECONNECT, initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 };
    expect([1, 2, 3, 4, 5, 9].map((a) => backoffDelay(a, o, () => 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(3, o, () => 1)).toBe(200);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, o);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(200);
    }
  });

  it('retries drops, restarts and busy servers, not refusals', () => {
    expect(isRetryable(1006, '')).toBe(true);
    expect(isRetryable(1001, 'shutting_down', 'shutting_down')).toBe(true);
    expect(isRetryable(1013, 'busy')).toBe(true);
    expect(isRetryable(1008, 'slow_consumer')).toBe(true);
    expect(isRetryable(4401, 'unauthorized', 'unauthorized')).toBe(false);
    expect(isRetryable(4403, 'forbidden')).toBe(false);
    expect(isRetryable(4404, 'not_found')).toBe(false);
    expect(isRetryable(1008, 'setup_required')).toBe(false);
  });
});

describe('listening to a channel', () => {
  it('emits setup, audio with continuous seq, and pcm frames of 960 samples with the pre-skip removed', async () => {
    const c = client();
    const audio = collect(c, 'audio');
    const pcm = collect(c, 'pcm');
    const setup = await c.connect({ url, listen: 'radio', decode: true });
    expect(setup).toMatchObject({
      type: 'setup_complete',
      channel: 'radio',
      audio: { codec: 'opus', sampleRate: 48000, channels: 2, frameMs: 20, preSkip: 312 },
    });
    expect(c.state).toBe('ready');
    expect(c.setup).toBe(setup);
    await c.waitFor('pcm', () => pcm.length >= 20, 15_000);
    for (let i = 1; i < audio.length; i++) expect(audio[i]!.seq).toBe(audio[i - 1]!.seq + audio[i - 1]!.packets.length);
    for (const a of audio) expect(a.packets.every((p) => p instanceof Uint8Array && p.length > 0)).toBe(true);
    const first = pcm[0]!;
    expect(first.seq).toBe(audio[0]!.seq);
    expect(first.samples).toBe(960 - 312);
    expect(first.start).toBe(audio[0]!.pts);
    for (let i = 1; i < pcm.length; i++) {
      const f = pcm[i]!;
      expect(f.samples).toBe(960);
      expect(f.lost).toBe(false);
      expect(f.seq).toBe(pcm[i - 1]!.seq + 1);
      expect(f.start).toBe(pcm[i - 1]!.start + pcm[i - 1]!.samples);
      expect(f.channelData).toHaveLength(2);
      expect(f.channelData.every((ch) => ch instanceof Float32Array && ch.length === 960 && ch.every(Number.isFinite))).toBe(true);
    }
    // The random tiny model makes noise, not silence.
    expect(pcm.slice(5).some((f) => f.channelData[0]!.some((v) => Math.abs(v) > 1e-4))).toBe(true);
    await c.close();
    expect(c.state).toBe('closed');
  });

  it('rejects connect() for an unknown channel, without reconnecting', async () => {
    const c = client();
    const closes: boolean[] = [];
    c.on('close', (e) => closes.push(e.willReconnect));
    const err = await c.connect({ url, listen: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RiverrunConnectError);
    expect((err as RiverrunConnectError).error?.code).toBe('not_found');
    expect((err as RiverrunConnectError).closeCode).toBe(4404);
    expect(closes).toEqual([false]);
    expect(c.state).toBe('closed');
  });

  it('rejects connect() at once when nothing listens (without waitForServer)', async () => {
    const c = client();
    const dead = await freePort();
    await expect(c.connect({ url: `ws://127.0.0.1:${dead}`, listen: 'radio' })).rejects.toThrow(RiverrunConnectError);
    expect(c.state).toBe('closed');
  });
});

describe('a personal session', () => {
  it('steers: applied with control 1, then audio under control 1; config; playback; ping', async () => {
    const c = client();
    const applied = collect(c, 'applied');
    const errors = collect(c, 'error');
    const setup = await c.connect({ url, session: { prompts: [{ text: 'slow piano', weight: 1 }], config: { seed: 3 } } });
    expect(setup.channel).toBeUndefined();
    expect(c.isSession).toBe(true);
    await c.waitFor('audio', undefined, 15_000);
    expect(
      c.setPrompts(
        [
          { text: 'fast drums', weight: 1 },
          { text: 'happy', weight: 0.5 },
        ],
        400,
      ),
    ).toBe(true);
    const a1 = await c.waitFor('applied', (m) => m.control === 1, 15_000);
    expect(a1.prompts).toEqual([
      { text: 'fast drums', weight: 1 },
      { text: 'happy', weight: 0.5 },
    ]);
    await c.waitFor('audio', (m) => m.control === 1, 15_000);
    expect(c.setConfig({ temperature: 0.7 })).toBe(true);
    const a2 = await c.waitFor('applied', (m) => m.control === 2, 15_000);
    expect(a2.config).toEqual({ temperature: 0.7, topK: 250, topP: 0, guidance: 3, seed: 0 });
    expect(c.applied).toBe(a2);
    expect(applied.length).toBeGreaterThanOrEqual(2);
    expect(c.pause()).toBe(true);
    expect(c.resetContext()).toBe(true);
    expect(c.play()).toBe(true);
    const rtt = await c.ping();
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(5000);
    expect(errors).toEqual([]);
    await c.close();
  });

  it('sends steering asked for while connecting as soon as the session is set up', async () => {
    const c = client();
    const connected = c.connect({ url, session: { prompts: [{ text: 'slow piano', weight: 1 }] } });
    expect(c.state).toBe('connecting');
    expect(c.setPrompts('early bird', 0)).toBe(false);
    await connected;
    const applied = await c.waitFor('applied', undefined, 15_000);
    expect(applied.prompts).toEqual([{ text: 'early bird', weight: 1 }]);
    await c.close();
  });

  it('reports a refused message as an error event and stays usable', async () => {
    const c = client();
    const errors = collect(c, 'error');
    await c.connect({ url, session: { prompts: [{ text: 'slow piano', weight: 1 }] } });
    const many = Array.from({ length: 100 }, (_, i) => ({ text: `prompt ${i}`, weight: 1 }));
    expect(c.setPrompts(many)).toBe(true);
    const e = await c.waitFor('error', undefined, 10_000);
    expect(e).toEqual({ code: 'too_many_prompts', message: expect.any(String), fatal: false, field: 'prompts' });
    expect(c.setConfig({ topP: 1.5 })).toBe(true);
    const e2 = await c.waitFor('error', undefined, 10_000);
    expect(e2).toMatchObject({ code: 'invalid_field', field: 'config.topP', fatal: false });
    expect(c.state).toBe('ready');
    c.setPrompts('calm ambient', 0);
    const applied = await c.waitFor('applied', (m) => m.prompts[0]?.text === 'calm ambient', 15_000);
    expect(applied.control).toBe(1);
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
    expect(errors).toHaveLength(2);
    await c.close();
  });
});

describe('reconnection', () => {
  it('after the server restarts on the same port, listeners and sessions come back; a session re-applies its prompts and pause', async () => {
    const reconnect = { initialDelayMs: 100, maxDelayMs: 400 };
    const listener = client();
    const session = client();
    await listener.connect({ url, listen: 'radio', reconnect });
    await session.connect({ url, session: { prompts: [{ text: 'slow piano', weight: 1 }] }, reconnect });
    session.setPrompts('fast drums', 0);
    session.setConfig({ temperature: 0.9, seed: 5 });
    await session.waitFor('applied', (m) => m.prompts[0]?.text === 'fast drums' && m.config.seed === 5, 15_000);
    const closes: { code: number; willReconnect: boolean; error?: string }[] = [];
    listener.on('close', (e) => closes.push({ code: e.code, willReconnect: e.willReconnect, ...(e.error && { error: e.error.code }) }));
    const reconnecting = collect(listener, 'reconnecting');
    const listenerBack = listener.waitFor('reconnect', undefined, 45_000);
    const sessionBack = session.waitFor('reconnect', undefined, 45_000);
    const firstSessionId = session.setup!.sessionId;
    const sessionApplied = session.waitFor(
      'applied',
      (m) => m.prompts[0]?.text === 'fast drums' && session.setup?.sessionId !== firstSessionId,
      45_000,
    );

    await server.close();
    await new Promise((r) => setTimeout(r, 600)); // a few failed attempts against the closed port
    expect(listener.state).not.toBe('ready');
    server = await start();

    const back = await listenerBack;
    expect(back.setup.channel).toBe('radio');
    expect(closes[0]).toEqual({ code: 1001, willReconnect: true, error: 'shutting_down' });
    expect(closes.length).toBeGreaterThanOrEqual(2); // refused attempts while the server was down
    expect(closes.every((c) => c.willReconnect)).toBe(true);
    expect(reconnecting.length).toBe(closes.length);
    const seqAfter = await listener.waitFor('audio', undefined, 15_000);
    expect(seqAfter.packets.length).toBeGreaterThan(0);

    await sessionBack;
    expect(session.setup!.sessionId).not.toBe(firstSessionId);
    const applied = await sessionApplied;
    expect(applied.prompts).toEqual([{ text: 'fast drums', weight: 1 }]);
    expect(applied.config).toMatchObject({ temperature: 0.9, seed: 5 });
    await session.waitFor('audio', undefined, 15_000);

    // A pause is re-applied too: after the next restart, no audio comes.
    session.pause();
    await new Promise((r) => setTimeout(r, 300));
    const again = session.waitFor('reconnect', undefined, 45_000);
    await server.close();
    server = await start();
    await again;
    let audioAfterPause = 0;
    session.on('audio', () => audioAfterPause++);
    await new Promise((r) => setTimeout(r, 1000)); // what was generated before the pause took effect
    audioAfterPause = 0;
    await new Promise((r) => setTimeout(r, 1500));
    expect(audioAfterPause).toBe(0);
    session.play();
    await session.waitFor('audio', undefined, 15_000);
    await Promise.all([listener.close(), session.close()]);
  }, 120_000);

  it('does not reconnect after a fatal refusal', async () => {
    const c = client();
    const reconnecting: unknown[] = [];
    c.on('reconnecting', (e) => reconnecting.push(e));
    await expect(c.connect({ url, listen: 'radio', token: 'x'.repeat(5000) })).rejects.toThrow(/invalid_field/);
    expect(reconnecting).toEqual([]);
    expect(c.state).toBe('closed');
  });
});
