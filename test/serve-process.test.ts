// `riverrun serve` as a real process: it starts on the given model, and SIGTERM stops it cleanly:
// clients are told (error shutting_down, close 1001), live Ogg ends with an EOS page, exit code 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { TestClient } from './helpers/ws-client.ts';

const work = mkdtempSync(join(tmpdir(), 'riverrun-serve-'));
let child: ChildProcess | null = null;
afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('riverrun serve', () => {
  it('serves, then shuts down cleanly on SIGTERM', async () => {
    writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
    const bin = new URL('../bin/riverrun', import.meta.url).pathname;
    child = spawn(bin, ['serve', '--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1'], {
      env: { ...process.env, RIVERRUN_CACHE: join(work, 'cache') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    const end = Date.now() + 60_000;
    let port = 0;
    while (!port) {
      if (Date.now() > end) throw new Error(`server did not start:\n${log}`);
      port = Number(/"port":(\d+)/.exec(log)?.[1] ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }

    // bin/riverrun fixes malloc's mmap threshold (docs/reliability.md, finding 8) for the node it runs.
    expect(readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0')).toContain('MALLOC_MMAP_THRESHOLD_=131072');

    const client = await TestClient.connect(`ws://127.0.0.1:${port}/v1/ws`);
    client.send({ type: 'setup', listen: 'radio' });
    await client.next('setup_complete');
    await client.until(() => client.of('audio').length > 0);

    let ogg = Buffer.alloc(0);
    const oggEnded = new Promise<boolean>((resolve) => {
      request({ host: '127.0.0.1', port, path: '/v1/channels/radio.ogg' }, (res) => {
        res.on('data', (c: Buffer) => (ogg = Buffer.concat([ogg, c])));
        res.on('end', () => resolve(true));
        res.on('error', () => resolve(false));
      }).end();
    });
    await new Promise((r) => setTimeout(r, 1000));

    child.kill('SIGTERM');
    const error = await client.next('error');
    expect(error).toMatchObject({ code: 'shutting_down', fatal: true });
    expect((await client.waitClosed()).code).toBe(1001);
    expect(await oggEnded).toBe(true);
    // The last Ogg page carries the end-of-stream flag (header type 0x04).
    const lastPage = ogg.lastIndexOf('OggS');
    expect(ogg[lastPage + 5]! & 0x04).toBe(4);
    expect(await exited).toBe(0);
    expect(log).toContain('shutting down');
    child = null;
  }, 90_000);
});
