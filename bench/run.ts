// `npm run bench`: throughput, latency, codec cost and memory of the streaming engine, for the tiny
// preset, the embedded demo model and a random checkpoint of musicgen-small's shape (fp32 and q4). Prints
// tables and writes JSON (bench/results.json, or --out FILE). `--quick` leaves musicgen-small out;
// `--only throughput,latency,prompt-change,window,quality,codec,restart,churn` runs some parts (written only with --out).
//
// Throughput drives the engine's step loop in-process with every stream stepping each round (capacity,
// not pacing); latency and event-loop delay go through the real worker Engine as the server uses it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { DEMO_MODEL_DIR } from '../src/models/default-model.ts';
import type { Precision } from '../src/models/graphs/linear.ts';
import { linear } from '../src/models/graphs/linear.ts';
import { KvWindow } from '../src/models/kv-window.ts';
import { ModelBundle } from '../src/models/model-bundle.ts';
import { GraphBuilder } from '../src/models/onnx/graph-builder.ts';
import type { Preset } from '../src/models/presets/dims.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { CodecStream, DEFAULT_CODEC_STREAM } from '../src/stream/codec-stream.ts';
import { Engine } from '../src/stream/engine.ts';
import { EngineCore, type StepReport } from '../src/stream/engine-core.ts';
import { defaultEngineOptions, keepFramesFor } from '../src/stream/engine-options.ts';
import { generateOffline } from '../src/stream/offline-generate.ts';
import { CachedTextEncoder } from '../src/stream/text-encoder.ts';

const PARTS = ['throughput', 'steady', 'latency', 'prompt-change', 'window', 'quality', 'codec', 'restart', 'churn'] as const;
const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' } } });
const only = args.only?.split(',') ?? [...PARTS];
for (const p of only) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only: unknown part ${p} (${PARTS.join(', ')})`);
const work = mkdtempSync(join(tmpdir(), 'riverrun-bench-'));
const cacheDir = join(work, 'cache');
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
};
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const FRAME_RATE = 50;
const PROMPTS = ['slow piano', 'fast drums', 'dark ambient', 'happy guitar', 'lofi beat', 'techno bass', 'jazz', 'calm strings'];

/** A random preset, the embedded demo model (the default of `npm start`), or the musicgen-tiny fixture. */
type ModelName = Preset | 'demo' | 'fixture';
interface Variant {
  preset: ModelName;
  precision: Precision;
}
const variants: Variant[] = [
  { preset: 'tiny', precision: 'fp32' },
  { preset: 'demo', precision: 'fp32' },
];
if (!args.quick) variants.push({ preset: 'small', precision: 'q4' }, { preset: 'small', precision: 'fp32' });

const dirs = new Map<Preset, string>();
function checkpoint(preset: ModelName): string {
  if (preset === 'demo') return DEMO_MODEL_DIR;
  if (preset === 'fixture') return fileURLToPath(new URL('../../shared/fixtures/musicgen-tiny/', import.meta.url));
  let dir = dirs.get(preset);
  if (!dir) {
    dir = join(work, preset);
    const t = performance.now();
    writeRandomCheckpoint(dir, preset, { seed: 0 });
    log(`wrote random ${preset} checkpoint in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    dirs.set(preset, dir);
  }
  return dir;
}

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const all = [header, ...rows.map((r) => r.map(String))];
  const width = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  console.log(`\n${title}`);
  for (const [i, r] of all.entries()) {
    console.log(r.map((c, j) => c.padStart(width[j]!)).join('  '));
    if (i === 0) console.log(width.map((w) => '-'.repeat(w)).join('  '));
  }
}

