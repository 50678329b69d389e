// Access to the HTTP endpoints by role, through a real server (tiny random preset) with anonymous access
// off: the channel list and the Ogg streams need a token of any role, /metrics an operator token; tokens
// come as a Bearer header or ?token=; wrong ones back the address off as WebSocket setups do. A server
// with tokens and an anonymous role serves the list and the streams to anyone, /metrics still to
// operators only; a server without tokens serves everything.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';

let work: string;
let closed: RiverrunServer;
let open: RiverrunServer;
let bare: RiverrunServer;

const TOKENS = ['--token', 'op:operator', '--token', 'ear:listener'];

async function start(extra: string[]): Promise<RiverrunServer> {
  const config = parseServeArgs(['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', ...extra], {})!;
  config.limits = { ...config.limits, authFailuresAllowed: 3, authBackoffMs: 60_000 };
  return startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-http-access-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  closed = await start([...TOKENS, '--anonymous-role', 'none']);
  open = await start([...TOKENS, '--anonymous-role', 'listener']);
  bare = await start([]);
}, 60_000);

afterAll(async () => {
  await closed?.close();
  await open?.close();
  await bare?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** GET from a chosen local address (each one a different client for the per-address backoff). */
function get(server: RiverrunServer, path: string, headers: Record<string, string> = {}, localAddress = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers, localAddress }, (res) => {
      const reply = { status: res.statusCode!, headers: res.headers };
      // An Ogg stream does not end: the status and the first bytes are enough.
      if (path.includes('.ogg') && res.statusCode === 200) {
        res.once('data', (chunk: Buffer) => {
          resolve({ ...reply, body: chunk.subarray(0, 4).toString('latin1') });
          req.destroy();
        });
        return;
      }
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ ...reply, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP access with anonymous access off', () => {
  it('the channel list and Ogg streams need a token; any role will do, as a Bearer header or ?token=', async () => {
    const none = await get(closed, '/v1/channels');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="riverrun"');
    expect(none.body).toMatch(/a token is required/);
    expect((await get(closed, '/v1/channels/radio.ogg')).status).toBe(401);

    const list = await get(closed, '/v1/channels', { Authorization: 'Bearer ear' });
    expect(list.status).toBe(200);
    expect((JSON.parse(list.body) as { channels: { id: string }[] }).channels.map((c) => c.id)).toEqual(['radio']);
    expect((await get(closed, '/v1/channels?token=op')).status).toBe(200);
    const ogg = await get(closed, '/v1/channels/radio.ogg?token=ear');
    expect(ogg.status).toBe(200);
    expect(ogg.body).toBe('OggS');

    expect((await get(closed, '/v1/channels', { Authorization: 'Basic ZWFyOg==' })).status).toBe(401);
    // What needs no role stays open: health, readiness, the page.
    expect((await get(closed, '/healthz')).status).toBe(200);
    expect((await get(closed, '/readyz')).status).toBe(200);
    expect((await get(closed, '/')).status).toBe(200);
  });

  it('/metrics needs an operator token', async () => {
    expect((await get(closed, '/metrics')).status).toBe(401);
    const listener = await get(closed, '/metrics', { Authorization: 'Bearer ear' });
    expect(listener.status).toBe(403);
    expect(listener.body).toMatch(/operator/);
    const op = await get(closed, '/metrics', { Authorization: 'Bearer op' });
    expect(op.status).toBe(200);
    expect(op.body).toContain('riverrun_steps_total');
  });

  it('wrong tokens back the address off (429, the token unchecked); another address is not affected', async () => {
    const from = '127.0.0.3';
    for (let i = 0; i < 3; i++) expect((await get(closed, '/v1/channels?token=guess', {}, from)).status).toBe(401);
    const blocked = await get(closed, '/v1/channels?token=ear', {}, from);
    expect(blocked.status).toBe(429);
    expect(blocked.body).toMatch(/wrong tokens from your address/);
    expect((await get(closed, '/v1/channels?token=ear', {}, '127.0.0.4')).status).toBe(200);
  });
});

describe('HTTP access with an anonymous role', () => {
  it('the channel list and Ogg streams are open; /metrics is for operators', async () => {
    expect((await get(open, '/v1/channels')).status).toBe(200);
    expect((await get(open, '/v1/channels/radio.ogg')).status).toBe(200);
    expect((await get(open, '/metrics')).status).toBe(403);
    expect((await get(open, '/metrics?token=op')).status).toBe(200);
    // A token that is given is checked, even where none is needed.
    expect((await get(open, '/v1/channels?token=nope')).status).toBe(401);
  });
});

describe('HTTP access on a server without tokens', () => {
  it('serves everything to everyone, whatever Authorization header a proxy adds', async () => {
    expect((await get(bare, '/metrics')).status).toBe(200);
    expect((await get(bare, '/v1/channels', { Authorization: 'Basic ZWFyOg==' })).status).toBe(200);
    expect((await get(bare, '/v1/channels?token=anything')).status).toBe(200);
  });
});
