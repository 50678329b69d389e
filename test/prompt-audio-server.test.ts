// A session's audio prompt at an odd sample rate, through a real server: the session starts, and the
// filter design that rate needs (hundreds of ms, tens of MB) happened in the prompt-audio worker, not on
// the thread that serves the sockets (the server runs on this test's thread).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { filterTableCacheBytes } from '../src/stream/resampler.ts';
import { encodeWavFloat32 } from '../src/stream/wav.ts';
import { TestClient } from './helpers/ws-client.ts';

let work: string;
let server: RiverrunServer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-prompt-audio-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  const config = parseServeArgs(['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--anonymous-role', 'session'], {})!;
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

it('decodes odd-rate audio prompts off the serving thread', async () => {
  const clients: TestClient[] = [];
  // 100 003 Hz needs a ~3 MB table, which the resampler keeps in the cache of the thread that designed it.
  for (const rate of [100_003, 767_999]) {
    const frames = Math.round(rate * 0.02); // 20 ms: one codec frame, and under the 64 KiB frame limit
    const audio = encodeWavFloat32(
      Float32Array.from({ length: frames }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 220 * i) / rate)),
      rate,
      1,
    );
    const c = await TestClient.connect(`ws://127.0.0.1:${server.port}/v1/ws`);
    clients.push(c);
    c.send({ type: 'setup', session: { prompts: [{ text: 'soft piano', weight: 1 }], audio } });
    await c.next('setup_complete', 0, 30_000);
    await c.until(() => c.of('audio').length > 0, 30_000, 'audio');
  }
  expect(filterTableCacheBytes()).toBe(0);
  for (const c of clients) c.close();
}, 90_000);
