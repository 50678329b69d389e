// The engine as the main thread sees it: a worker that owns the model, with a typed API and events.
// Every call is a small message; packets arrive as transferred buffers.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { Precision } from '../models/graphs/linear.ts';
import type { Device } from '../models/model-bundle.ts';
import type { GenerationConfig, PlaybackAction, WeightedPrompt } from '../protocol/controls.ts';
import type { AppliedEvent, StampedPacket, StepReport, StreamSpec } from './engine-core.ts';
import { EngineError } from './engine-errors.ts';
import type { EngineOptions } from './engine-options.ts';
import type { EngineEvent, EngineModelInfo, EngineRequest, EngineStats, EngineWorkerData } from './engine-protocol.ts';
import { spawnTsWorker } from './ts-worker.ts';

export interface EngineStartOptions {
  modelDir: string;
  precision?: Precision;
  device?: Device;
  /** onnxruntime threads of the decoder/codec sessions */
  threads?: number;
  cacheDir?: string;
  engine?: Partial<Omit<EngineOptions, 'now'>>;
  log?: (message: string) => void;
}

export interface EngineEvents {
  packets: [id: string, packets: StampedPacket[]];
  applied: [id: string, event: AppliedEvent];
  codes: [id: string, frame: number, codes: number[]];
  /** A stream-level problem (e.g. a prompt that could not be encoded); not EventEmitter's 'error'. */
  streamError: [id: string, code: string, message: string];
  step: [report: StepReport];
  fatal: [message: string];
}

export class Engine extends EventEmitter<EngineEvents> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited = false;

  private constructor(
    private readonly worker: Worker,
    readonly model: EngineModelInfo,
  ) {
    super();
  }

  static async start(options: EngineStartOptions): Promise<Engine> {
    const data: EngineWorkerData = {
      modelDir: options.modelDir,
      precision: options.precision ?? 'fp32',
      device: options.device ?? 'cpu',
      threads: options.threads,
      cacheDir: options.cacheDir,
      engine: options.engine ?? {},
    };
    const worker = spawnTsWorker(new URL('./engine-worker.ts', import.meta.url), data);
    const model = await new Promise<EngineModelInfo>((resolve, reject) => {
      const onMessage = (e: EngineEvent): void => {
        if (e.type === 'log') options.log?.(e.message);
        else if (e.type === 'ready') {
          worker.off('message', onMessage);
          resolve(e.model);
        } else if (e.type === 'fatal') reject(new EngineError('ENGINE_MODEL_LOAD_FAILED', e.message));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(new EngineError('ENGINE_MODEL_LOAD_FAILED', `engine worker exited with code ${code} while loading ${options.modelDir}`)),
      );
    });
    const engine = new Engine(worker, model);
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    worker.on('message', (e: EngineEvent) => engine.onEvent(e, options.log));
    worker.on('error', (err) => engine.emit('fatal', err.message));
    worker.on('exit', (code) => {
      engine.exited = true;
      for (const w of engine.waiting.values()) w.reject(new EngineError('ENGINE_STOPPED', `engine worker exited (code ${code})`));
      engine.waiting.clear();
    });
    return engine;
  }

  createStream(id: string, spec: StreamSpec): Promise<void> {
    return this.request({ type: 'create', id, spec }, spec.audioPrompt ? [spec.audioPrompt.buffer as ArrayBuffer] : []) as Promise<void>;
  }
  setPrompts(id: string, prompts: WeightedPrompt[], transitionMs = 0): Promise<void> {
    return this.request({ type: 'prompts', id, prompts, transitionMs }) as Promise<void>;
  }
  setConfig(id: string, config: Partial<GenerationConfig>): Promise<void> {
    return this.request({ type: 'config', id, config }) as Promise<void>;
  }
  playback(id: string, action: PlaybackAction): Promise<void> {
    return this.request({ type: 'playback', id, action }) as Promise<void>;
  }
  /** An idle stream (nobody hears it) takes no compute and resumes where it stood (EngineCore.setIdle). */
  setIdle(id: string, idle: boolean): Promise<void> {
    return this.request({ type: 'idle', id, idle }) as Promise<void>;
  }
  closeStream(id: string): Promise<void> {
    return this.request({ type: 'close', id }) as Promise<void>;
  }
  status(id: string): Promise<{ leadMs: number; rtf: number; underruns: number; state: string; control: number }> {
    return this.request({ type: 'status', id }) as Promise<{
      leadMs: number;
      rtf: number;
      underruns: number;
      state: string;
      control: number;
    }>;
  }
  stats(): Promise<EngineStats> {
    return this.request({ type: 'stats' }) as Promise<EngineStats>;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise((r) => this.worker.once('exit', r));
    await this.request({ type: 'shutdown' }).catch(() => {});
    // A worker stuck in a long run is terminated after a grace period.
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await exit;
    clearTimeout(timer);
  }

  private request(msg: EngineRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.exited) return Promise.reject(new EngineError('ENGINE_STOPPED', 'the engine has stopped'));
    const req = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(req, { resolve, reject });
      this.worker.postMessage({ ...msg, req }, transfer);
    });
  }

  private onEvent(e: EngineEvent, log?: (message: string) => void): void {
    switch (e.type) {
      case 'reply': {
        const w = this.waiting.get(e.req);
        this.waiting.delete(e.req);
        if (e.error) w?.reject(new EngineError(e.error.code, e.error.message));
        else w?.resolve(e.result);
        break;
      }
      case 'packets':
        this.emit('packets', e.id, e.packets);
        break;
      case 'applied':
        this.emit('applied', e.id, e.event);
        break;
      case 'codes':
        this.emit('codes', e.id, e.frame, e.codes);
        break;
      case 'error':
        this.emit('streamError', e.id, e.code, e.message);
        break;
      case 'step':
        this.emit('step', e.report);
        break;
      case 'log':
        log?.(e.message);
        break;
      case 'fatal':
        this.emit('fatal', e.message);
        break;
      case 'ready':
        break;
    }
  }
}
