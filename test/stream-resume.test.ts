// A stream created again from what the main thread kept of it (StreamRecord.respawn), in a second engine
// core as a restarted worker would: its packets go on at the next seq, and a listener's decoder, fed the
// old packets then the new ones, hears the same music across the seam.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpusDecoder } from 'opus-decoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MODEL_DIR } from '../src/models/default-model.ts';
import { ModelBundle } from '../src/models/model-bundle.ts';
import { PACKET_SAMPLES, SAMPLE_RATE } from '../src/protocol/constants.ts';
import { type AppliedEvent, EngineCore, type StampedPacket, type StreamSpec } from '../src/stream/engine-core.ts';
import { defaultEngineOptions } from '../src/stream/engine-options.ts';
import { StreamRecord } from '../src/stream/stream-record.ts';
import { CachedTextEncoder } from '../src/stream/text-encoder.ts';

let work: string;
let model: ModelBundle;
let text: CachedTextEncoder;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'riverrun-resume-'));
  model = await ModelBundle.load(DEMO_MODEL_DIR, { cacheDir: join(work, 'cache'), threads: 1 });
  text = CachedTextEncoder.inProcess(model);
}, 60_000);
afterAll(async () => {
  await model.close();
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  core: EngineCore;
  packets: StampedPacket[];
  applied: AppliedEvent[];
}

/** A core as one engine worker holds it; what it reports also goes to `record` (as engine.ts does). */
function makeCore(record?: StreamRecord): Run {
  const run: Run = { core: null!, packets: [], applied: [] };
  run.core = new EngineCore(
    model,
    text,
    { ...defaultEngineOptions(model), now: () => 0 },
    {
      packets: (_id, p, leadMs) => {
        run.packets.push(...p);
        record?.onPackets(p, leadMs, 0);
      },
      applied: (_id, e) => {
        run.applied.push(e);
        record?.onApplied(e);
      },
      codes: () => {},
      history: (_id, first, codes) => record?.onHistory(first, codes),
      error: (id, code, message) => {
        throw new Error(`${id}: ${code} ${message}`);
      },
    },
  );
  return run;
}

async function steps(run: Run, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
    await run.core.step(true);
  }
}

async function decode(packets: StampedPacket[]): Promise<Float32Array> {
  const decoder = new OpusDecoder({ channels: 2 });
  await decoder.ready;
  const out = new Float32Array(packets.length * PACKET_SAMPLES);
  for (const [i, p] of packets.entries()) out.set(decoder.decodeFrame(p.data).channelData[0]!, i * PACKET_SAMPLES);
  decoder.free();
  return out;
}

function snrDb(ref: Float32Array, got: Float32Array, from: number, to: number): number {
  let signal = 0;
  let error = 0;
  for (let i = from; i < to; i++) {
    signal += ref[i]! ** 2;
    error += (ref[i]! - got[i]!) ** 2;
  }
  return 10 * Math.log10(signal / error);
}

const spec: StreamSpec = { prompts: [{ text: 'calm piano', weight: 1 }], config: { seed: 3 }, channels: 2 };
const frameRate = () => model.config.codec.samplingRate / model.config.codec.hop;

