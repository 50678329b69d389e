// The riverrun command through a real process: generate reproduces the reference, and the tiny preset
// runs end to end.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeWav } from '../src/stream/wav.ts';
import { FIXTURE_DIR, maxAbsDiff, ref } from './fixture.ts';

const run = promisify(execFile);
const BIN = new URL('../bin/riverrun', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'riverrun-cli-'));
const env = { ...process.env, RIVERRUN_CACHE: join(work, 'cache') };
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function riverrun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(BIN, args, { env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('riverrun generate', () => {
  it('reproduces the reference greedy guided generation on the fixture', async () => {
    const ids = Array.from(ref().int64('generate.input_ids'), Number).join(',');
    const out = join(work, 'ref.wav');
    const codesOut = join(work, 'ref.json');
    const r = await riverrun([
      'generate',
      '--model',
      FIXTURE_DIR,
      '--prompt-ids',
      ids,
      '--steps',
      '20',
      '--greedy',
      '--guidance',
      '3',
      '--out',
      out,
      '--codes-out',
      codesOut,
      '--threads',
      '1',
    ]);
    expect(r.stderr).toContain('17 frames');
    expect(r.code).toBe(0);
    const codes = (JSON.parse(readFileSync(codesOut, 'utf8')) as { codes: number[][] }).codes;
    const want = Array.from(ref().int64('generate.audio_codes'), Number);
    expect(codes).toEqual(Array.from({ length: 17 }, (_, t) => [0, 1, 2, 3].map((k) => want[k * 17 + t])));
    const wav = decodeWav(readFileSync(out));
    expect(wav.sampleRate).toBe(32000);
    expect(wav.channels).toBe(1);
    expect(maxAbsDiff(wav.samples, ref().float32('generate.audio_values'))).toBeLessThan(1e-4);
  });

  it('writes a WAV of the requested length from the tiny preset, with a text prompt', async () => {
    const dir = join(work, 'tiny');
    const made = await riverrun(['model', 'tiny', '--out', dir]);
    expect(made.code).toBe(0);
    const out = join(work, 'tiny.wav');
    const r = await riverrun(['generate', '--model', dir, '--prompt', 'slow piano', '--seconds', '1.5', '--seed', '7', '--out', out]);
    expect(r.code).toBe(0);
    const wav = decodeWav(readFileSync(out));
    expect(wav.samples.length).toBe(75 * 640);
    expect(wav.samples.every(Number.isFinite)).toBe(true);
    expect(Math.max(...wav.samples.map(Math.abs))).toBeGreaterThan(0);
  });

  it('rejects bad arguments with a usage message and exit code 2', async () => {
    const r = await riverrun(['generate', '--model', FIXTURE_DIR, '--steps', '20', '--out', join(work, 'x.wav'), '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bogus/);
    expect(r.stderr).toMatch(/Usage: riverrun generate/);
    const p = await riverrun([
      'generate',
      '--model',
      FIXTURE_DIR,
      '--prompt-ids',
      '1',
      '--steps',
      '20',
      '--precision',
      'q3',
      '--out',
      join(work, 'x.wav'),
    ]);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/--precision must be one of fp32, q8, q4/);
  });

  it('names the missing file when the model directory is wrong', async () => {
    const r = await riverrun([
      'generate',
      '--model',
      join(work, 'nowhere'),
      '--prompt-ids',
      '1',
      '--steps',
      '20',
      '--out',
      join(work, 'x.wav'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CHECKPOINT_MISSING_FILE');
    expect(r.stderr).toContain(join(work, 'nowhere'));
  });
});
