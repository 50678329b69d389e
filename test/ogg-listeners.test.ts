// Live Ogg listeners against a real server (tiny random preset): stalled ones (raw sockets that send the
// GET and never read) are dropped while a reading one keeps receiving, and their kernel buffers are
// given back (reset); --max-ogg-listeners answers the next one 503 busy with Retry-After.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { PROTOCOL_ERRORS } from '../src/protocol/errors.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-ogg-listeners-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function start(extra: string[]): Promise<RiverrunServer> {
  const args = ['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--lead-ms', '1000', '--window-seconds', '4'];
  return startServer(parseServeArgs([...args, ...extra], {})!, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The server's riverrun_listeners{transport="ogg"} gauge. */
async function oggListeners(server: RiverrunServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^riverrun_listeners\{transport="ogg"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** A listener that reads: counts the bytes it gets. */
function reader(url: string): Promise<{ res: http.IncomingMessage; readonly bytes: number }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('error', () => {});
        resolve({
          res,
          get bytes() {
            return bytes;
          },
        });
      })
      .on('error', reject);
  });
}

/** A listener that sends the GET and never reads (paused as soon as it is connected). */
function stalled(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.pause();
      s.write('GET /v1/channels/radio.ogg HTTP/1.1\r\nHost: test\r\n\r\n');
      resolve(s);
    });
    s.on('error', reject);
  });
}

describe('live Ogg listeners', () => {
  it('20 stalled listeners are dropped within 30 s while a reading listener keeps receiving', async () => {
    // 256 kbit/s: the stalled sockets fill the client-side kernel buffers in seconds, not minutes.
    const server = await start(['--ogg-max-behind-kb', '16', '--bitrate', '256000']);
    const sockets: net.Socket[] = [];
    try {
      const url = `${server.url}/v1/channels/radio.ogg`;
      const good = await reader(url);
      expect(good.res.statusCode).toBe(200);
      for (let i = 0; i < 20; i++) sockets.push(await stalled(server.port));
      const t0 = Date.now();
      while ((await oggListeners(server)) < 21 && Date.now() - t0 < 5000) await sleep(50);
      expect(await oggListeners(server)).toBe(21);

      let left = 21;
      while (Date.now() - t0 < 30_000) {
        left = await oggListeners(server);
        if (left === 1) break;
        await sleep(250);
      }
      const droppedAfterMs = Date.now() - t0;
      expect(left, `Ogg listeners still connected after ${droppedAfterMs} ms`).toBe(1);

      // The reading listener was not dropped and still gets audio (64 kbit/s and more: > 4 kB a second).
      const before = good.bytes;
      await sleep(1500);
      expect(good.bytes - before).toBeGreaterThan(4000);
      expect(good.res.destroyed).toBe(false);

      // The stalled sockets were reset: once they read, they see the end of their connection.
      const ends = sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.on('close', () => resolve());
            s.on('data', () => {});
            s.resume();
          }),
      );
      await Promise.race([Promise.all(ends), sleep(10_000).then(() => Promise.reject(new Error('a stalled socket is still open')))]);
      good.res.destroy();
      console.log(`20 stalled Ogg listeners dropped after ${droppedAfterMs} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await server.close();
    }
  }, 60_000);

  it('--max-ogg-listeners: the next listener gets 503 busy with Retry-After; a freed slot is taken again', async () => {
    const server = await start(['--max-ogg-listeners', '2']);
    try {
      const url = `${server.url}/v1/channels/radio.ogg`;
      const a = await reader(url);
      const b = await reader(url);
      expect([a.res.statusCode, b.res.statusCode]).toEqual([200, 200]);
      const refused = await fetch(url);
      expect(refused.status).toBe(PROTOCOL_ERRORS.busy.httpStatus);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await refused.text()).toMatch(/busy/);
      expect(await oggListeners(server)).toBe(2);

      a.res.destroy();
      const t0 = Date.now();
      while ((await oggListeners(server)) > 1 && Date.now() - t0 < 5000) await sleep(20);
      const c = await reader(url);
      expect(c.res.statusCode).toBe(200);
      b.res.destroy();
      c.res.destroy();
    } finally {
      await server.close();
    }
  }, 60_000);
});
