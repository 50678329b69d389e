// One connection's messages through a real server: replies in message order, ids echoed by errors and
// applied, strict UTF-8, the per-connection message budget, and an empty WAV prompt.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { encodeWavFloat32 } from '../src/stream/wav.ts';
import { type Msg, TestClient } from './helpers/ws-client.ts';

let work: string;
let server: RiverrunServer;
let ws: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-order-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  const config = parseServeArgs(
    [
      '--model',
      join(work, 'tiny'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--token',
      'ear-secret:listener',
      '--anonymous-role',
      'session',
      '--lead-ms',
      '500',
      '--window-seconds',
      '4',
    ],
    {},
  )!;
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
  ws = `ws://127.0.0.1:${server.port}/v1/ws`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The replies to client messages (errors, pongs, setup_complete), in the order they came. */
function replies(c: TestClient): Msg[] {
  return c.messages.filter((m) => m.type === 'error' || m.type === 'pong' || m.type === 'setup_complete');
}

function brief(m: Msg): string {
  if (m.type === 'error') return `${m.code}${m.id !== undefined ? `#${m.id}` : ''}`;
  if (m.type === 'pong') return `pong(${m.id})`;
  return m.type;
}

describe('replies come in message order', () => {
  it('playback, ping(1), 0xc1, ping(2) from a listener: forbidden, pong(1), bad_message, pong(2)', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'ear-secret', listen: 'radio' });
    await c.next('setup_complete');
    c.send({ type: 'playback', action: 'pause' });
    c.send({ type: 'ping', id: 1 });
    c.sendRaw(Buffer.from([0xc1]));
    c.send({ type: 'ping', id: 2 });
    await c.until(() => replies(c).length >= 5, 10_000, 'four replies');
    expect(replies(c).slice(1).map(brief)).toEqual(['forbidden', 'pong(1)', 'bad_message', 'pong(2)']);
    expect(c.closed).toBeNull();
    c.close();
  });

  it('a ping sent right after setup is answered after setup_complete', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: { prompts: [{ text: 'soft piano', weight: 1 }] } });
    c.send({ type: 'ping', id: 'after-setup' });
    await c.until(() => replies(c).length >= 2, 20_000, 'two replies');
    expect(replies(c).map(brief)).toEqual(['setup_complete', 'pong(after-setup)']);
    c.close();
  }, 30_000);
});

describe('message ids', () => {
  it('an error echoes the id of the message it answers', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'ear-secret', listen: 'radio', id: 's1' });
    await c.next('setup_complete');
    c.send({ type: 'playback', action: 'pause', id: 'steer-1' });
    c.send({ type: 'config', config: { topP: 7 }, id: 'cfg-2' });
    c.send({ type: 'playback', action: 'rewind', id: 'pb-3' });
    c.send({ type: 'setup', listen: 'radio', id: 'again' });
    c.send({ type: 'dance', id: 'no-such-type' }); // a newer type's id is echoed too
    await c.until(() => c.of('error').length >= 5, 10_000, 'five errors');
    expect(c.of('error').map((e) => [e.code, e.id, e.field])).toEqual([
      ['forbidden', 'steer-1', undefined],
      ['invalid_field', 'cfg-2', 'config.topP'],
      ['invalid_field', 'pb-3', 'action'],
      ['already_setup', 'again', undefined],
      ['unknown_type', 'no-such-type', undefined],
    ]);
    c.close();
  });

  it('a fatal error at setup echoes the setup id too', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'wrong', listen: 'radio', id: 'login' });
    const e = await c.next('error');
    expect([e.code, e.id, e.fatal]).toEqual(['unauthorized', 'login', true]);
    await c.waitClosed();
  });

  it('ids that are too long or not strings are invalid_field', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'ear-secret', listen: 'radio' });
    await c.next('setup_complete');
    const bad = ['x'.repeat(65), 7, true, '', { a: 1 }];
    for (const id of bad) c.send({ type: 'playback', action: 'play', id });
    await c.until(() => c.of('error').length >= bad.length, 10_000, 'errors');
    expect(c.of('error').map((e) => [e.code, e.field, e.id])).toEqual(bad.map(() => ['invalid_field', 'id', undefined]));
    // 64 characters is fine (a listener's playback is forbidden, echoing the id).
    c.send({ type: 'playback', action: 'play', id: 'é'.repeat(64) });
    const e = await c.next('error', bad.length);
    expect([e.code, e.id]).toEqual(['forbidden', 'é'.repeat(64)]);
    c.close();
  });

  it('applied echoes the id of the prompts or config message that caused it', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: { prompts: [{ text: 'soft piano', weight: 1 }] } });
    await c.next('setup_complete', 0, 20_000);
    const first = await c.next('applied', 0, 20_000);
    expect(first.id).toBeUndefined();
    c.send({ type: 'config', config: { seed: 3 }, id: 'seed-3' });
    c.send({ type: 'prompts', prompts: [{ text: 'warm synth', weight: 1 }], id: 'synth' });
    c.send({ type: 'config', config: { seed: 4 } });
    await c.until(() => c.of('applied').length >= 4, 20_000, 'three more applied');
    expect(c.of('applied').map((a) => [a.control, a.id])).toEqual([
      [0, undefined],
      [1, 'seed-3'],
      [2, 'synth'],
      [3, undefined],
    ]);
    c.close();
  }, 30_000);
});

