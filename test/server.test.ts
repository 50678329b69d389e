// One piece, over 400 lines: every server test shares one running server on the tiny preset and its client helpers.
// The server through its real interfaces: WebSocket protocol v1, live Ogg over HTTP, /metrics, health.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import type { ServerConfig } from '../src/server/config.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { type Msg, TestClient } from './helpers/ws-client.ts';

let work: string;
let server: RiverrunServer;
let ws: string;
let config: ServerConfig;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-server-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  config = parseServeArgs(
    [
      '--model',
      join(work, 'tiny'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--token',
      'op-secret:operator',
      '--token',
      'ear-secret:listener',
      '--anonymous-role',
      'session',
      '--max-sessions',
      '2',
      '--lead-ms',
      '1000',
      '--window-seconds',
      '4',
      '--allow-origin',
      'http://good.example',
    ],
    {},
  )!;
  config.limits = {
    ...config.limits,
    steeringPerSecond: 2,
    steeringBurst: 4,
    skipAfterBytes: 64 * 1024,
    closeAfterBytes: 256 * 1024,
    closeAfterMs: 3000,
  };
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
  ws = `ws://127.0.0.1:${server.port}/v1/ws`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

async function listener(token?: string): Promise<TestClient> {
  const c = await TestClient.connect(ws);
  c.send({ type: 'setup', listen: 'radio', ...(token && { token }) });
  await c.next('setup_complete');
  return c;
}

function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('setup and listening', () => {
  it('a listener gets setup_complete, the current prompts, audio with continuous seq, and status', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', listen: 'radio' });
    const done = await c.next('setup_complete');
    expect(done.channel).toBe('radio');
    expect(done.audio).toEqual({ codec: 'opus', sampleRate: 48000, channels: 2, frameMs: 20, preSkip: 312 });
    expect(done.model).toEqual({ name: 'riverrun/random-tiny', random: true });
    await c.until(() => c.of('audio').length >= 3, 10_000, 'audio');
    const audio = c.of('audio');
    for (let i = 1; i < audio.length; i++) {
      const prev = audio[i - 1]!;
      expect(audio[i]!.seq).toBe((prev.seq as number) + (prev.packets as unknown[]).length);
      expect(audio[i]!.pts).toBe((audio[i]!.seq as number) * 960);
    }
    const status = await c.next('status', 0, 3000);
    expect(status).toMatchObject({ listeners: expect.any(Number), underruns: expect.any(Number) });
    c.close();
  });

  it('a late joiner starts at once with current audio, not the history', async () => {
    const first = await listener();
    await first.until(() => first.of('audio').length > 4);
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    const late = await listener();
    const a = await late.next('audio', 0, 2000);
    expect(Date.now() - t0).toBeLessThan(1000);
    // Its first packet is near the audio playing now, far from seq 0.
    expect(a.seq as number).toBeGreaterThan(50);
    first.close();
    late.close();
  });

  it('unknown channels, bad tokens and missing tokens for sessions are refused at setup', async () => {
    const a = await TestClient.connect(ws);
    a.send({ type: 'setup', listen: 'nope' });
    expect((await a.next('error')).code).toBe('not_found');
    expect((await a.waitClosed()).code).toBe(4404);

    const b = await TestClient.connect(ws);
    b.send({ type: 'setup', listen: 'radio', token: 'wrong' });
    expect((await b.next('error')).code).toBe('unauthorized');
    expect((await b.waitClosed()).code).toBe(4401);

    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'ear-secret', session: {} });
    expect((await c.next('error')).code).toBe('forbidden');
  });

  it('a single server keeps no session after its connection: a resume is no_session, and it gives no resume handle', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: {} });
    expect((await c.next('setup_complete')).resume).toBeUndefined();
    c.close();
    const r = await TestClient.connect(ws);
    r.send({ type: 'setup', resume: { session: 'session:x', token: 'y' } });
    expect(await r.next('error')).toMatchObject({ code: 'no_session', fatal: true });
    expect((await r.waitClosed()).code).toBe(4404);
  });

  it('GET /v1/worker: what the server holds (no worker id outside a cluster)', async () => {
    const res = await get('/v1/worker');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ id: null, channels: ['radio'] });
  });

  it('a malformed setup is fatal, like every error before setup_complete', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', listen: 'radio', token: 'x'.repeat(5000) });
    expect(await c.next('error')).toMatchObject({ code: 'invalid_field', fatal: true });
    expect((await c.waitClosed(3000)).code).toBe(1008);
  });

  it('the first message must be setup', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'prompts', prompts: [{ text: 'x', weight: 1 }] });
    const e = await c.next('error');
    expect(e).toMatchObject({ code: 'setup_required', fatal: true });
    await c.waitClosed();
  });

  it('refuses WebSocket connections from origins that are not allowed', async () => {
    await expect(TestClient.connect(ws, { origin: 'http://evil.example' })).rejects.toThrow(/403/);
    const ok = await TestClient.connect(ws, { origin: 'http://good.example' });
    ok.close();
  });
});

