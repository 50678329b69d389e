// The engine through its real interface: a worker thread owning the model, packets arriving on the
// main thread as transferred buffers, decoded by a real Opus decoder.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpusDecoder } from 'opus-decoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { Engine } from '../src/stream/engine.ts';
import type { AppliedEvent, StampedPacket } from '../src/stream/engine-core.ts';
import { EngineError } from '../src/stream/engine-errors.ts';

let work: string;
let engine: Engine;
const packets = new Map<string, StampedPacket[]>();
const applied = new Map<string, AppliedEvent[]>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-engine-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  // A small window makes the stream re-prime every ~0.6 s of audio.
  engine = await Engine.start({
    modelDir: join(work, 'tiny'),
    cacheDir: join(work, 'cache'),
    threads: 1,
    engine: { windowFrames: 48, keepFrames: 20, leadTargetMs: 1000 },
  });
  engine.on('packets', (id, p) => packets.set(id, [...(packets.get(id) ?? []), ...p]));
  engine.on('applied', (id, e) => applied.set(id, [...(applied.get(id) ?? []), e]));
}, 60_000);
afterAll(async () => {
  await engine.close();
  rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

describe('engine worker', () => {
  it('reports the model', () => {
    expect(engine.model.random).toBe(true);
    expect(engine.model.sampleRate).toBe(32000);
  });

  it('streams endlessly past the context window: Opus packets decode to 960 samples, no gap, no underrun', async () => {
    await engine.createStream('endless', { prompts: [{ text: 'ambient pads', weight: 1 }], channels: 2 });
    await sleep(4000);
    const status = await engine.status('endless');
    const got = packets.get('endless')!;
    // 4 s of real time plus the lead: well past the 48-frame window several times.
    expect(got.length * 20).toBeGreaterThan(4000);
    expect(got.map((p) => p.seq)).toEqual(got.map((_, i) => i));
    expect(got.map((p) => p.pts)).toEqual(got.map((_, i) => i * 960));
    expect(status.underruns).toBe(0);
    expect(status.leadMs).toBeGreaterThan(0);
    const decoder = new OpusDecoder({ channels: 2 });
    await decoder.ready;
    let energy = 0;
    for (const p of got) {
      const out = decoder.decodeFrame(p.data);
      expect(out.samplesDecoded).toBe(960);
      expect(out.channelData).toHaveLength(2);
      for (const x of out.channelData[0]!) energy += x * x;
    }
    decoder.free();
    expect(energy).toBeGreaterThan(0);
    await engine.closeStream('endless');
  });

  it('prompt changes and re-primes at real-time pacing: each change applies, no gap, no underrun', async () => {
    await engine.createStream('changes', { prompts: [{ text: 'ambient pads', weight: 1 }] });
    const texts = ['fast drums', 'slow piano', 'dark ambient', 'happy guitar'];
    for (const text of texts) {
      await sleep(700); // several re-primes of the 48-frame window between changes
      await engine.setPrompts('changes', [{ text, weight: 1 }], 0);
    }
    await waitFor(() => (applied.get('changes') ?? []).length === texts.length + 1);
    await waitFor(() => packets.get('changes')!.some((p) => p.control === texts.length));
    const e = applied.get('changes')!;
    expect(e.map((x) => x.control)).toEqual([0, 1, 2, 3, 4]);
    expect(e.map((x) => x.prompts[0]!.text)).toEqual(['ambient pads', ...texts]);
    const got = packets.get('changes')!;
    expect(got.map((p) => p.seq)).toEqual(got.map((_, i) => i));
    expect(got.map((p) => p.pts)).toEqual(got.map((_, i) => i * 960));
    // Stamped in order: each control's audio follows the one before.
    const controls = got.map((p) => p.control);
    expect(controls).toEqual([...controls].sort((a, b) => a - b));
    expect((await engine.status('changes')).underruns).toBe(0);
    await engine.closeStream('changes');
  });

  it('steering reaches the stream: applied, then packets with the new control', async () => {
    await engine.createStream('steer', { prompts: [{ text: 'slow piano', weight: 1 }] });
    await waitFor(() => (packets.get('steer')?.length ?? 0) > 10);
    await engine.setPrompts(
      'steer',
      [
        { text: 'fast drums', weight: 1 },
        { text: 'happy', weight: 0.5 },
      ],
      500,
    );
    await waitFor(() => (packets.get('steer') ?? []).some((p) => p.control === 1));
    const e = applied.get('steer')!;
    expect(e.map((x) => x.control)).toEqual([0, 1]);
    expect(e[1]!.prompts).toHaveLength(2);
    await engine.setConfig('steer', { temperature: 0.5, seed: 9 });
    await waitFor(() => (applied.get('steer') ?? []).length === 3);
    expect(applied.get('steer')![2]!.config).toEqual({ temperature: 0.5, topK: 250, topP: 0, guidance: 3, seed: 9 });
    await engine.closeStream('steer');
  });

  it('pause stops packets; play resumes them', async () => {
    await engine.createStream('p', { prompts: [{ text: 'jazz', weight: 1 }] });
    await waitFor(() => (packets.get('p')?.length ?? 0) > 5);
    await engine.playback('p', 'pause');
    await sleep(100);
    const n = packets.get('p')!.length;
    await sleep(1500);
    expect(packets.get('p')!.length).toBe(n);
    expect((await engine.status('p')).state).toBe('paused');
    await engine.playback('p', 'play');
    await waitFor(() => packets.get('p')!.length > n);
    await engine.closeStream('p');
  });

  it('rejects requests for unknown streams without harming the engine', async () => {
    await expect(engine.setPrompts('nope', [{ text: 'x', weight: 1 }])).rejects.toBeInstanceOf(EngineError);
    expect((await engine.stats()).streams).toBe(0);
  });
});
