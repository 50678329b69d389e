// The engine's step loop driven in-process on the tiny preset: determinism, steering, transitions,
// playback semantics, re-priming, and batching equivalence.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelBundle } from '../src/models/model-bundle.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import type { WeightedPrompt } from '../src/protocol/controls.ts';
import { type AppliedEvent, EngineCore, type StampedPacket, type StepReport } from '../src/stream/engine-core.ts';
import { defaultEngineOptions, type EngineOptions } from '../src/stream/engine-options.ts';
import { PromptMix, weightOf } from '../src/stream/prompt-mix.ts';
import { RowPool } from '../src/stream/row-pool.ts';
import type { Stream } from '../src/stream/stream.ts';
import { CachedTextEncoder } from '../src/stream/text-encoder.ts';

let work: string;
let model: ModelBundle;
let text: CachedTextEncoder;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-core-'));
  writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
  model = await ModelBundle.load(join(work, 'tiny'), { cacheDir: join(work, 'cache'), threads: 1 });
  text = CachedTextEncoder.inProcess(model);
});
afterAll(async () => {
  await model.close();
  rmSync(work, { recursive: true, force: true });
});

interface Recorder {
  core: EngineCore;
  codes: Map<string, number[][]>;
  packets: Map<string, StampedPacket[]>;
  applied: Map<string, AppliedEvent[]>;
  clock: { now: number };
}

function makeCore(options: Partial<EngineOptions> = {}): Recorder {
  const codes = new Map<string, number[][]>();
  const packets = new Map<string, StampedPacket[]>();
  const applied = new Map<string, AppliedEvent[]>();
  const clock = { now: 0 };
  const push = <T>(m: Map<string, T[]>, id: string, v: T): void => {
    if (!m.has(id)) m.set(id, []);
    m.get(id)!.push(v);
  };
  const core = new EngineCore(
    model,
    text,
    { ...defaultEngineOptions(model), now: () => clock.now, ...options },
    {
      packets: (id, p) => {
        for (const x of p) push(packets, id, x);
      },
      applied: (id, e) => push(applied, id, e),
      codes: (id, frame, c) => push(codes, id, [frame, ...c]),
      error: (id, code, message) => {
        throw new Error(`${id}: ${code} ${message}`);
      },
    },
  );
  return { core, codes, packets, applied, clock };
}