describe('strings must be valid UTF-8', () => {
  it('a string with invalid UTF-8 bytes is bad_message, not replaced', async () => {
    const c = await TestClient.connect(ws);
    // {type: 'ping', id: <ff fe>}
    c.sendRaw(
      Buffer.concat([
        Buffer.from([0x82, 0xa4]),
        Buffer.from('type'),
        Buffer.from([0xa4]),
        Buffer.from('ping'),
        Buffer.from([0xa2]),
        Buffer.from('id'),
        Buffer.from([0xa2, 0xff, 0xfe]),
      ]),
    );
    const e = await c.next('error');
    expect([e.code, e.fatal]).toEqual(['bad_message', true]);
    expect(c.of('pong')).toEqual([]);
  });
});

describe('the work one connection may cause', () => {
  it('a flood of messages, errors included, closes the connection with rate_limited (4429)', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', token: 'ear-secret', listen: 'radio' });
    await c.next('setup_complete');
    const other = await TestClient.connect(ws);
    other.send({ type: 'setup', token: 'ear-secret', listen: 'radio' });
    await other.next('setup_complete');
    for (let i = 0; i < 300; i++) c.sendRaw(Buffer.from([0xc1]));
    const closed = await c.waitClosed();
    expect(closed).toEqual({ code: 4429, reason: 'rate_limited' });
    const last = c.of('error').at(-1)!;
    expect([last.code, last.fatal]).toEqual(['rate_limited', true]);
    expect(c.of('error').length).toBeLessThan(300);
    // Nobody else is affected.
    other.send({ type: 'ping', id: 'fine' });
    expect((await other.next('pong')).id).toBe('fine');
    other.close();
  });

  it('messages queued behind a slow setup are bounded', async () => {
    const c = await TestClient.connect(ws);
    c.send({ type: 'setup', session: { prompts: [{ text: 'a queue of pings', weight: 1 }] } });
    for (let i = 0; i < 90; i++) c.send({ type: 'ping', id: i });
    const closed = await c.waitClosed(20_000);
    expect(closed).toEqual({ code: 4429, reason: 'rate_limited' });
  }, 30_000);
});

describe('audio prompts', () => {
  it('a WAV with an empty data chunk is invalid_field on session.audio, saying why', async () => {
    const c = await TestClient.connect(ws);
    const audio = encodeWavFloat32(new Float32Array(0), 32000, 1);
    c.send({ type: 'setup', session: { audio } });
    const e = await c.next('error', 0, 20_000);
    expect([e.code, e.field, e.fatal]).toEqual(['invalid_field', 'session.audio', true]);
    expect(e.message).toMatch(/empty/);
    expect((await c.waitClosed()).code).toBe(1008);
  }, 30_000);
});
