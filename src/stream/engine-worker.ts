// The engine worker: owns the model's sessions and every stream, runs the step loop, and posts Opus
// packets and events to the main thread. onnxruntime blocks the thread it runs on, which is why this is
// a worker: the main thread only moves small messages and packets.
import { parentPort, workerData } from 'node:worker_threads';
import { ModelBundle } from '../models/model-bundle.ts';
import { EngineCore } from './engine-core.ts';
import { defaultEngineOptions } from './engine-options.ts';
import type { EngineEvent, EngineRequest, EngineWorkerData } from './engine-protocol.ts';
import type { PromptEncoding } from './row-pool.ts';
import { CachedTextEncoder } from './text-encoder.ts';
import { spawnTsWorker } from './ts-worker.ts';

const data = (workerData as { data: EngineWorkerData }).data;
const port = parentPort!;
const post = (event: EngineEvent, transfer: ArrayBuffer[] = []): void => port.postMessage(event, transfer);

/** Text encoding in its own worker; encodings come back as transferred buffers. */
class TextEncoderWorker {
  private readonly worker = spawnTsWorker(new URL('./text-encoder-worker.ts', import.meta.url), { ...data, engine: undefined });
  private readonly waiting = new Map<number, { resolve: (e: PromptEncoding) => void; reject: (e: Error) => void }>();
  private next = 0;
  readonly ready: Promise<void>;

  constructor() {
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (msg: { ready?: true; id?: number; error?: string } & PromptEncoding) => {
        if (msg.ready) return resolve();
        const w = this.waiting.get(msg.id!);
        this.waiting.delete(msg.id!);
        if (msg.error !== undefined) w?.reject(new Error(msg.error));
        else w?.resolve({ tokens: msg.tokens, keys: msg.keys, values: msg.values });
      });
    });
  }

  encode(text: string): Promise<PromptEncoding> {
    const id = this.next++;
    const p = new Promise<PromptEncoding>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker.postMessage({ id, text });
    return p;
  }

  async close(): Promise<void> {
    this.worker.postMessage({ close: true });
    await new Promise((r) => this.worker.once('exit', r));
  }
}

let core: EngineCore;
let text: TextEncoderWorker;
let model: ModelBundle;
try {
  model = await ModelBundle.load(data.modelDir, {
    precision: data.precision,
    device: data.device,
    threads: data.threads,
    cacheDir: data.cacheDir,
    log: (message) => post({ type: 'log', message }),
  });
  text = new TextEncoderWorker();
  await text.ready;
  core = new EngineCore(
    model,
    new CachedTextEncoder((t) => text.encode(t)),
    { ...defaultEngineOptions(model), ...data.engine },
    {
      packets: (id, packets, leadMs) => {
        // Each packet gets a buffer of its own, so that transferring it moves nothing else.
        const own = packets.map((p) =>
          p.data.byteOffset === 0 && p.data.byteLength === p.data.buffer.byteLength ? p : { ...p, data: p.data.slice() },
        );
        post(
          { type: 'packets', id, packets: own, leadMs },
          own.map((p) => p.data.buffer as ArrayBuffer),
        );
      },
      applied: (id, event) => post({ type: 'applied', id, event }),
      codes: (id, frame, codes) => post({ type: 'codes', id, frame, codes }),
      history: (id, first, codes) => post({ type: 'history', id, first, codes }),
      error: (id, code, message) => post({ type: 'error', id, code, message }),
    },
  );
} catch (err) {
  post({ type: 'fatal', message: (err as Error).message });
  process.exit(1);
}

let wake: (() => void) | null = null;
let closing = false;
let steps = 0;
/** Set by a 'fault' request: the next step throws. */
let failNextStep = false;

port.on('message', (msg: { req: number } & EngineRequest) => {
  void handle(msg).then(
    (result) => post({ type: 'reply', req: msg.req, result }),
    (err: Error & { code?: string }) =>
      post({ type: 'reply', req: msg.req, error: { code: err.code ?? 'ENGINE_INTERNAL', message: err.message } }),
  );
  wake?.();
});

async function handle(msg: EngineRequest): Promise<unknown> {
  switch (msg.type) {
    case 'create':
      return core.createStream(msg.id, msg.spec);
    case 'prompts':
      return core.setPrompts(msg.id, msg.prompts, msg.transitionMs, msg.tag);
    case 'config':
      return core.setConfig(msg.id, msg.config, msg.tag);
    case 'playback':
      return core.playback(msg.id, msg.action);
    case 'idle':
      return core.setIdle(msg.id, msg.idle);
    case 'close':
      return core.closeStream(msg.id);
    case 'status':
      return core.status(msg.id);
    case 'stats':
      return { streams: core.streamCount, poolBytes: core.poolBytes, steps };
    case 'fault':
      if (!data.faults) throw Object.assign(new Error('fault requests are off (EngineStartOptions.faults)'), { code: 'ENGINE_INTERNAL' });
      if (msg.fault === 'exit') process.exit(70);
      failNextStep = true;
      return undefined;
    case 'shutdown':
      closing = true;
      return undefined;
  }
}

const info = model.config;
post({
  type: 'ready',
  keepFrames: core.options.keepFrames,
  model: {
    name: model.name,
    random: model.random,
    sampleRate: info.codec.samplingRate,
    frameRate: info.codec.samplingRate / info.codec.hop,
    precision: model.precision,
    device: model.device,
  },
});

// The step loop: step while some stream is below its lead target, otherwise sleep until one will be
// (or a message arrives). Yielding between steps lets steering messages in.
while (!closing) {
  const idle = core.idleMs();
  if (idle === null || idle > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(idle ?? 1000, 20));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = null;
    continue;
  }
  try {
    if (failNextStep) throw new Error('fault injected by a fault request');
    const report = await core.step();
    if (report.streams > 0) {
      steps++;
      post({ type: 'step', report });
    }
  } catch (err) {
    // A failed step may have left any stream half-advanced: the worker ends, and the engine starts a new
    // one that resumes every stream from what it last reported (engine.ts).
    post({ type: 'fatal', message: `step failed: ${(err as Error).stack ?? err}` });
    process.exit(1);
  }
  await new Promise((r) => setImmediate(r));
}
await text.close();
await model.close();
process.exit(0);