describe('resuming a stream in a new engine', () => {
  it('goes on at the next seq and pts, and the listener hears the same music across the seam', async () => {
    const record = new StreamRecord('a', spec, 200, frameRate() / SAMPLE_RATE);
    const a = makeCore(record);
    await a.core.createStream('a', spec);
    await steps(a, 150);
    const { spec: again, controls } = record.respawn(0);
    expect(controls).toEqual([]);
    const resume = again.resume!;
    expect(resume.nextSeq).toBe(a.packets.length);
    expect(resume.frames.length).toBeGreaterThan(100);
    // The record holds every frame whose audio went out, and the lookahead beyond it.
    expect(resume.firstFrame + resume.frames.length).toBeGreaterThan(resume.nextSeq);
    await steps(a, 60); // the stream that never stopped: the reference

    const b = makeCore();
    await b.core.createStream('a', again);
    // The audio of the frames it was given goes out while its rows are built again from them.
    await steps(b, 1);
    expect(b.packets.length).toBeGreaterThan(0);
    await steps(b, 59);
    expect(b.applied).toEqual([]); // its listeners know the controls in effect
    expect(b.packets.length).toBeGreaterThan(40);
    expect(b.packets.map((p) => p.seq)).toEqual(b.packets.map((_, i) => resume.nextSeq + i));
    expect(b.packets.every((p) => p.pts === p.seq * PACKET_SAMPLES)).toBe(true);

    const reference = await decode(a.packets);
    const spliced = await decode([...a.packets.slice(0, resume.nextSeq), ...b.packets]);
    const seam = resume.nextSeq * PACKET_SAMPLES;
    // The frames both streams decoded: the same music (measured 27-33 dB per packet; 8 dB with the
    // encoder primed by one packet only, see resume.ts).
    expect(snrDb(reference, spliced, seam, seam + 8 * PACKET_SAMPLES)).toBeGreaterThan(20);
    expect(snrDb(reference, spliced, seam - 10 * PACKET_SAMPLES, seam)).toBe(Number.POSITIVE_INFINITY);
  }, 60_000);

  it('keeps its control numbering and re-sends the steering not applied yet, which then applies', async () => {
    const record = new StreamRecord('a', spec, 200, frameRate() / SAMPLE_RATE);
    const a = makeCore(record);
    await a.core.createStream('a', spec);
    await steps(a, 30);
    record.steered({ tag: 1, kind: 'prompts', prompts: [{ text: 'drums', weight: 1 }], transitionMs: 0 });
    a.core.setPrompts('a', [{ text: 'drums', weight: 1 }], 0, 1);
    await steps(a, 40);
    expect(a.applied.at(-1)).toMatchObject({ control: 1, tag: 1 });
    // One change applied, one sent when the worker dies.
    record.steered({ tag: 2, kind: 'config', config: { temperature: 0.5, seed: 3 } });
    record.played('pause');
    const { spec: again, controls } = record.respawn(0);
    expect(again.prompts).toEqual([{ text: 'drums', weight: 1 }]);
    expect(again.resume!.control).toBe(1);
    expect(again.state).toBe('paused');
    expect(controls).toEqual([{ tag: 2, kind: 'config', config: { temperature: 0.5, seed: 3 } }]);

    const b = makeCore();
    await b.core.createStream('a', again);
    b.core.setConfig('a', { temperature: 0.5, seed: 3 }, 2);
    await steps(b, 5);
    expect(b.packets).toEqual([]); // paused
    expect(b.core.status('a').state).toBe('paused');
    b.core.playback('a', 'play');
    await steps(b, 30);
    expect(b.applied).toMatchObject([{ control: 2, tag: 2, config: { temperature: 0.5 } }]);
    expect(b.packets[0]!.seq).toBe(again.resume!.nextSeq);
  }, 60_000);

  it('a stream that had sent nothing starts afresh; one whose history was reset starts a new one at the next seq', async () => {
    const fresh = new StreamRecord('a', spec, 200, frameRate() / SAMPLE_RATE);
    expect(fresh.respawn(0).spec.resume).toBeUndefined();

    const record = new StreamRecord('a', spec, 200, frameRate() / SAMPLE_RATE);
    const a = makeCore(record);
    await a.core.createStream('a', spec);
    await steps(a, 60);
    record.played('reset_context');
    const again = record.respawn(0).spec;
    expect(again.resume!.frames).toEqual([]);
    const b = makeCore();
    await b.core.createStream('a', again);
    await steps(b, 40);
    expect(b.packets[0]!.seq).toBe(again.resume!.nextSeq);
    expect(b.packets.map((p) => p.seq)).toEqual(b.packets.map((_, i) => again.resume!.nextSeq + i));
  }, 60_000);
});
