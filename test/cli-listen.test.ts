// `riverrun listen` and `riverrun session` as real processes against a real server (tiny random preset):
// the files they write decode cleanly and hold the audio asked for; steering lines from stdin, and
// malformed ones; Ctrl-C; the steering-line parser.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { parsePromptList, parseSteeringLine } from '../src/cli/session.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import { decodeWav } from '../src/stream/wav.ts';

const BIN = new URL('../bin/riverrun', import.meta.url).pathname;
const PRE_SKIP = 312;
let work: string;
let server: RiverrunServer;
let url: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-cli-listen-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  const config = parseServeArgs(
    ['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--lead-ms', '1000', '--window-seconds', '4'],
    {},
  )!;
  server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
  url = `ws://127.0.0.1:${server.port}`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `riverrun args`, writing `stdin` (then closing it); `during` may act on the running process. */
function riverrun(
  args: string[],
  options: { stdin?: string; during?: (p: ReturnType<typeof spawn>, stderr: () => string) => void } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 25_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (options.stdin !== undefined) p.stdin.end(options.stdin);
    options.during?.(p, () => stderr);
  });
}

async function decodeOgg(path: string): Promise<{ errors: unknown[]; sampleRate: number; samples: number; channels: number }> {
  const decoder = new OggOpusDecoder();
  await decoder.ready;
  try {
    const out = await decoder.decodeFile(new Uint8Array(readFileSync(path)));
    return { errors: out.errors, sampleRate: out.sampleRate, samples: out.samplesDecoded, channels: out.channelData.length };
  } finally {
    decoder.free();
  }
}