/** Steps every stream `n` times, letting prompt encodings resolve between steps. Returns the step reports. */
async function run(r: Recorder, n: number, before?: (step: number) => void | Promise<void>): Promise<StepReport[]> {
  const reports: StepReport[] = [];
  for (let i = 0; i < n; i++) {
    await before?.(i);
    await flushMicrotasks();
    reports.push(await r.core.step(true));
  }
  return reports;
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

const piano: WeightedPrompt[] = [{ text: 'slow piano', weight: 1 }];
const drums: WeightedPrompt[] = [{ text: 'fast drums', weight: 1 }];

describe('determinism', () => {
  it('same seed and control log give the same tokens; another seed does not', async () => {
    const play = async (seed: number): Promise<number[][]> => {
      const r = makeCore();
      await r.core.createStream('s', { prompts: piano, config: { seed }, tapCodes: true });
      await text.encode('fast drums');
      await run(r, 60, (i) => {
        if (i === 30) r.core.setPrompts('s', drums, 200);
        if (i === 40) r.core.setConfig('s', { seed, temperature: 0.8 });
      });
      return r.codes.get('s')!;
    };
    const a = await play(5);
    const b = await play(5);
    const c = await play(6);
    expect(a.length).toBe(60 - 3);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });
});

describe('steering', () => {
  it('a prompt change takes effect once its row has seen the history, built over steps while the stream goes on; it keeps the history and stamps later audio', async () => {
    const r = makeCore({ prefillTokensPerStep: 16 });
    const ref = makeCore();
    for (const x of [r, ref]) await x.core.createStream('s', { prompts: piano, config: { seed: 3 }, tapCodes: true });
    await text.encode('fast drums');
    await run(ref, 100);
    const reports = await run(r, 100, (i) => {
      if (i === 50) r.core.setPrompts('s', drums, 0);
    });
    // The drums row runs the 50-position history 16 tokens per step (16, 32, 48, then the last 5 while the
    // stream has gone on 3 steps); the change applies at the step after, at position 54.
    expect(reports.map((x) => x.prefillTokens).slice(49, 56)).toEqual([0, 16, 16, 16, 5, 0, 0]);
    // The step's run leaves the drums row out while it is behind, takes it in once it has caught up
    // (at 53), and after the change the piano row is gone.
    expect(reports.map((x) => x.rows).slice(49, 56)).toEqual([2, 2, 2, 2, 3, 2, 2]);
    expect(reports.every((x) => x.streams === 1)).toBe(true);
    const events = r.applied.get('s')!.filter((e) => e.control > 0);
    expect(r.applied.get('s')![0]).toMatchObject({ control: 0, prompts: piano, pts: 0 });
    expect(events).toHaveLength(1);
    expect(events[0]!.control).toBe(1);
    expect(events[0]!.prompts).toEqual(drums);
    // Tokens before the change are those of the unsteered run; after it they differ.
    const before = (x: Recorder) => x.codes.get('s')!.filter((f) => f[0]! < 51);
    expect(before(r)).toEqual(before(ref));
    expect(r.codes.get('s')!.slice(-20)).not.toEqual(ref.codes.get('s')!.slice(-20));
    // The stream went on from its history: the steered run's position was never reset (no re-prime).
    expect(r.codes.get('s')!.map((f) => f[0])).toEqual(Array.from({ length: 97 }, (_, i) => i));
    // Audio is stamped with the control that produced it: 0 first, then 1, never back.
    const controls = r.packets.get('s')!.map((p) => p.control);
    expect(controls[0]).toBe(0);
    expect(controls.at(-1)).toBe(1);
    expect(controls.indexOf(1)).toBeGreaterThan(0);
    expect(controls.slice(controls.indexOf(1)).every((c) => c === 1)).toBe(true);
    // applied.pts points at the audio of the first frame generated under the change.
    const firstNew = r.packets.get('s')!.find((p) => p.control === 1)!;
    expect(Math.abs(firstNew.pts - events[0]!.pts)).toBeLessThan(960);
  });

  it('a prompt added mid-stream conditions the whole history: its window is the history run under its own text', async () => {
    const r = makeCore();
    await r.core.createStream('s', { prompts: piano, config: { seed: 5 }, tapCodes: true });
    await text.encode('fast drums');
    await run(r, 30, (i) => {
      if (i === 20) r.core.setPrompts('s', drums, 400); // still ramping at step 30: rows piano, drums, uncond
    });
    const core = r.core as unknown as { pool: RowPool; streams: Stream[] };
    const stream = core.streams[0]!;
    expect(stream.mix.prompts.map((p) => p.text)).toEqual(['slow piano', 'fast drums']);
    // Reference: the 30 fed columns through the decoder from scratch, one row per prompt under its own text.
    const prefix = stream.history.prefix();
    const T = prefix.length;
    expect(T).toBe(30);
    const { shape } = core.pool;
    const K = prefix[0]!.length;
    // The reference rows in the stream's row order (RowLayout): piano, drums, the null condition.
    const { layout } = stream;
    const ref = new RowPool(shape, 3);
    ref.setPrompt(layout.uncond, null);
    ref.setPrompt(layout.cond(0), await text.encode('slow piano'));
    ref.setPrompt(layout.cond(1), await text.encode('fast drums'));
    const ids = new BigInt64Array(3 * K * T);
    for (let row = 0; row < 3; row++)
      for (let k = 0; k < K; k++) for (let t = 0; t < T; t++) ids[(row * K + k) * T + t] = BigInt(prefix[t]![k]!);
    ref.kv.reserve(T);
    const out = await model.decode({
      rows: 3,
      tokens: T,
      ids,
      positions: BigInt64Array.from({ length: 3 * T }, (_, i) => BigInt(i % T)),
      pastLength: new BigInt64Array(3),
      textTokens: shape.textTokens,
      ...ref.views(0, 3),
    });
    ref.kv.write(out.newKv, 0, 3, T, [0, 0, 0]);
    const { heads: H, headDim: D, layers } = shape;
    const maxDiff = (a: RowPool, ra: number, b: RowPool, rb: number, layer: number): number => {
      let m = 0;
      const [Wa, Wb] = [a.kv.stride, b.kv.stride];
      for (const kind of ['keys', 'values'] as const) {
        for (let h = 0; h < H; h++) {
          const x = a.kv[kind][layer]!.subarray((ra * H + h) * Wa * D, ((ra * H + h) * Wa + T) * D);
          const y = b.kv[kind][layer]!.subarray((rb * H + h) * Wb * D, ((rb * H + h) * Wb + T) * D);
          for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
        }
      }
      return m;
    };
    for (let layer = 0; layer < layers; layer++) {
      for (let row = 0; row < 3; row++) expect(maxDiff(core.pool, row, ref, row, layer)).toBeLessThan(1e-4);
    }
    // The comparison can tell the texts apart: past the first layer, piano's and drums' windows differ
    // (the first layer's keys and values see only the tokens). An inherited window would be piano's.
    expect(maxDiff(ref, layout.cond(0), ref, layout.cond(1), 0)).toBeLessThan(1e-6);
    expect(maxDiff(ref, layout.cond(0), ref, layout.cond(1), layers - 1)).toBeGreaterThan(1e-2);
  });

  it('transitions ramp the weights linearly over transitionMs of generated audio', () => {
    const mix = new PromptMix();
    const enc = { tokens: 1, keys: [], values: [] };
    mix.retarget([{ text: 'a', weight: 1, encoding: enc }], 0, true);
    mix.retarget([{ text: 'b', weight: 1, encoding: enc }], 10, false);
    const seen: number[][] = [];
    for (let i = 0; i <= 10; i++) {
      seen.push(mix.prompts.map(weightOf));
      mix.advance();
    }
    expect(seen[0]).toEqual([1, 0]);
    expect(seen[5]).toEqual([0.5, 0.5]);
    expect(seen[9]!.map((w) => Math.round(w * 10) / 10)).toEqual([0.1, 0.9]);
    // 'a' is dropped once its ramp to 0 is done.
    expect(seen[10]).toEqual([1]);
    expect(mix.prompts.map((p) => p.text)).toEqual(['b']);
  });

  it('a transition through the engine moves the rows from one prompt to the other', async () => {
    const r = makeCore();
    await r.core.createStream('s', { prompts: piano, config: { seed: 1 } });
    await text.encode('fast drums');
    const rows: number[] = [];
    await run(r, 40, (i) => {
      if (i === 5) r.core.setPrompts('s', drums, 400); // 20 frames
      rows.push((r.core as unknown as { streams: { rows: number }[] }).streams[0]!.rows);
    });
    // piano + uncond, then piano + drums + uncond while ramping, then drums + uncond.
    expect(rows[3]).toBe(2);
    expect(rows[10]).toBe(3);
    expect(rows[39]).toBe(2);
  });
});

describe('playback', () => {
  it('pause takes no compute and resumes where it stood; stop and reset_context restart the music', async () => {
    const r = makeCore();
    await r.core.createStream('s', { prompts: piano, config: { seed: 2 }, tapCodes: true });
    await run(r, 20);
    r.core.playback('s', 'pause');
    const report = await r.core.step(true);
    expect(report.streams).toBe(0);
    expect(r.core.status('s').state).toBe('paused');
    r.core.playback('s', 'play');
    await run(r, 10);
    const frames = r.codes.get('s')!.map((f) => f[0]);
    expect(frames).toEqual(Array.from({ length: 27 }, (_, i) => i));

    // reset_context: the frame timeline continues but the history starts again (3 frames of delay
    // before the next frame completes).
    r.core.playback('s', 'reset_context');
    await run(r, 10);
    const after = r.codes
      .get('s')!
      .map((f) => f[0])
      .slice(27);
    expect(after).toEqual(Array.from({ length: 7 }, (_, i) => 27 + i));

    r.core.playback('s', 'stop');
    expect((await r.core.step(true)).streams).toBe(0);
    expect(r.core.status('s').state).toBe('stopped');
    r.core.playback('s', 'play');
    await run(r, 5);
    expect(r.codes.get('s')!.length).toBe(34 + 2);
  });

  it('after stop, play starts with an empty lead (the old audio is history, not buffer)', async () => {
    const r = makeCore({ leadTargetMs: 500 });
    await r.core.createStream('s', { prompts: piano });
    for (let i = 0; i < 200 && r.core.status('s').leadMs < 500; i++) await r.core.step();
    r.core.playback('s', 'stop');
    r.clock.now += 5000;
    r.core.playback('s', 'play');
    // Generation resumes at once and the first new packets are due now: the lead is what was just made.
    for (let i = 0; i < 200 && r.core.status('s').leadMs < 500; i++) await r.core.step();
    const lead = r.core.status('s').leadMs;
    expect(lead).toBeGreaterThanOrEqual(500);
    expect(lead).toBeLessThan(1500);
    expect(r.core.status('s').underruns).toBe(0);
  });

  it('rows are built while a stream is ahead of its lead, in steps that sample nothing, within a budget per stream', async () => {
    const r = makeCore({ leadTargetMs: 500, prefillTokensPerStep: 8 });
    for (const id of ['a', 'b']) await r.core.createStream(id, { prompts: piano, config: { seed: 1 }, tapCodes: true });
    for (let i = 0; i < 200 && Math.min(r.core.status('a').leadMs, r.core.status('b').leadMs) < 500; i++) await r.core.step();
    expect(r.core.idleMs()).toBeGreaterThan(0);
    await text.encode('fast drums');
    r.core.setPrompts('a', drums, 0);
    r.core.setPrompts('b', drums, 0);
    await flushMicrotasks();
    // Both have new rows to build: the engine wants a step now although neither stream is due.
    expect(r.core.idleMs()).toBe(0);
    const reports: StepReport[] = [];
    for (let i = 0; i < 100 && r.core.idleMs() === 0; i++) reports.push(await r.core.step());
    // Every step but the last built rows (8 row-tokens for each stream); the last applied the changes;
    // none sampled (the clock stood still).
    expect(reports.length).toBeGreaterThan(2);
    expect(reports.slice(0, -1).every((x) => x.prefillTokens > 0 && x.prefillTokens <= 16)).toBe(true);
    expect(reports[0]!.prefillTokens).toBe(16);
    expect(reports.at(-1)!.prefillTokens).toBe(0);
    expect(reports.every((x) => x.streams === 0)).toBe(true);
    // Each new row ran its stream's whole history (complete frames + the 3 of the delay pattern), once.
    const history = (id: string) => r.codes.get(id)!.length + 3;
    expect(reports.reduce((n, x) => n + x.prefillTokens, 0)).toBe(history('a') + history('b'));
    // Built: the changes have applied (the last step had nothing to build) and the streams wait for their lead.
    expect(r.applied.get('a')!.map((e) => e.control)).toEqual([0, 1]);
    expect(r.applied.get('b')!.map((e) => e.control)).toEqual([0, 1]);
    expect(r.core.idleMs()).toBeGreaterThan(0);
  });

  it('lead: a stream ahead of its target takes no compute, and an underrun is counted', async () => {
    const r = makeCore({ leadTargetMs: 500 });
    await r.core.createStream('s', { prompts: piano });
    for (let i = 0; i < 200 && r.core.status('s').leadMs < 500; i++) await r.core.step();
    expect(r.core.status('s').leadMs).toBeGreaterThanOrEqual(500);
    expect((await r.core.step()).streams).toBe(0);
    r.clock.now += 10_000; // the listener played 10 s while nothing was generated
    await r.core.step();
    expect(r.core.status('s').underruns).toBe(1);
  });
});

describe('idle streams', () => {
  it('an idle stream takes no compute, keeps its rows, and resumes with the lead it had and no underrun', async () => {
    const r = makeCore({ leadTargetMs: 500 });
    await r.core.createStream('s', { prompts: piano, tapCodes: true });
    for (let i = 0; i < 200 && r.core.status('s').leadMs < 500; i++) await r.core.step();
    const lead = r.core.status('s').leadMs;
    const frames = r.codes.get('s')!.length;
    const bytes = r.core.poolBytes;
    r.core.setIdle('s', true);
    r.clock.now += 10_000; // far past the lead: a stream still heard would have run dry
    expect((await r.core.step(true)).streams).toBe(0);
    expect(r.core.idleMs()).toBeNull();
    expect(r.codes.get('s')!.length).toBe(frames);
    expect(r.core.poolBytes).toBe(bytes);
    expect(r.core.status('s')).toMatchObject({ leadMs: lead, underruns: 0, state: 'playing' });
    r.core.setIdle('s', false);
    expect(r.core.status('s').leadMs).toBe(lead);
    r.clock.now += 400;
    await r.core.step();
    expect(r.core.status('s').underruns).toBe(0);
    // The frame timeline continues where it stood.
    expect(r.codes.get('s')!.map((f) => f[0])).toEqual(Array.from({ length: r.codes.get('s')!.length }, (_, i) => i));
  });

  it('idle and pause are independent: either one holds the stream', async () => {
    const r = makeCore();
    await r.core.createStream('s', { prompts: piano });
    await run(r, 5);
    r.core.setIdle('s', true);
    r.core.playback('s', 'pause');
    r.core.setIdle('s', false);
    expect((await r.core.step(true)).streams).toBe(0);
    r.core.setIdle('s', true);
    r.core.playback('s', 'play');
    expect((await r.core.step(true)).streams).toBe(0);
    r.core.setIdle('s', false);
    expect((await r.core.step(true)).streams).toBe(1);
  });

  it("an idle stream's rows move out of the others' decoder runs", async () => {
    const r = makeCore();
    for (const id of ['a', 'b', 'c']) await r.core.createStream(id, { prompts: piano });
    expect((await r.core.step(true)).rows).toBe(6);
    r.core.setIdle('b', true);
    expect(await r.core.step(true)).toMatchObject({ streams: 2, rows: 4 });
    r.core.setIdle('b', false);
    expect(await r.core.step(true)).toMatchObject({ streams: 3, rows: 6 });
  });
});

describe('endless generation', () => {
  it('re-primes past the window several times with a continuous frame timeline, each re-prime spread over steps', async () => {
    const r = makeCore({ windowFrames: 48, keepFrames: 20, prefillTokensPerStep: 16 });
    await r.core.createStream('s', { prompts: piano, config: { seed: 4 }, tapCodes: true });
    const reports = await run(r, 200);
    // A re-prime runs the kept 20 positions through both rows: 16 per row in a step that does not sample
    // (twice the budget: it takes the place of the stream's own run), then the last 4 in a step that does.
    const catchUps = reports.filter((x) => x.prefillTokens > 0).map((x) => [x.prefillTokens, x.streams]);
    const reprimes = catchUps.length / 2;
    expect(reprimes).toBeGreaterThanOrEqual(5);
    expect(catchUps).toEqual(
      Array.from({ length: reprimes }, () => [
        [32, 0],
        [8, 1],
      ]).flat(),
    );
    const sampled = reports.filter((x) => x.streams === 1).length;
    const frames = r.codes.get('s')!.map((f) => f[0]);
    expect(frames).toEqual(Array.from({ length: frames.length }, (_, i) => i));
    // Every sampled column completes a frame once the first K - 1 have passed.
    expect(frames.length).toBe(sampled - 3);
    const pts = r.packets.get('s')!.map((p) => p.pts);
    expect(pts).toEqual(pts.map((_, i) => i * 960));
  });
});

describe('batching', () => {
  it('streams batched in one run give the same tokens as each run alone', async () => {
    const specs = [
      { id: 'a', prompts: piano, config: { seed: 11 } },
      {
        id: 'b',
        prompts: [
          { text: 'fast drums', weight: 1 },
          { text: 'dark', weight: 0.5 },
        ],
        config: { seed: 12 },
      },
      { id: 'c', prompts: drums, config: { seed: 13, temperature: 0.7, topK: 50 } },
    ];
    const together = makeCore();
    for (const s of specs) await together.core.createStream(s.id, { ...s, tapCodes: true });
    await run(together, 40);
    for (const s of specs) {
      const alone = makeCore();
      await alone.core.createStream(s.id, { ...s, tapCodes: true });
      await run(alone, 40);
      expect(alone.codes.get(s.id)).toEqual(together.codes.get(s.id));
    }
  });
});

describe('audio prompts', () => {
  it('a stream continues from an uploaded clip: its codes come first, then new frames', async () => {
    // A 0.6 s clip (30 frames) as WAV bytes at 44.1 kHz stereo, decoded and resampled like an upload.
    const { decodeToMono } = await import('../src/stream/audio-file.ts');
    const { encodeWavFloat32 } = await import('../src/stream/wav.ts');
    const rate = 44100;
    const n = Math.round(0.6 * rate);
    const stereo = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) stereo[2 * i] = stereo[2 * i + 1] = 0.4 * Math.sin((2 * Math.PI * 330 * i) / rate);
    const clip = await decodeToMono(encodeWavFloat32(stereo, rate, 2), 32000);
    expect(clip.length).toBe(19200);
    const expected = await model.encodeAudio(clip, 1);

    const r = makeCore({ prefillTokensPerStep: 16 });
    await r.core.createStream('s', { prompts: piano, config: { seed: 8 }, tapCodes: true, audioPrompt: clip });
    const reports = await run(r, 20);
    // The clip's 30 positions go through both rows: 16 per row in a step that does not sample (twice the
    // budget), then the last 14, in a step that also samples.
    expect(reports.map((x) => [x.prefillTokens, x.streams]).slice(0, 3)).toEqual([
      [32, 0],
      [28, 1],
      [0, 1],
    ]);
    const codes = r.codes.get('s')!;
    // All 30 clip frames, in order, with the clip's codes, then the continuation.
    const frames = 30;
    expect(codes.slice(0, frames).map((f) => f.slice(1))).toEqual(
      Array.from({ length: frames }, (_, t) => [0, 1, 2, 3].map((k) => Number(expected[k * frames + t]))),
    );
    expect(codes.map((f) => f[0])).toEqual(Array.from({ length: codes.length }, (_, i) => i));
    // 19 sampled steps (20 but the first) complete 19 frames: the clip's last 3 (their late codebooks are
    // forced), then 16 new ones.
    expect(codes.length).toBe(frames + 19 - 3);
  });
});