// ---- throughput -------------------------------------------------------------------------------
async function throughput(v: Variant): Promise<unknown> {
  const t = performance.now();
  const model = await ModelBundle.load(checkpoint(v.preset), { precision: v.precision, cacheDir });
  const loadS = (performance.now() - t) / 1000;
  const text = CachedTextEncoder.inProcess(model);
  const rows: Record<string, number>[] = [];
  const counts = v.preset === 'tiny' ? [1, 2, 4, 8, 16, 32] : v.preset === 'demo' ? [1, 2, 4, 8, 16] : [1, 2, 4, 8];
  for (const n of counts) {
    const options = { ...defaultEngineOptions(model), windowFrames: 500, keepFrames: 200 };
    const core = new EngineCore(model, text, options, { packets: () => {}, applied: () => {}, codes: () => {}, error: () => {} });
    for (let i = 0; i < n; i++)
      await core.createStream(`s${i}`, { prompts: [{ text: PROMPTS[i % PROMPTS.length]!, weight: 1 }], config: { seed: i } });
    for (let i = 0; i < 5; i++) await core.step(true); // warm-up
    // Enough steps that codec chunks (every 25 frames, after 29) are part of the measurement.
    const steps = v.preset === 'small' ? 40 : 150;
    let decoder = 0;
    let codec = 0;
    let total = 0;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const r = await core.step(true);
      decoder += r.decoderMs;
      codec += r.codecMs;
      total += r.totalMs;
    }
    const wall = (performance.now() - t0) / 1000;
    const fps = steps / wall;
    rows.push({
      streams: n,
      rows: n * 2,
      framesPerSecPerStream: fps,
      rtfPerStream: fps / FRAME_RATE,
      stepMs: (wall * 1000) / steps,
      decoderShare: decoder / total,
      codecShare: codec / total,
      outsideOrtShare: (total - decoder - codec) / total,
      poolMiBPerStream: core.poolBytes / n / 2 ** 20,
    });
    log(`${v.preset} ${v.precision} x${n}: ${fps.toFixed(1)} frames/s per stream`);
  }
  await model.close();
  const realtime = rows.filter((r) => r.rtfPerStream! >= 1).map((r) => r.streams!);
  table(
    `Throughput: ${v.preset} ${v.precision}, guidance 3 (2 rows per stream), window 500 frames`,
    ['streams', 'frames/s/stream', 'RTF/stream', 'step ms', 'decoder %', 'codec %', 'outside ORT %', 'pool MiB/stream'],
    rows.map((r) => [
      r.streams!,
      r.framesPerSecPerStream!.toFixed(1),
      r.rtfPerStream!.toFixed(2),
      r.stepMs!.toFixed(2),
      (100 * r.decoderShare!).toFixed(1),
      (100 * r.codecShare!).toFixed(1),
      (100 * r.outsideOrtShare!).toFixed(1),
      r.poolMiBPerStream!.toFixed(1),
    ]),
  );
  const maxRealtime = realtime.length ? Math.max(...realtime) : 0;
  console.log(`largest measured count that stays real time: ${maxRealtime}`);
  return { loadSeconds: loadS, rows, maxRealtimeStreams: maxRealtime };
}

// ---- steady state: a stream deep into its window, re-primes included ------------------------------
/**
 * Streams that have run through their window once (the history filled it and re-primed), measured over
 * one whole cycle from there (keepFrames to windowFrames, the next re-prime and its catch-up included):
 * the frames/s a long-running stream gets, codec included.
 */
async function steady(v: Variant, streams: number, windowFrames: number): Promise<Record<string, number>> {
  const model = await ModelBundle.load(checkpoint(v.preset), { precision: v.precision, cacheDir });
  const text = CachedTextEncoder.inProcess(model);
  const keepFrames = keepFramesFor(windowFrames);
  const options = { ...defaultEngineOptions(model), windowFrames, keepFrames };
  const core = new EngineCore(model, text, options, { packets: () => {}, applied: () => {}, codes: () => {}, error: () => {} });
  for (let i = 0; i < streams; i++)
    await core.createStream(`s${i}`, { prompts: [{ text: PROMPTS[i % PROMPTS.length]!, weight: 1 }], config: { seed: i } });
  // Into the window and through its first re-prime (and that re-prime's catch-up).
  let sampled = 0;
  while (sampled < windowFrames + 60) if ((await core.step(true)).streams > 0) sampled++;
  const cycle = windowFrames - keepFrames;
  let frames = 0;
  let steps = 0;
  const t0 = performance.now();
  while (frames < cycle * streams) {
    frames += (await core.step(true)).streams;
    steps++;
  }
  const wall = (performance.now() - t0) / 1000;
  await model.close();
  const fps = frames / streams / wall;
  log(`${v.preset} ${v.precision} x${streams}, window ${windowFrames}: ${fps.toFixed(1)} frames/s per stream over a cycle`);
  return {
    streams,
    windowFrames,
    keepFrames,
    framesPerSecPerStream: fps,
    aggregateFramesPerSec: fps * streams,
    steps,
    stepMs: (wall * 1000) / steps,
  };
}