describe('steering', () => {
  it('a personal session: prompts and config are applied and stamp the audio that follows', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: { prompts: [{ text: 'slow piano', weight: 1 }], config: { seed: 3 } } });
    const done = await c.next('setup_complete');
    expect(done.channel).toBeUndefined();
    await c.until(() => c.of('audio').length > 0);
    c.send({
      type: 'prompts',
      prompts: [
        { text: 'fast drums', weight: 1 },
        { text: 'happy', weight: 0.5 },
      ],
      transitionMs: 400,
    });
    const applied = await c.until(() => c.of('applied').find((m) => m.control === 1), 10_000, 'applied 1');
    expect(applied.prompts).toEqual([
      { text: 'fast drums', weight: 1 },
      { text: 'happy', weight: 0.5 },
    ]);
    await c.until(() => c.of('audio').find((m) => m.control === 1), 10_000, 'audio under control 1');
    c.send({ type: 'config', config: { temperature: 0.7 } });
    const applied2 = await c.until(() => c.of('applied').find((m) => m.control === 2), 10_000, 'applied 2');
    expect(applied2.config).toEqual({ temperature: 0.7, topK: 250, topP: 0, guidance: 3, seed: 0 });
    c.send({ type: 'playback', action: 'pause' });
    c.send({ type: 'ping', id: 'p1' });
    expect((await c.next('pong')).id).toBe('p1');
    expect(c.of('error')).toEqual([]);
    c.close();
  });

  it('a session can continue from an uploaded clip and tap its codes; a file that is not audio is refused', async () => {
    const { encodeWavFloat32 } = await import('../src/stream/wav.ts');
    const pcm = Float32Array.from({ length: 16000 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 220 * i) / 16000));
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: { prompts: [{ text: 'piano', weight: 1 }], audio: encodeWavFloat32(pcm, 16000), tapCodes: true } });
    await c.next('setup_complete');
    await c.until(() => c.of('audio').length > 0);
    // The token tap: one codes message per frame completed since setup, in order, 4 codes each.
    const codes = await c.until(() => c.of('codes').length >= 10 && c.of('codes'));
    const first = codes[0]!.frame as number;
    expect(codes.map((m) => m.frame)).toEqual(codes.map((_, i) => first + i));
    expect(codes.every((m) => (m.codes as number[]).length === 4)).toBe(true);
    expect(c.of('error')).toEqual([]);
    c.close();
    const bad = await TestClient.connect(ws);
    bad.send({ type: 'setup', session: { audio: Buffer.from('definitely not audio') } });
    expect(await bad.next('error')).toMatchObject({ code: 'invalid_field', fatal: true });
    await bad.waitClosed();
  });

  it('a listener may not steer the channel; an operator may, and every listener sees it', async () => {
    const ear = await listener('ear-secret');
    ear.send({ type: 'prompts', prompts: [{ text: 'metal', weight: 1 }] });
    const e = await ear.next('error');
    expect(e).toMatchObject({ code: 'forbidden', fatal: false });
    ear.send({ type: 'ping', id: 1 });
    await ear.next('pong');

    const op = await listener('op-secret');
    const before = ear.of('applied').length;
    op.send({ type: 'prompts', prompts: [{ text: 'calm strings', weight: 1 }] });
    const seen = await ear.next('applied', before);
    expect(seen.prompts).toEqual([{ text: 'calm strings', weight: 1 }]);
    expect(op.of('error')).toEqual([]);
    ear.close();
    op.close();
  });

  it('steering too fast is rate limited, and the connection stays usable', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: {} });
    await c.next('setup_complete');
    for (let i = 0; i < 8; i++) c.send({ type: 'config', config: { seed: i } });
    const e = await c.until(() => c.of('error').find((m) => m.code === 'rate_limited'));
    expect(e.fatal).toBe(false);
    c.send({ type: 'ping', id: 2 });
    await c.next('pong');
    c.close();
  });

  it('sessions beyond the cap get busy', async () => {
    const a = await TestClient.connect(ws);
    a.send({ type: 'setup', session: {} });
    await a.next('setup_complete');
    const b = await TestClient.connect(ws);
    b.send({ type: 'setup', session: {} });
    await b.next('setup_complete');
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: {} });
    expect((await c.next('error')).code).toBe('busy');
    expect((await c.waitClosed()).code).toBe(1013);
    a.close();
    b.close();
    await b.waitClosed();
  });
});