describe('riverrun listen', () => {
  it('records N seconds of a channel to Ogg Opus that decodes without errors', async () => {
    const out = join(work, 'x.ogg');
    const r = await riverrun(['listen', '--url', url, '--channel', 'radio', '--seconds', '2', '--out', out]);
    expect(r.stderr).toContain('wrote');
    expect(r.code).toBe(0);
    const d = await decodeOgg(out);
    expect(d.errors).toEqual([]);
    expect(d.sampleRate).toBe(48000);
    expect(d.channels).toBe(2);
    expect(Math.abs(d.samples - (2 * 48000 - PRE_SKIP))).toBeLessThanOrEqual(960);
  }, 30_000);

  it('records to WAV: decoded 48 kHz float, stereo, the pre-skip removed', async () => {
    const out = join(work, 'x.wav');
    const r = await riverrun(['listen', '--url', url, '--channel', 'radio', '--seconds', '2', '--out', out]);
    expect(r.code).toBe(0);
    const wav = decodeWav(readFileSync(out));
    expect(wav.sampleRate).toBe(48000);
    expect(wav.channels).toBe(2);
    const frames = wav.samples.length / 2;
    expect(Math.abs(frames - (2 * 48000 - PRE_SKIP))).toBeLessThanOrEqual(960);
    expect(wav.samples.every(Number.isFinite)).toBe(true);
    expect(wav.samples.some((v) => Math.abs(v) > 1e-4)).toBe(true);
  }, 30_000);

  it('finishes the file cleanly on Ctrl-C (SIGINT)', async () => {
    const out = join(work, 'int.ogg');
    const r = await riverrun(['listen', '--url', url, '--channel', 'radio', '--out', out], {
      during: (p, stderr) => {
        const poll = setInterval(() => {
          if (!stderr().includes('recording')) return;
          clearInterval(poll);
          setTimeout(() => p.kill('SIGINT'), 1500);
        }, 50);
      },
    });
    expect(r.stderr).toContain('SIGINT');
    expect(r.code).toBe(0);
    const d = await decodeOgg(out);
    expect(d.errors).toEqual([]);
    expect(d.samples).toBeGreaterThan(48000);
  }, 30_000);

  it('exits 1 without a file when the channel does not exist, and 2 on bad arguments', async () => {
    const out = join(work, 'none.ogg');
    const r = await riverrun(['listen', '--url', url, '--channel', 'nope', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not_found');
    expect(existsSync(out)).toBe(false);
    const u = await riverrun(['listen', '--url', url, '--out', out]);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/--channel ID is required[\s\S]*Usage: riverrun listen/);
    const e = await riverrun(['listen', '--channel', 'radio', '--out', join(work, 'x.mp3')]);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain('--out must end in .ogg, .opus or .wav');
  }, 30_000);
});

describe('riverrun session', () => {
  it('records a steered session; steering lines apply and malformed ones are reported and ignored', async () => {
    const out = join(work, 'y.ogg');
    const r = await riverrun(['session', '--url', url, '--prompt', 'slow piano', '--seconds', '3', '--out', out], {
      stdin: 'prompt: fast drums\nthis is not a steering line\ntemperature 9\n\n# a comment\ntopk 40\n',
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/line 2 ignored: unknown command "this"/);
    expect(r.stderr).toMatch(/line 3 ignored: temperature must be in 0\.\.5/);
    expect(r.stderr).toMatch(/applied \(control \d+\): "fast drums" @ 1/);
    expect(r.stderr).toMatch(/topK=40/);
    const d = await decodeOgg(out);
    expect(d.errors).toEqual([]);
    expect(Math.abs(d.samples - (3 * 48000 - PRE_SKIP))).toBeLessThanOrEqual(960);
  }, 30_000);
});

describe('steering lines', () => {
  it('parses prompts, weighted lists, config, transitions and playback', () => {
    expect(parseSteeringLine('prompt: fast drums')).toEqual({ kind: 'prompts', prompts: [{ text: 'fast drums', weight: 1 }] });
    expect(parseSteeringLine('  PROMPTS  lofi @ 1; rain @ 0.3 ;  ')).toEqual({
      kind: 'prompts',
      prompts: [
        { text: 'lofi', weight: 1 },
        { text: 'rain', weight: 0.3 },
      ],
    });
    expect(parseSteeringLine('prompt: a\\;b @ 2; me\\@home')).toEqual({
      kind: 'prompts',
      prompts: [
        { text: 'a;b', weight: 2 },
        { text: 'me@home', weight: 1 },
      ],
    });
    expect(parseSteeringLine('add: rain @ 0.5')).toEqual({ kind: 'add', prompt: { text: 'rain', weight: 0.5 } });
    expect(parseSteeringLine('remove: rain')).toEqual({ kind: 'remove', text: 'rain' });
    expect(parseSteeringLine('weight: rain @ 2')).toEqual({ kind: 'weight', text: 'rain', weight: 2 });
    expect(parseSteeringLine('transition 4000')).toEqual({ kind: 'transition', ms: 4000 });
    expect(parseSteeringLine('transition: 250ms')).toEqual({ kind: 'transition', ms: 250 });
    expect(parseSteeringLine('temperature 0.8')).toEqual({ kind: 'config', key: 'temperature', value: 0.8 });
    expect(parseSteeringLine('topk=40')).toEqual({ kind: 'config', key: 'topK', value: 40 });
    expect(parseSteeringLine('top-p: 0.9')).toEqual({ kind: 'config', key: 'topP', value: 0.9 });
    expect(parseSteeringLine('guidance 4')).toEqual({ kind: 'config', key: 'guidance', value: 4 });
    expect(parseSteeringLine('seed 42')).toEqual({ kind: 'config', key: 'seed', value: 42 });
    expect(parseSteeringLine('defaults')).toEqual({ kind: 'defaults' });
    expect(parseSteeringLine('pause')).toEqual({ kind: 'playback', action: 'pause' });
    expect(parseSteeringLine('Play')).toEqual({ kind: 'playback', action: 'play' });
    expect(parseSteeringLine('stop')).toEqual({ kind: 'playback', action: 'stop' });
    expect(parseSteeringLine('reset')).toEqual({ kind: 'playback', action: 'reset_context' });
    expect(parseSteeringLine('')).toBeNull();
    expect(parseSteeringLine('   # comment')).toBeNull();
  });

  it('refuses malformed lines with a message', () => {
    const bad: [string, RegExp][] = [
      ['hello world', /unknown command "hello"/],
      ['42', /cannot read/],
      ['prompt:', /no prompt given/],
      ['prompt: a @ x', /weight needs a number/],
      ['prompt: a @ 1 @ 2', /more than one @/],
      ['prompt: a @ 0', /at least one prompt needs a weight above 0/],
      ['prompt: a; a', /given twice/],
      ['prompt: a @ 101', /0\.\.100/],
      ['weight 2', /weights are relative/],
      ['weight: rain', /TEXT @ WEIGHT/],
      ['temperature hot', /needs a number/],
      ['topk 2.5', /integer/],
      ['seed -1', /0\.\.4294967295/],
      ['transition 70000', /0\.\.60000/],
      ['pause now', /takes no argument/],
    ];
    for (const [line, why] of bad) expect(() => parseSteeringLine(line), line).toThrow(why);
    expect(parsePromptList('slow piano')).toEqual([{ text: 'slow piano', weight: 1 }]);
  });
});
