// RFC 7845 conformance of the Ogg Opus we write, checked by opusinfo (Debian opus-tools, installed by
// .ci/run): a file recorded by `riverrun listen`, the live HTTP Ogg stream ended by the server's
// shutdown, and the muxer's own end of stream for every way a stream can end. Any WARNING or ERROR fails.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { startServer } from '../src/server/server.ts';
import { OggOpusMuxer } from '../src/stream/ogg-muxer.ts';
import { OPUS_PRE_SKIP, OpusPacketizer } from '../src/stream/opus-packetizer.ts';

const BIN = new URL('../bin/riverrun', import.meta.url).pathname;
/** opus-tools' opusinfo (env OPUSINFO for another path). */
const OPUSINFO = process.env.OPUSINFO ?? 'opusinfo';
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-opusinfo-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Runs opusinfo on `path`; fails on any line with WARNING or ERROR, printing its whole output. */
function expectOpusinfoClean(path: string): string {
  const r = spawnSync(OPUSINFO, [path], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run opusinfo (install opus-tools; .ci/run does): ${r.error.message}`);
  const output = `${r.stdout}${r.stderr}`;
  const bad = output.split('\n').filter((line) => /WARNING|ERROR/.test(line));
  if (bad.length > 0 || r.status !== 0) throw new Error(`opusinfo ${path} (exit ${r.status}):\n${output}`);
  expect(output).toContain('Playback length');
  return output;
}

function serveArgs(): string[] {
  return ['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--lead-ms', '1000', '--window-seconds', '4'];
}

describe('opusinfo', () => {
  it('a file recorded by `riverrun listen` is clean', async () => {
    const server = await startServer(parseServeArgs(serveArgs(), {})!, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
    try {
      const out = join(work, 'listen.ogg');
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const p = spawn(BIN, ['listen', '--url', `ws://127.0.0.1:${server.port}`, '--channel', 'radio', '--seconds', '2', '--out', out]);
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), 25_000);
        p.on('error', reject);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        });
      });
      expect(r.code, r.stderr).toBe(0);
      const info = expectOpusinfoClean(out);
      // 2 s of packets, less the pre-skip.
      expect(info).toMatch(/Playback length: 0m:01\.99\ds/);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('the live HTTP Ogg stream, ended by the server shutting down, is clean', async () => {
    const server = await startServer(parseServeArgs(serveArgs(), {})!, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
    const body = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      let closing = false;
      http
        .get(`${server.url}/v1/channels/radio.ogg`, (res) => {
          expect(res.statusCode).toBe(200);
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            bytes += c.length;
            // A second or so of audio (64 kbit/s: ~8 kB/s), then the server stops.
            if (bytes > 12_000 && !closing) {
              closing = true;
              void server.close();
            }
          });
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    await server.close();
    const path = join(work, 'live.ogg');
    writeFileSync(path, body);
    expectOpusinfoClean(path);
  }, 60_000);

  it("the muxer's end of stream is clean whatever is pending at end(), on a page boundary or not", () => {
    const packetizer = new OpusPacketizer({ channels: 1, bitrate: 64000 });
    const tone = Float32Array.from({ length: 40 * 960 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 437 * i) / 48000));
    const packets = packetizer.push(tone).map((p) => ({ data: p.data }));
    expect(packets.length).toBe(40);
    // 40 and 35: whole pages, nothing pending at end(); 37: a partial page; with flush() before end().
    for (const [n, flush] of [
      [40, false],
      [35, false],
      [37, false],
      [37, true],
      [1, false],
    ] as const) {
      const mux = new OggOpusMuxer({ channels: 1, preSkip: OPUS_PRE_SKIP });
      const parts = [mux.headers()];
      for (let i = 0; i < n; i += 7) parts.push(mux.push(packets.slice(i, Math.min(n, i + 7))));
      if (flush) parts.push(mux.flush());
      parts.push(mux.end());
      const path = join(work, `mux-${n}-${flush}.ogg`);
      writeFileSync(path, Buffer.concat(parts));
      expectOpusinfoClean(path);
    }
  });
});
