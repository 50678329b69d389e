// The engine outlives its worker: made to fail on purpose (an exception in a step, an abrupt exit), the
// worker is replaced and every stream goes on where it stood, through the engine's real interface.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { PACKET_SAMPLES } from '../src/protocol/constants.ts';
import { Engine, type EngineRestart } from '../src/stream/engine.ts';
import type { AppliedEvent, StampedPacket } from '../src/stream/engine-core.ts';
import { EngineError } from '../src/stream/engine-errors.ts';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-restart-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Watched {
  engine: Engine;
  packets: Map<string, { at: number; packet: StampedPacket }[]>;
  applied: Map<string, AppliedEvent[]>;
  crashes: string[];
  restarts: EngineRestart[];
  failures: string[];
}

async function start(faults = true): Promise<Watched> {
  const engine = await Engine.start({
    modelDir: join(work, 'tiny'),
    cacheDir: join(work, 'cache'),
    threads: 1,
    faults,
    engine: { windowFrames: 96, keepFrames: 40, leadTargetMs: 600 },
  });
  const w: Watched = { engine, packets: new Map(), applied: new Map(), crashes: [], restarts: [], failures: [] };
  engine.on('packets', (id, p) => {
    const list = w.packets.get(id) ?? [];
    for (const packet of p) list.push({ at: performance.now(), packet });
    w.packets.set(id, list);
  });
  engine.on('applied', (id, e) => w.applied.set(id, [...(w.applied.get(id) ?? []), e]));
  engine.on('crashed', (reason) => w.crashes.push(reason));
  engine.on('restarted', (r) => w.restarts.push(r));
  engine.on('failed', (reason) => w.failures.push(reason));
  return w;
}

const seqs = (w: Watched, id: string) => (w.packets.get(id) ?? []).map((p) => p.packet.seq);

describe('engine worker restart', () => {
  it('an exception in a step: the worker is replaced, the streams go on at the next seq with their controls', async () => {
    const w = await start();
    try {
      await w.engine.createStream('a', { prompts: [{ text: 'pads', weight: 1 }], channels: 2 });
      await w.engine.createStream('b', { prompts: [{ text: 'drums', weight: 1 }], config: { seed: 7 } });
      await w.engine.setPrompts('a', [{ text: 'strings', weight: 1 }]);
      await waitFor(() => (w.applied.get('a') ?? []).some((e) => e.control === 1), 'a prompt change');
      await waitFor(() => seqs(w, 'a').length > 40 && seqs(w, 'b').length > 40, 'packets');

      await w.engine.injectFault('step');
      await waitFor(() => w.restarts.length === 1, 'the restart');
      expect(w.crashes).toHaveLength(1);
      expect(w.crashes[0]).toMatch(/step failed: Error: fault injected/);
      expect(w.restarts[0]).toMatchObject({ streams: 2, restarts: 1 });
      expect(w.engine.restarts).toBe(1);
      const before = { a: seqs(w, 'a').length, b: seqs(w, 'b').length };
      await waitFor(() => seqs(w, 'a').length > before.a + 40 && seqs(w, 'b').length > before.b + 40, 'packets after the restart');

      for (const id of ['a', 'b']) {
        // Every packet once, in order, pts following seq: the listener's timeline has no hole.
        expect(seqs(w, id)).toEqual(seqs(w, id).map((_, i) => i));
        expect(w.packets.get(id)!.every((p) => p.packet.pts === p.packet.seq * PACKET_SAMPLES)).toBe(true);
      }
      // The controls in effect carried over: no new announcement, and the next change is control 2.
      expect((w.applied.get('a') ?? []).map((e) => e.control)).toEqual([0, 1]);
      await w.engine.setPrompts('a', [{ text: 'choir', weight: 1 }]);
      await waitFor(() => (w.applied.get('a') ?? []).length === 3, 'a change after the restart');
      expect(w.applied.get('a')![2]).toMatchObject({ control: 2, prompts: [{ text: 'choir', weight: 1 }] });
      expect((await w.engine.status('b')).state).toBe('playing');
    } finally {
      await w.engine.close();
    }
  }, 90_000);

  it('an abrupt exit with requests in flight and made meanwhile: each is answered once the streams are back', async () => {
    const w = await start();
    try {
      await w.engine.createStream('a', { prompts: [{ text: 'pads', weight: 1 }] });
      await waitFor(() => seqs(w, 'a').length > 20, 'packets');
      void w.engine.injectFault('exit');
      // Sent while the worker dies or a new one loads: they wait for it.
      const change = w.engine.setPrompts('a', [{ text: 'bells', weight: 1 }]);
      const created = w.engine.createStream('late', { prompts: [{ text: 'bass', weight: 1 }] });
      const paused = w.engine.playback('a', 'pause');
      await waitFor(() => w.crashes.length === 1, 'the death');
      expect(w.engine.restarting).toBe(true);
      const held = [
        w.engine.setConfig('a', { temperature: 0.7 }),
        w.engine.createStream('later', { prompts: [{ text: 'bass', weight: 1 }] }),
      ];
      await Promise.all([change, created, paused, ...held]);
      expect(w.restarts).toHaveLength(1);
      expect((await w.engine.status('a')).state).toBe('paused');
      // A paused stream builds no rows: the new prompt applies once it plays.
      await w.engine.playback('a', 'play');
      // Both changes apply, in order: the one in flight when the worker died, the one made meanwhile.
      await waitFor(() => (w.applied.get('a') ?? []).length === 3, 'the changes');
      expect(w.applied.get('a')![1]).toMatchObject({ control: 1, prompts: [{ text: 'bells', weight: 1 }] });
      expect(w.applied.get('a')![2]).toMatchObject({ control: 2, config: { temperature: 0.7 } });
      await waitFor(() => seqs(w, 'late').length > 10 && seqs(w, 'later').length > 10, 'the streams created during the restart');
      expect(seqs(w, 'a')).toEqual(seqs(w, 'a').map((_, i) => i));
    } finally {
      await w.engine.close();
    }
  }, 90_000);

  it('a worker that keeps dying stops the engine: every request then fails with ENGINE_STOPPED', async () => {
    const w = await start();
    try {
      await w.engine.createStream('a', { prompts: [{ text: 'pads', weight: 1 }] });
      for (let i = 0; i < 4; i++) {
        await w.engine.injectFault('step').catch(() => {});
        await waitFor(() => w.crashes.length === i + 1, `death ${i + 1}`);
        if (i < 3) await waitFor(() => w.restarts.length === i + 1, `restart ${i + 1}`);
      }
      await waitFor(() => w.failures.length === 1, 'the engine to give up');
      expect(w.failures[0]).toMatch(/died 4 times within 60 s/);
      await expect(w.engine.status('a')).rejects.toThrow(EngineError);
      await expect(w.engine.setPrompts('a', [{ text: 'x', weight: 1 }])).rejects.toMatchObject({ code: 'ENGINE_STOPPED' });
    } finally {
      await w.engine.close();
    }
  }, 90_000);

  it('refuses fault requests unless the engine was started to take them', async () => {
    const w = await start(false);
    try {
      await expect(w.engine.injectFault('step')).rejects.toThrow(/fault requests are off/);
    } finally {
      await w.engine.close();
    }
  }, 60_000);
});