describe('bad input', () => {
  const cases: [string, Buffer | string | unknown, string][] = [
    ['a text frame', 'hello', 'bad_message'],
    ['bytes that are not msgpack', Buffer.from([0xc1, 0xc1, 0xc1]), 'bad_message'],
    ['a msgpack array', [1, 2, 3], 'bad_message'],
    ['a map without type', { prompts: [] }, 'bad_message'],
    ['an unknown type', { type: 'dance' }, 'unknown_type'],
    ['an unknown field', { type: 'ping', id: 1, extra: true }, 'unknown_field'],
    ['a wrong field type', { type: 'prompts', prompts: 'piano' }, 'invalid_field'],
    ['an out-of-range value', { type: 'config', config: { topP: 7 } }, 'invalid_field'],
    ['a NaN weight', { type: 'prompts', prompts: [{ text: 'a', weight: NaN }] }, 'invalid_field'],
    [
      'too many prompts',
      { type: 'prompts', prompts: Array.from({ length: 50 }, (_, i) => ({ text: `p${i}`, weight: 1 })) },
      'too_many_prompts',
    ],
    ['a huge prompt', { type: 'prompts', prompts: [{ text: 'x'.repeat(5000), weight: 1 }] }, 'prompt_too_long'],
    ['a second setup', { type: 'setup', listen: 'radio' }, 'already_setup'],
    ['an unknown playback action', { type: 'playback', action: 'rewind' }, 'invalid_field'],
  ];

  it('every malformed message class gets its error, and the connection keeps working', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: {} });
    await c.next('setup_complete');
    for (const [what, payload, code] of cases) {
      const n = c.of('error').length;
      if (typeof payload === 'string' || Buffer.isBuffer(payload)) c.sendRaw(payload);
      else c.send(payload);
      const e = await c.next('error', n);
      expect({ what, code: e.code, fatal: e.fatal }).toEqual({ what, code, fatal: false });
      // Wait out the steering rate limit between steering messages.
      await new Promise((r) => setTimeout(r, 550));
    }
    c.send({ type: 'ping', id: 'still-here' });
    expect((await c.next('pong')).id).toBe('still-here');
    expect(c.closed).toBeNull();
    c.close();
  }, 30_000);

  it('a frame over maxPayload closes that connection (1009) and nothing else', async () => {
    const c = await TestClient.connect(ws);
    c.sendRaw(Buffer.alloc(config.limits.maxPayload + 1));
    expect((await c.waitClosed()).code).toBe(1009);
    const d = await listener();
    d.close();
  });
});