// ---- latency through the worker engine ----------------------------------------------------------
async function latency(v: Variant, streams: number): Promise<unknown> {
  const engine = await Engine.start({
    modelDir: checkpoint(v.preset),
    precision: v.precision,
    cacheDir,
    engine: { windowFrames: 500, keepFrames: 200 },
  });
  const firstPacket: number[] = [];
  const steer: number[] = [];
  const created = new Map<string, number>();
  const steeredAt = new Map<string, number>();
  engine.on('packets', (id, packets) => {
    const now = performance.now();
    if (created.has(id)) {
      firstPacket.push(now - created.get(id)!);
      created.delete(id);
    }
    if (steeredAt.has(id) && packets.some((p) => p.control === 1)) {
      steer.push(now - steeredAt.get(id)!);
      steeredAt.delete(id);
    }
  });
  const underruns: number[] = [];
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  const until = async (done: () => boolean, ms: number): Promise<void> => {
    const end = performance.now() + ms;
    while (!done() && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  };
  for (let i = 0; i < streams; i++) {
    created.set(`s${i}`, performance.now());
    await engine.createStream(`s${i}`, { prompts: [{ text: PROMPTS[i % PROMPTS.length]!, weight: 1 }], config: { seed: i } });
  }
  await until(() => created.size === 0, 60_000);
  histogram.enable();
  await new Promise((r) => setTimeout(r, 2000));
  for (let i = 0; i < streams; i++) {
    steeredAt.set(`s${i}`, performance.now());
    await engine.setPrompts(`s${i}`, [{ text: 'bright synth arpeggio', weight: 1 }], 0);
  }
  await until(() => steeredAt.size === 0, 60_000);
  await new Promise((r) => setTimeout(r, 2000));
  histogram.disable();
  for (let i = 0; i < streams; i++) underruns.push((await engine.status(`s${i}`)).underruns);
  await engine.close();
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
  return {
    streams,
    firstPacketMs: mean(firstPacket),
    steeringToFirstPacketMs: mean(steer),
    eventLoopDelayP99Ms: histogram.percentile(99) / 1e6,
    eventLoopDelayMaxMs: histogram.max / 1e6,
    underruns: underruns.reduce((a, b) => a + b, 0),
  };
}

// ---- restart: the engine worker dies (an abrupt exit) and every stream resumes in a new one ---------
async function restart(v: Variant, streams: number): Promise<Record<string, number>> {
  const leadTargetMs = 1500;
  const engine = await Engine.start({
    modelDir: checkpoint(v.preset),
    precision: v.precision,
    cacheDir,
    faults: true,
    engine: { windowFrames: 500, keepFrames: 200, leadTargetMs },
  });
  // A listener per stream that starts playing its first packet on arrival and plays on in real time: a
  // packet that arrives after it is due is one the listener waited for (an underrun).
  const listeners = new Map<string, { start: number; last: number; late: number; worstMs: number }>();
  let died = 0;
  const gaps: number[] = [];
  engine.on('packets', (id, packets) => {
    const now = performance.now();
    const l = listeners.get(id) ?? { start: now, last: now, late: 0, worstMs: 0 };
    listeners.set(id, l);
    for (const p of packets) {
      const lateMs = now - (l.start + p.seq * 20);
      if (lateMs > 0) l.late++;
      l.worstMs = Math.max(l.worstMs, lateMs);
    }
    if (died > 0 && l.last < died) gaps.push(now - l.last);
    l.last = now;
  });
  const restarted = new Promise<{ ms: number }>((r) => engine.once('restarted', r));
  for (let i = 0; i < streams; i++)
    await engine.createStream(`s${i}`, { prompts: [{ text: PROMPTS[i % PROMPTS.length]!, weight: 1 }], config: { seed: i } });
  await new Promise((r) => setTimeout(r, 6000)); // every lead filled
  for (const l of listeners.values()) l.late = 0; // a slow start is not the restart's
  died = performance.now();
  void engine.injectFault('exit');
  const { ms } = await restarted;
  await new Promise((r) => setTimeout(r, 6000));
  await engine.close();
  const all = [...listeners.values()];
  return {
    streams,
    restartMs: ms,
    gapMaxMs: Math.max(...gaps),
    latePackets: all.reduce((a, l) => a + l.late, 0),
    worstLateMs: Math.max(0, ...all.map((l) => l.worstMs)),
  };
}

// ---- memory after churn: bench/churn.ts in a process of its own, with glibc's malloc as it comes and as
// bin/riverrun sets it (a fixed mmap threshold) ----------------------------------------------------------
function churn(sessions: number, mmapThreshold: boolean): Record<string, number>[] {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.MALLOC_MMAP_THRESHOLD_;
  if (mmapThreshold) env.MALLOC_MMAP_THRESHOLD_ = '131072';
  const script = fileURLToPath(new URL('./churn.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, String(sessions)], { env, encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new Error(`bench/churn.ts failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, number>);
}

// ---- prompt change: the new prompt's row is prefilled with the stream's history ---------------------
async function promptChange(v: Variant, historyFrames: number): Promise<Record<string, number>> {
  const model = await ModelBundle.load(checkpoint(v.preset), { precision: v.precision, cacheDir });
  const text = CachedTextEncoder.inProcess(model);
  const options = { ...defaultEngineOptions(model), windowFrames: 500, keepFrames: 200 };
  const core = new EngineCore(model, text, options, { packets: () => {}, applied: () => {}, codes: () => {}, error: () => {} });
  await core.createStream('s', { prompts: [{ text: PROMPTS[0]!, weight: 1 }], config: { seed: 0 } });
  /** Decoder ms of the steps until the rows being built have caught up, the first one included. */
  const catchUp = async (first: StepReport): Promise<number[]> => {
    const ms = [first.decoderMs];
    for (let r = first; r.prefillTokens > 0; ms.push(r.decoderMs)) r = await core.step(true);
    return ms;
  };
  const changeTo = async (prompt: string): Promise<number[]> => {
    await text.encode(prompt); // cached, so the change applies at the very next step
    core.setPrompts('s', [{ text: prompt, weight: 1 }], 0);
    await new Promise((r) => setImmediate(r));
    return catchUp(await core.step(true));
  };
  const plain: number[] = [];
  for (let i = 0; i < historyFrames; i++) {
    // A first change, not measured (the catch-up path's first runs also pay for fresh memory), early: the
    // measured one's catch-up (~history / 3 steps) must end before the history fills the window.
    if (i === 20) await changeTo(PROMPTS[1]!);
    else plain.push((await core.step(true)).decoderMs);
  }
  const change = await changeTo(PROMPTS[2]!);
  // For scale: the re-prime the stream reaches at 500 frames (keepFrames 200 through both rows).
  let reprime: number[] = [];
  for (let i = 0; i < 500 && reprime.length === 0; i++) {
    const r = await core.step(true);
    if (r.prefillTokens > 0) reprime = await catchUp(r);
  }
  await model.close();
  // Ordinary steps over the last 200 frames before the change (the KV stride, and so the shapes
  // onnxruntime sees, changes every 32 positions, as it does while rows catch up).
  const ordinary = stats(plain.slice(-200));
  const c = stats(change);
  const p = stats(reprime);
  log(
    `${v.preset} ${v.precision}: prompt change at ~${historyFrames} frames: ${change.length} steps, median ${c.median.toFixed(1)} ms, max ${c.max.toFixed(1)} (ordinary: median ${ordinary.median.toFixed(1)}, max ${ordinary.max.toFixed(1)}); re-prime: ${reprime.length} steps, median ${p.median.toFixed(1)}, max ${p.max.toFixed(1)}`,
  );
  return {
    historyFrames,
    prefillTokensPerStep: options.prefillTokensPerStep,
    stepDecoderMs: ordinary.median,
    stepMaxDecoderMs: ordinary.max,
    changeSteps: change.length,
    changeStepDecoderMs: c.median,
    changeMaxStepDecoderMs: c.max,
    ratio: c.median / ordinary.median,
    reprimeSteps: reprime.length,
    reprimeStepDecoderMs: p.median,
    reprimeMaxStepDecoderMs: p.max,
    reprimeRatio: p.median / ordinary.median,
  };
}

function stats(ms: number[]): { median: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, max: sorted.at(-1)! };
}

// ---- window: a step's decoder cost against the history it attends to ---------------------------
/**
 * One guided step (2 rows, T = 1) at history lengths across a 500-frame window, with the rows at the
 * stride the engine uses (the history rounded up to 32) and at the whole window (every slot read, as
 * before the stride layout). Median of interleaved runs.
 */
async function windowCost(v: Variant): Promise<unknown> {
  const model = await ModelBundle.load(checkpoint(v.preset), { precision: v.precision, cacheDir, graphs: ['text_encoder', 'decoder'] });
  const d = model.config.decoder;
  const [L, H, D, W, R] = [d.numLayers, d.numHeads, d.hidden / d.numHeads, 500, 2];
  const ids = model.tokenize(PROMPTS[0]!);
  const text = await model.encodeText([ids, ids]);
  const step = async (kv: KvWindow, p: number): Promise<number> => {
    const t = performance.now();
    await model.decode({
      rows: R,
      tokens: 1,
      ids: new BigInt64Array(R * d.numCodebooks).fill(BigInt(d.padId)),
      positions: new BigInt64Array(R).fill(BigInt(p)),
      pastLength: new BigInt64Array(R).fill(BigInt(p)),
      textTokens: text.tokens,
      crossKeys: text.keys,
      crossValues: text.values,
      crossMask: text.mask,
      ...kv.views(0, R),
    });
    return performance.now() - t;
  };
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
  const rows: Record<string, number>[] = [];
  for (const history of [16, 100, 250, 480]) {
    const strided = new KvWindow(L, H, D, W, R);
    strided.reserve(history + 1);
    const whole = new KvWindow(L, H, D, W, R, W);
    whole.reserve(history + 1);
    const stridedMs: number[] = [];
    const wholeMs: number[] = [];
    for (let i = 0; i < 3; i++) await step(strided, history); // warm-up
    for (let i = 0; i < 15; i++) {
      stridedMs.push(await step(strided, history));
      wholeMs.push(await step(whole, history));
    }
    const [a, b] = [median(stridedMs), median(wholeMs)];
    rows.push({ history, stride: strided.stride, stridedMs: a, wholeWindowMs: b, ratio: b / a });
  }
  const kernelsMs = await matmulsAlone(model.config.decoder, v.precision, R);
  await model.close();
  table(
    `Window: one guided step (2 rows) of ${v.preset} ${v.precision}, window ${W}: decoder ms by history length`,
    ['history', 'stride', 'strided ms', 'whole-window ms', 'whole ÷ strided'],
    rows.map((r) => [r.history!, r.stride!, r.stridedMs!.toFixed(2), r.wholeWindowMs!.toFixed(2), r.ratio!.toFixed(2)]),
  );
  const shortStep = rows[0]!.stridedMs!;
  console.log(
    `the step's matmuls alone (distinct weights, same shapes and precision): ${kernelsMs.toFixed(2)} ms; step at history 16 ÷ that: ${(shortStep / kernelsMs).toFixed(2)}`,
  );
  return { rows, matmulsAloneMs: kernelsMs, shortStepOverMatmuls: shortStep / kernelsMs };
}

/**
 * Every weight matmul of a decoder step (per layer: qkv, self out, cross q, cross out, fc1, fc2; then the
 * LM heads) at T = 1 for `rows` rows, each its own weights of the checkpoint's shapes and precision, as
 * independent branches of one graph: the floor that reading the weights sets for a step. Median ms.
 */
async function matmulsAlone(d: ModelBundle['config']['decoder'], precision: Precision, rows: number): Promise<number> {
  const g = new GraphBuilder('matmuls_alone');
  const { hidden, ffnDim, numLayers: L, numCodebooks: K, vocabSize: V } = d;
  const x = g.input('x', 'float', [rows, 1, hidden]);
  const inner = g.input('inner', 'float', [rows, 1, ffnDim]);
  const shapes: [string, number, number][] = [
    ['qkv', 3 * hidden, hidden],
    ['self_out', hidden, hidden],
    ['cross_q', hidden, hidden],
    ['cross_out', hidden, hidden],
    ['fc1', ffnDim, hidden],
    ['fc2', hidden, ffnDim],
  ];
  let seed = 1;
  const random = (n: number): Float32Array => {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      w[i] = (seed / 2 ** 32 - 0.5) * 0.1;
    }
    return w;
  };
  const branch = (name: string, out: number, inF: number, p: Precision): void => {
    const y = linear(g, inF === hidden ? x : inner, random(out * inF), out, inF, name, p);
    g.output(y, `${name}.y`, 'float', [rows, 1, out]);
  };
  for (let l = 0; l < L; l++) for (const [name, out, inF] of shapes) branch(`l${l}.${name}`, out, inF, precision);
  branch('lm_heads', K * V, hidden, precision === 'q4' ? 'q8' : precision); // as the decoder builds them
  const session = await ort.InferenceSession.create(g.save(join(work, 'matmuls-alone.onnx')), {
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
  });
  const feeds = {
    x: new ort.Tensor('float32', new Float32Array(rows * hidden).fill(0.1), [rows, 1, hidden]),
    inner: new ort.Tensor('float32', new Float32Array(rows * ffnDim).fill(0.1), [rows, 1, ffnDim]),
  };
  const ms: number[] = [];
  for (let i = 0; i < 23; i++) {
    const t = performance.now();
    await session.run(feeds);
    if (i >= 3) ms.push(performance.now() - t);
  }
  await session.release();
  return ms.sort((a, b) => a - b)[ms.length >> 1]!;
}

// ---- quality: what q8 and q4 change in the next-token distributions ----------------------------
/**
 * A 251-step fp32 generation (guidance 3, top-k 250, seed 0), then its tokens teacher-forced through the
 * prompt's row in fp32, q8 and q4 (one pass each): per codebook and position (251 × K), KL(fp32 ||
 * quantized) of the softmax and whether the most likely token is the same.
 */
async function quality(preset: ModelName): Promise<unknown> {
  const dir = checkpoint(preset);
  const fp32 = await ModelBundle.load(dir, { cacheDir });
  // The fixture has no tokenizer: ids inside its 100-token T5 vocabulary, ending in </s> (1).
  const promptIds = fp32.tokenizer ? fp32.tokenize(PROMPTS[0]!) : [37, 12, 55, 1];
  const { columns } = await generateOffline(fp32, {
    promptIds,
    steps: 251,
    guidance: 3,
    sampling: { temperature: 1, topK: 250, topP: 0 },
    seed: 0,
  });
  const teacherForced = async (model: ModelBundle): Promise<Float32Array> => {
    const d = model.config.decoder;
    const T = columns.length - 1;
    const K = d.numCodebooks;
    const ids = new BigInt64Array(K * T);
    for (let k = 0; k < K; k++) for (let t = 0; t < T; t++) ids[k * T + t] = BigInt(columns[t]![k]!);
    const text = await model.encodeText([promptIds]);
    const kv = new KvWindow(d.numLayers, d.numHeads, d.hidden / d.numHeads, 0, 1);
    const out = await model.decode({
      rows: 1,
      tokens: T,
      ids,
      positions: BigInt64Array.from({ length: T }, (_, t) => BigInt(t)),
      pastLength: new BigInt64Array(1),
      textTokens: text.tokens,
      crossKeys: text.keys,
      crossValues: text.values,
      crossMask: text.mask,
      ...kv.views(0, 1),
    });
    return out.logits;
  };
  const reference = await teacherForced(fp32);
  const V = fp32.config.decoder.vocabSize;
  await fp32.close();
  const softmax = (x: Float32Array): Float64Array => {
    let max = -Infinity;
    for (const v of x) if (v > max) max = v;
    const e = Float64Array.from(x, (v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  };
  const argmax = (x: Float32Array): number => x.indexOf(Math.max(...x));
  const rows: Record<string, number | string>[] = [];
  for (const precision of ['q8', 'q4'] as const) {
    const q = await ModelBundle.load(dir, { cacheDir, precision, graphs: ['text_encoder', 'decoder'] });
    const logits = await teacherForced(q);
    await q.close();
    const K = fp32.config.decoder.numCodebooks;
    const klByCodebook = new Array<number>(K).fill(0);
    let same = 0;
    const n = logits.length / V; // [1, K, T, V]: codebook-major
    for (let i = 0; i < n; i++) {
      const a = reference.subarray(i * V, (i + 1) * V);
      const b = logits.subarray(i * V, (i + 1) * V);
      const [p, r] = [softmax(a), softmax(b)];
      let kl = 0;
      for (let j = 0; j < V; j++) if (p[j]! > 0) kl += p[j]! * Math.log(p[j]! / Math.max(r[j]!, 1e-300));
      klByCodebook[Math.floor((i * K) / n)]! += kl / (n / K);
      if (argmax(a) === argmax(b)) same++;
    }
    const klNats = klByCodebook.reduce((x, y) => x + y, 0) / K;
    rows.push({ precision, klNats, klByCodebook: klByCodebook.join(','), top1Agreement: same / n, positions: n });
  }
  table(
    `Quality: ${preset}, an fp32 generation teacher-forced through each precision (prompt row)`,
    ['precision', 'positions', 'mean KL(fp32 || q) nats', 'per codebook', 'same top-1'],
    rows.map((r) => [
      r.precision!,
      Number(r.positions),
      Number(r.klNats).toFixed(4),
      String(r.klByCodebook)
        .split(',')
        .map((x) => Number(x).toFixed(4))
        .join(' '),
      `${(100 * Number(r.top1Agreement)).toFixed(1)} %`,
    ]),
  );
  return rows;
}

// ---- codec: chunked decoding cost is linear ------------------------------------------------------
async function codecLinearity(preset: ModelName, minutes: number): Promise<unknown> {
  const model = await ModelBundle.load(checkpoint(preset), { cacheDir, graphs: ['codec_decoder'] });
  const K = model.config.decoder.numCodebooks;
  const { codebookSize: V, hop } = model.config.codec;
  const run = async (frames: number): Promise<number> => {
    const c = new CodecStream((window) => model.decodeAudioWindow(window), { ...DEFAULT_CODEC_STREAM, codebooks: K, hop });
    const t = performance.now();
    for (let f = 0; f < frames; f++) {
      c.push(Array.from({ length: K }, (_, k) => (f * [1, 7, 13, 31][k % 4]!) % V));
      while (c.ready()) await c.decodeNext();
    }
    await c.flush();
    return (performance.now() - t) / 1000;
  };
  const minute = 60 * FRAME_RATE;
  await run(100); // warm-up
  // Best of two of each, interleaved, so that a noisy neighbour does not decide the ratio.
  let long = Infinity;
  let short = Infinity;
  for (let round = 0; round < 2; round++) {
    long = Math.min(long, await run(minutes * minute));
    let sum = 0;
    for (let i = 0; i < minutes; i++) sum += await run(minute);
    short = Math.min(short, sum);
  }
  await model.close();
  const r = {
    preset,
    minutes,
    chunkedSeconds: long,
    separateMinutesSeconds: short,
    ratio: long / short,
    realTimeFactor: (minutes * 60) / long,
  };
  table(
    `Codec: ${minutes} min decoded in chunks vs ${minutes} x 1 min (${preset})`,
    ['long s', `${minutes} x 1 min s`, 'ratio', 'x real time'],
    [[long.toFixed(2), short.toFixed(2), r.ratio.toFixed(3), r.realTimeFactor.toFixed(1)]],
  );
  return r;
}

try {
  const out: Record<string, unknown> = {};
  if (only.includes('throughput')) for (const v of variants) out[`throughput.${v.preset}.${v.precision}`] = await throughput(v);
  if (only.includes('steady')) {
    const rows: Record<string, number | string>[] = [];
    // The demo model has 512 positions; musicgen's table is longer.
    for (const v of variants.filter((x) => x.preset === 'demo' || (x.preset === 'small' && x.precision === 'q4')))
      for (const W of v.preset === 'demo' ? [500] : [500, 1500])
        for (const n of [1, 2]) rows.push({ variant: `${v.preset} ${v.precision}`, ...(await steady(v, n, W)) });
    out.steady = rows;
    table(
      'Steady state: streams deep into their window, over one re-prime cycle (keepFrames to windowFrames)',
      ['variant', 'window', 'streams', 'frames/s/stream', 'aggregate frames/s', 'step ms'],
      rows.map((r) => [
        String(r.variant),
        Number(r.windowFrames),
        Number(r.streams),
        Number(r.framesPerSecPerStream).toFixed(1),
        Number(r.aggregateFramesPerSec).toFixed(1),
        Number(r.stepMs).toFixed(2),
      ]),
    );
  }
  if (only.includes('latency')) {
    const lat: unknown[] = [];
    lat.push({ variant: 'tiny fp32', ...((await latency({ preset: 'tiny', precision: 'fp32' }, 1)) as object) });
    lat.push({ variant: 'tiny fp32', ...((await latency({ preset: 'tiny', precision: 'fp32' }, 8)) as object) });
    lat.push({ variant: 'demo fp32', ...((await latency({ preset: 'demo', precision: 'fp32' }, 1)) as object) });
    if (!args.quick) lat.push({ variant: 'small q4', ...((await latency({ preset: 'small', precision: 'q4' }, 1)) as object) });
    out.latency = lat;
    table(
      'Latency through the worker engine (lead target 1.5 s, window 500 frames)',
      ['variant', 'streams', 'first packet ms', 'steer -> packet ms', 'loop delay p99 ms', 'underruns'],
      (lat as Record<string, number | string>[]).map((l) => [
        l.variant!,
        l.streams!,
        Number(l.firstPacketMs).toFixed(0),
        Number(l.steeringToFirstPacketMs).toFixed(0),
        Number(l.eventLoopDelayP99Ms).toFixed(2),
        l.underruns!,
      ]),
    );
  }
  if (only.includes('prompt-change')) {
    // A stream ~300 frames (6 s) into a 500-frame window changes its prompt: the steps while the new row
    // is built (history run prefillTokensPerStep row-tokens per step) against ordinary steps, and the same
    // for the re-prime the stream reaches at 500 frames.
    const change: Record<string, unknown>[] = [];
    for (const v of variants.filter((x) => x.preset !== 'small' || x.precision === 'q4'))
      change.push({ variant: `${v.preset} ${v.precision}`, ...(await promptChange(v, 300)) });
    out.promptChange = change;
    table(
      'Prompt change ~300 frames into a stream (window 500), and its re-prime: decoder ms per step while rows are built',
      [
        'variant',
        'ordinary: median',
        'max',
        'change: steps',
        'median',
        'max',
        'median ratio',
        're-prime: steps',
        'median',
        'max',
        'median ratio',
      ],
      change.map((c) => [
        String(c.variant),
        Number(c.stepDecoderMs).toFixed(1),
        Number(c.stepMaxDecoderMs).toFixed(1),
        Number(c.changeSteps),
        Number(c.changeStepDecoderMs).toFixed(1),
        Number(c.changeMaxStepDecoderMs).toFixed(1),
        Number(c.ratio).toFixed(2),
        Number(c.reprimeSteps),
        Number(c.reprimeStepDecoderMs).toFixed(1),
        Number(c.reprimeMaxStepDecoderMs).toFixed(1),
        Number(c.reprimeRatio).toFixed(2),
      ]),
    );
  }
  if (only.includes('window')) {
    out.window = {} as Record<string, unknown>;
    for (const v of variants.filter((x) => x.preset !== 'tiny'))
      (out.window as Record<string, unknown>)[`${v.preset}.${v.precision}`] = await windowCost(v);
  }
  if (only.includes('quality')) {
    out.quality = { demo: await quality('demo'), fixture: await quality('fixture') } as Record<string, unknown>;
    if (!args.quick) (out.quality as Record<string, unknown>).small = await quality('small');
  }
  if (only.includes('codec')) {
    out.codec = [await codecLinearity('tiny', 10), await codecLinearity('demo', 10)];
    if (!args.quick) (out.codec as unknown[]).push(await codecLinearity('small', 2));
  }
  if (only.includes('restart')) {
    const runs: Record<string, unknown>[] = [];
    for (const n of [1, 4, 8]) runs.push({ variant: 'demo fp32', ...(await restart({ preset: 'demo', precision: 'fp32' }, n)) });
    if (!args.quick) runs.push({ variant: 'small q4', ...(await restart({ preset: 'small', precision: 'q4' }, 1)) });
    out.restart = runs;
    table(
      'Engine worker killed mid-stream (lead target 1.5 s, window 500): until every stream is back, and what listeners saw',
      ['variant', 'streams', 'restart ms', 'longest packet gap ms', 'late packets', 'worst lateness ms'],
      runs.map((r) => [
        String(r.variant),
        Number(r.streams),
        Number(r.restartMs).toFixed(0),
        Number(r.gapMaxMs).toFixed(0),
        Number(r.latePackets),
        Number(r.worstLateMs).toFixed(0),
      ]),
    );
  }
  if (only.includes('churn')) {
    const sessions = args.quick ? 300 : 900;
    const runs = { glibc: churn(sessions, false), 'bin/riverrun': churn(sessions, true) };
    out.churn = runs;
    table(
      `Engine RSS (MiB) under churn: a radio stream plus ${sessions} sessions in waves of 6 (0.4 s each), then 10 s idle; in glibc's thread heaps`,
      ['malloc', ...runs.glibc.map((s, i) => (i === runs.glibc.length - 1 ? 'idle' : String(s.sessions)))],
      Object.entries(runs).map(([name, samples]) => [
        name,
        ...samples.map((s) => `${s.rssMiB!.toFixed(0)} (${s.threadHeapsMiB!.toFixed(0)})`),
      ]),
    );
  }
  Object.assign(results, out);
  // bench/results.json holds one whole run; a partial one (--only) is written only where --out says.
  const file = args.out ?? (args.only ? null : new URL('./results.json', import.meta.url).pathname);
  if (file) {
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    log(`\nwrote ${file}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
