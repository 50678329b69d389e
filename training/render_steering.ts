// Renders the clips of the demo model's steering measurement with Riverrun's own runtime (the numbers in
// docs/demo-model.md come from these files; training/eval_steering.py computes the audio features).
//
//   node --import tsx training/render_steering.ts --model DIR --out DIR [--clips 20] [--streams 10] [--seconds 6] [--threads 2]
//        [--parts offline,midstream]
//
// 1. Offline: `--clips` seeds x every prompt of PROMPT_PAIRS through generateOffline (as `riverrun
//    generate` runs it), OUT/offline/<prompt>/<seed>.wav at 32 kHz.
// 2. Mid-stream: `--streams` streams per direction in one Engine (the server's worker): prompt A, then at
//    SWITCH_S seconds of audio setPrompts(B) with a 1 s transition; the Opus packets the server would
//    send are decoded and written as OUT/midstream/<A>_to_<B>/<n>.wav (48 kHz mono), with the sample at
//    which control 1 first applies in OUT/midstream/switch.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OpusDecoder } from 'opus-decoder';
import { ModelBundle } from '../src/models/model-bundle.ts';
import { Engine } from '../src/stream/engine.ts';
import type { StampedPacket } from '../src/stream/engine-core.ts';
import { generateOffline } from '../src/stream/offline-generate.ts';
import { writeWavFloat32 } from '../src/stream/wav.ts';

export const PROMPT_PAIRS: [string, string][] = [
  ['fast drums', 'slow piano'],
  ['bright major', 'dark minor'],
];
const MID_PAIR: [string, string] = ['fast drums', 'slow piano'];
const SWITCH_S = 8;
const MID_SECONDS = 16;

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string' },
    clips: { type: 'string', default: '20' },
    streams: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
    parts: { type: 'string', default: 'offline,midstream' },
  },
});
if (!values.model || !values.out)
  throw new Error(
    'usage: render_steering.ts --model DIR --out DIR [--clips N] [--streams N] [--seconds S] [--threads N] [--parts offline,midstream]',
  );
const parts = new Set(values.parts!.split(','));
for (const p of parts) if (p !== 'offline' && p !== 'midstream') throw new Error(`--parts: unknown part ${p} (offline, midstream)`);
const clips = Number(values.clips);
const streams = Number(values.streams);
const seconds = Number(values.seconds);
const threads = Number(values.threads);
const slug = (s: string): string => s.replace(/[^a-z0-9]+/gi, '-');

async function offline(): Promise<void> {
  const model = await ModelBundle.load(values.model!, { threads });
  const { codec, decoder } = model.config;
  const steps = Math.round((seconds * codec.samplingRate) / codec.hop) + decoder.numCodebooks - 1;
  const gen = model.checkpoint.generation;
  const started = performance.now();
  let audioSeconds = 0;
  try {
    for (const prompt of PROMPT_PAIRS.flat()) {
      const dir = join(values.out!, 'offline', slug(prompt));
      mkdirSync(dir, { recursive: true });
      for (let seed = 0; seed < clips; seed++) {
        const r = await generateOffline(model, {
          promptIds: model.tokenize(prompt),
          steps,
          guidance: gen.guidanceScale,
          sampling: { temperature: 1, topK: gen.topK, topP: 0 },
          seed,
        });
        writeWavFloat32(join(dir, `${seed}.wav`), r.audio, codec.samplingRate);
        audioSeconds += r.audio.length / codec.samplingRate;
      }
      process.stderr.write(`offline: ${prompt} done\n`);
    }
  } finally {
    await model.close();
  }
  const wall = (performance.now() - started) / 1000;
  process.stderr.write(
    `offline: ${audioSeconds.toFixed(0)} s of audio in ${wall.toFixed(0)} s (${(audioSeconds / wall).toFixed(2)}x real time, guidance ${gen.guidanceScale}, one stream)\n`,
  );
}

async function midstream(): Promise<void> {
  // A lead as long as the whole clip: the streams generate as fast as the CPU allows, not in real time.
  const engine = await Engine.start({ modelDir: values.model!, threads, engine: { leadTargetMs: (MID_SECONDS + 2) * 1000 } });
  const packets = new Map<string, StampedPacket[]>();
  engine.on('packets', (id, p) => packets.get(id)?.push(...p));
  const ids: { id: string; from: string; to: string; n: number }[] = [];
  for (const [from, to] of [MID_PAIR, [MID_PAIR[1], MID_PAIR[0]] as [string, string]]) {
    for (let n = 0; n < streams; n++) ids.push({ id: `${slug(from)}_to_${slug(to)}/${n}`, from, to, n });
  }
  const packetsFor = (s: number): number => Math.round((s * 1000) / 20);
  const wait = async (check: () => boolean): Promise<void> => {
    while (!check()) await new Promise((r) => setTimeout(r, 50));
  };
  const started = performance.now();
  try {
    for (const s of ids) {
      packets.set(s.id, []);
      await engine.createStream(s.id, { prompts: [{ text: s.from, weight: 1 }], config: { seed: s.n }, channels: 1 });
    }
    for (const s of ids) {
      await wait(() => packets.get(s.id)!.length >= packetsFor(SWITCH_S));
      await engine.setPrompts(s.id, [{ text: s.to, weight: 1 }], 1000);
    }
    await wait(() => ids.every((s) => packets.get(s.id)!.length >= packetsFor(MID_SECONDS)));
  } finally {
    await engine.close();
  }
  const wall = (performance.now() - started) / 1000;
  const switchAt: Record<string, number> = {};
  const decoder = new OpusDecoder({ channels: 1 });
  await decoder.ready;
  for (const s of ids) {
    const got = packets.get(s.id)!.slice(0, packetsFor(MID_SECONDS));
    const audio = new Float32Array(got.length * 960);
    for (const [i, p] of got.entries()) audio.set(decoder.decodeFrame(p.data).channelData[0]!, i * 960);
    const dir = join(values.out!, 'midstream', s.id.split('/')[0]!);
    mkdirSync(dir, { recursive: true });
    writeWavFloat32(join(dir, `${s.n}.wav`), audio, 48000);
    const first = got.findIndex((p) => p.control >= 1);
    switchAt[s.id] = first < 0 ? -1 : first * 960;
    await decoder.reset();
  }
  decoder.free();
  writeFileSync(
    join(values.out!, 'midstream', 'switch.json'),
    `${JSON.stringify({ sampleRate: 48000, switchSeconds: SWITCH_S, transitionMs: 1000, firstSample: switchAt }, null, 2)}\n`,
  );
  process.stderr.write(
    `midstream: ${ids.length} streams x ${MID_SECONDS} s in ${wall.toFixed(0)} s (${((ids.length * MID_SECONDS) / wall).toFixed(2)}x real time in total)\n`,
  );
}

if (parts.has('offline')) await offline();
if (parts.has('midstream')) await midstream();