describe('backpressure', () => {
  it('a stalled reader does not slow a fast one', async () => {
    const slow = await listener();
    const fast = await listener();
    // The slow client stops reading from its socket: the server's queue for it grows.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const start = fast.of('audio').length;
    const t0 = Date.now();
    await fast.until(() => fast.of('audio').length >= start + 10, 15_000, 'fast audio');
    const fastSeq = fast.of('audio').map((m) => m.seq as number);
    // The fast client kept its continuous stream.
    for (let i = 1; i < fastSeq.length; i++) expect(fastSeq[i]).toBeGreaterThan(fastSeq[i - 1]!);
    expect(Date.now() - t0).toBeLessThan(15_000);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    // Resumed late: it was skipped ahead or closed, never fed the whole backlog at the cost of others.
    fast.close();
    slow.close();
  }, 30_000);

  it('a client that never reads is skipped, then closed with slow_consumer', async () => {
    const errors = async (): Promise<number> => {
      const text = await server.metrics.registry.getSingleMetricAsString('riverrun_errors_total');
      return Number(/code="slow_consumer"} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await errors();
    const slow = await listener();
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // It stops answering pings: after 3 s its audio is skipped, after closeAfterMs (3 s) more it is closed.
    const end = Date.now() + 15_000;
    while ((await errors()) === before && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await errors()).toBe(before + 1);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await slow.waitClosed(10_000);
  }, 30_000);
});

describe('HTTP', () => {
  it('live Ogg decodes without errors, with audio of the expected length', async () => {
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const req = request({ host: '127.0.0.1', port: server.port, path: '/v1/channels/radio.ogg' }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toBe('audio/ogg');
        res.on('data', (c: Buffer) => chunks.push(c));
        setTimeout(() => {
          req.destroy();
          resolve(Buffer.concat(chunks));
        }, 2500);
      });
      req.on('error', (e) => (chunks.length ? resolve(Buffer.concat(chunks)) : reject(e)));
      req.end();
    });
    const decoder = new OggOpusDecoder();
    await decoder.ready;
    const out = await decoder.decodeFile(new Uint8Array(bytes));
    decoder.free();
    expect(out.errors).toEqual([]);
    expect(out.sampleRate).toBe(48000);
    // 2.5 s of listening plus the backlog it started with (about the 1 s lead).
    expect(out.samplesDecoded / 48000).toBeGreaterThan(2);
    expect(out.samplesDecoded / 48000).toBeLessThan(5);
  });

  it('/metrics needs an operator token, and carries the engine, stream and connection series', async () => {
    expect((await get('/metrics')).status).toBe(403); // anonymous: session role
    expect((await get('/metrics', { Authorization: 'Bearer ear-secret' })).status).toBe(403);
    const { status, body } = await get('/metrics', { Authorization: 'Bearer op-secret' });
    expect(status).toBe(200);
    const text = body.toString();
    for (const name of [
      'process_cpu_seconds_total',
      'riverrun_steps_total',
      'riverrun_batch_rows_bucket',
      'riverrun_step_seconds_bucket',
      'riverrun_realtime_factor',
      'riverrun_lead_seconds',
      'riverrun_underruns',
      'riverrun_streams',
      'riverrun_listeners',
      'riverrun_bytes_sent_total',
      'riverrun_errors_total',
    ]) {
      expect(text, name).toContain(name);
    }
    expect(text).toMatch(/riverrun_errors_total\{code="forbidden"\} [1-9]/);
  });

  it('health, readiness, channel list, and no path traversal', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const list = JSON.parse((await get('/v1/channels')).body.toString()) as { channels: { id: string }[] };
    expect(list.channels.map((c) => c.id)).toEqual(['radio']);
    for (const p of ['/../package.json', '/..%2fpackage.json', '/%2e%2e/%2e%2e/etc/passwd', '/a/../../package.json']) {
      const r = await get(p);
      expect(r.status, p).toBe(404);
      expect(r.body.toString()).not.toContain('riverrun');
    }
  });
});

export type { Msg };
