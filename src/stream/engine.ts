// The engine as the main thread sees it: a worker that owns the model, with a typed API and events.
// Every call is a small message; packets arrive as transferred buffers.
//
// The engine outlives its worker: when the worker dies (an exception in a step, an onnxruntime error, a
// crash), a new one loads the model and every stream is created again where it stood, from what the main
// thread keeps of it (stream-record.ts, resume.ts): same controls, playback, the last frames as history,
// and the packets going on at the next seq. Requests made meanwhile wait for the new worker.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { Precision } from '../models/graphs/linear.ts';
import type { Device } from '../models/model-bundle.ts';
import { SAMPLE_RATE } from '../protocol/constants.ts';
import type { GenerationConfig, PlaybackAction, WeightedPrompt } from '../protocol/controls.ts';
import type { AppliedEvent, StampedPacket, StepReport, StreamSpec } from './engine-core.ts';
import { EngineError } from './engine-errors.ts';
import type { EngineOptions } from './engine-options.ts';
import type { EngineEvent, EngineFault, EngineModelInfo, EngineRequest, EngineStats, EngineWorkerData } from './engine-protocol.ts';
import { StreamRecord, type UnappliedControl } from './stream-record.ts';
import { spawnTsWorker } from './ts-worker.ts';

/** More worker deaths than this within RESTART_WINDOW_MS and the engine stops for good. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60_000;

export interface EngineStartOptions {
  modelDir: string;
  precision?: Precision;
  device?: Device;
  /** onnxruntime threads of the decoder/codec sessions */
  threads?: number;
  cacheDir?: string;
  engine?: Partial<Omit<EngineOptions, 'now'>>;
  /** Accept injectFault() (tests and drills of the restart). */
  faults?: boolean;
  log?: (message: string) => void;
}

export interface EngineRestart {
  /** Streams created again in the new worker. */
  streams: number;
  /** From the old worker's death to every stream created again. */
  ms: number;
  /** Restarts since the engine started. */
  restarts: number;
}

export interface EngineEvents {
  packets: [id: string, packets: StampedPacket[]];
  applied: [id: string, event: AppliedEvent];
  codes: [id: string, frame: number, codes: number[]];
  /** A stream-level problem (e.g. a prompt that could not be encoded); not EventEmitter's 'error'. */
  streamError: [id: string, code: string, message: string];
  step: [report: StepReport];
  /** Something the worker reported before it ended (a failed step, a failed load). */
  fatal: [message: string];
  /** The worker died; a new one is starting and every stream will resume in it. */
  crashed: [reason: string];
  restarted: [restart: EngineRestart];
  /** The worker keeps dying or cannot start again: the engine has stopped and every request fails. */
  failed: [reason: string];
}

type RequestType = EngineRequest['type'];

interface Waiter {
  type: RequestType;
  /** The stream it is about, for creates. */
  id?: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface ReadyWorker {
  worker: Worker;
  model: EngineModelInfo;
  keepFrames: number;
}

/** Starts an engine worker and waits until its model is loaded. */
function spawnWorker(data: EngineWorkerData, log?: (message: string) => void): Promise<ReadyWorker> {
  const worker = spawnTsWorker(new URL('./engine-worker.ts', import.meta.url), data);
  return new Promise<ReadyWorker>((resolve, reject) => {
    const detach = (): void => {
      worker.off('message', onMessage);
      worker.off('error', fail);
      worker.off('exit', onExit);
    };
    const fail = (err: Error): void => {
      detach();
      void worker.terminate();
      reject(err);
    };
    const onExit = (code: number): void =>
      fail(new EngineError('ENGINE_MODEL_LOAD_FAILED', `engine worker exited with code ${code} while loading ${data.modelDir}`));
    const onMessage = (e: EngineEvent): void => {
      if (e.type === 'log') log?.(e.message);
      else if (e.type === 'ready') {
        detach();
        resolve({ worker, model: e.model, keepFrames: e.keepFrames });
      } else if (e.type === 'fatal') fail(new EngineError('ENGINE_MODEL_LOAD_FAILED', e.message));
    };
    worker.on('message', onMessage);
    worker.on('error', fail);
    worker.on('exit', onExit);
  });
}

export class Engine extends EventEmitter<EngineEvents> {
  private worker: Worker;
  private next = 0;
  /** Replies awaited from the current worker. */
  private waiting = new Map<number, Waiter>();
  private readonly records = new Map<string, StreamRecord>();
  private nextTag = 1;
  private state: 'running' | 'restarting' | 'stopped' = 'running';
  /** Requests made while a new worker starts, sent once every stream is back. */
  private held: { msg: EngineRequest; transfer: ArrayBuffer[]; waiter: Waiter }[] = [];
  private readonly deaths: number[] = [];
  private restartCount = 0;
  /** The latest error the worker raised, for the reason of its death. */
  private lastError: string | null = null;
  /** Set when a new worker died while the streams were being created in it. */
  private diedWhileRestarting: string | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** Settles when the restart under way (if any) has finished. */
  private restarted: Promise<void> = Promise.resolve();

  private constructor(
    ready: ReadyWorker,
    private readonly data: EngineWorkerData,
    private readonly log?: (message: string) => void,
  ) {
    super();
    this.worker = ready.worker;
    this.model = ready.model;
    this.keepFrames = ready.keepFrames;
    this.attach(ready.worker);
  }

  readonly model: EngineModelInfo;
  private readonly keepFrames: number;

  static async start(options: EngineStartOptions): Promise<Engine> {
    const data: EngineWorkerData = {
      modelDir: options.modelDir,
      precision: options.precision ?? 'fp32',
      device: options.device ?? 'cpu',
      threads: options.threads,
      cacheDir: options.cacheDir,
      engine: options.engine ?? {},
      faults: options.faults,
    };
    return new Engine(await spawnWorker(data, options.log), data, options.log);
  }

  /** Worker restarts since the start. */
  get restarts(): number {
    return this.restartCount;
  }

  /** True while a new worker is starting (requests wait for it). */
  get restarting(): boolean {
    return this.state === 'restarting';
  }

  /** close() was called, or the engine gave up (a getter: the state changes across a restart's awaits). */
  private get stopped(): boolean {
    return this.state === 'stopped';
  }

  /** True while a worker runs and takes requests (not restarting, not stopped). */
  get running(): boolean {
    return this.state === 'running';
  }

  createStream(id: string, spec: StreamSpec): Promise<void> {
    if (this.records.has(id)) return Promise.reject(new Error(`stream ${id} exists`));
    this.records.set(id, new StreamRecord(id, spec, this.keepFrames, this.model.frameRate / SAMPLE_RATE));
    const created = this.request({ type: 'create', id, spec }, createTransfer(spec));
    return created.then(
      () => undefined,
      (err: Error) => {
        this.records.delete(id);
        throw err;
      },
    );
  }
  setPrompts(id: string, prompts: WeightedPrompt[], transitionMs = 0): Promise<void> {
    const tag = this.nextTag++;
    this.records.get(id)?.steered({ tag, kind: 'prompts', prompts, transitionMs });
    return this.request({ type: 'prompts', id, prompts, transitionMs, tag }) as Promise<void>;
  }
  setConfig(id: string, config: Partial<GenerationConfig>): Promise<void> {
    const tag = this.nextTag++;
    this.records.get(id)?.steered({ tag, kind: 'config', config });
    return this.request({ type: 'config', id, config, tag }) as Promise<void>;
  }
  playback(id: string, action: PlaybackAction): Promise<void> {
    this.records.get(id)?.played(action);
    return this.request({ type: 'playback', id, action }) as Promise<void>;
  }
  /** An idle stream (nobody hears it) takes no compute and resumes where it stood (EngineCore.setIdle). */
  setIdle(id: string, idle: boolean): Promise<void> {
    this.records.get(id)?.setIdle(idle);
    return this.request({ type: 'idle', id, idle }) as Promise<void>;
  }
  closeStream(id: string): Promise<void> {
    this.records.delete(id);
    return this.request({ type: 'close', id }) as Promise<void>;
  }
  /**
   * What creates the stream again where it stands now, elsewhere (another server, after this one is
   * gone): createStream(id, spec), then the controls in order. No audio prompt: a stream that has sent
   * nothing yet starts afresh from its prompts. Undefined for an unknown stream.
   */
  snapshot(id: string): { spec: StreamSpec; controls: UnappliedControl[] } | undefined {
    const r = this.records.get(id)?.respawn(performance.now());
    if (!r) return undefined;
    const { audioPrompt: _, ...spec } = r.spec;
    return { spec, controls: [...r.controls] };
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
  /** Makes the worker fail as a real failure would (needs EngineStartOptions.faults): the engine restarts it. */
  injectFault(fault: EngineFault): Promise<void> {
    return this.request({ type: 'fault', fault }) as Promise<void>;
  }

  async close(): Promise<void> {
    if (this.state === 'stopped') return this.exited;
    this.state = 'stopped';
    this.failHeld(new EngineError('ENGINE_STOPPED', 'the engine has stopped'));
    // A restart under way shuts its new worker down itself.
    await this.restarted;
    const worker = this.worker;
    const exit = this.exited;
    this.post(worker, { type: 'shutdown' }, [], { type: 'shutdown', resolve: () => {}, reject: () => {} });
    // A worker stuck in a long run is terminated after a grace period.
    const timer = setTimeout(() => void worker.terminate(), 5000);
    await exit;
    clearTimeout(timer);
  }

  private request(msg: EngineRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.state === 'stopped') return Promise.reject(new EngineError('ENGINE_STOPPED', 'the engine has stopped'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { type: msg.type, id: msg.type === 'create' ? msg.id : undefined, resolve, reject };
      if (this.state === 'restarting') this.held.push({ msg, transfer, waiter });
      else this.post(this.worker, msg, transfer, waiter);
    });
  }

  private post(worker: Worker, msg: EngineRequest, transfer: ArrayBuffer[], waiter: Waiter): void {
    const req = this.next++;
    this.waiting.set(req, waiter);
    worker.postMessage({ ...msg, req }, transfer);
  }

  private attach(worker: Worker): void {
    let exited!: () => void;
    this.exited = new Promise((r) => {
      exited = r;
    });
    worker.on('message', (e: EngineEvent) => this.onEvent(e));
    worker.on('error', (err) => {
      this.lastError = err.message;
      this.emit('fatal', err.message);
    });
    worker.on('exit', (code) => {
      exited();
      if (this.worker !== worker) return;
      const reason = this.lastError ?? `engine worker exited with code ${code}`;
      this.lastError = null;
      if (this.state === 'running') {
        void this.restart(reason);
        return;
      }
      // Stopped, or a new worker died while the streams were being created in it (the restart tries again).
      if (this.state === 'restarting') this.diedWhileRestarting = reason;
      const err = new EngineError(this.state === 'stopped' ? 'ENGINE_STOPPED' : 'ENGINE_RESTARTING', `engine worker exited (code ${code})`);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  /**
   * A new worker in place of the dead one, and every stream created in it again (again with another worker
   * if that one dies too, up to the crash-loop limit). Requests the dead worker did not answer, and those
   * made meanwhile: the ones whose effect the records hold (creates, steering, playback, idleness of the
   * streams created again) are answered once the streams are back, the others are sent to the new worker
   * then; queries the dead worker did not answer fail.
   */
  private async restart(firstReason: string): Promise<void> {
    const started = performance.now();
    this.state = 'restarting';
    let done!: () => void;
    this.restarted = new Promise((r) => {
      done = r;
    });
    const covered: Waiter[] = [];
    let reason = firstReason;
    try {
      for (;;) {
        this.takeUnanswered(reason, covered);
        this.emit('crashed', reason);
        const now = Date.now();
        this.deaths.push(now);
        while (this.deaths[0]! < now - RESTART_WINDOW_MS) this.deaths.shift();
        if (this.deaths.length > MAX_RESTARTS)
          return this.fail(
            `the engine worker died ${this.deaths.length} times within ${RESTART_WINDOW_MS / 1000} s (last: ${reason})`,
            covered,
          );
        let ready: ReadyWorker;
        try {
          ready = await spawnWorker(this.data, this.log);
        } catch (err) {
          return this.fail(`the engine worker could not start again: ${(err as Error).message}`, covered);
        }
        this.worker = ready.worker;
        this.diedWhileRestarting = null;
        this.attach(ready.worker);
        const records = this.stopped ? [] : [...this.records.values()];
        const back = await Promise.all(records.map((r) => this.respawn(r)));
        if (this.stopped) {
          // close() came meanwhile: it shuts the new worker down.
          for (const w of covered) w.reject(new EngineError('ENGINE_STOPPED', 'the engine has stopped'));
          return;
        }
        if (this.diedWhileRestarting !== null) {
          reason = this.diedWhileRestarting;
          continue;
        }
        this.finishRestart(
          records.filter((_, i) => back[i]).map((r) => r.id),
          covered,
          started,
        );
        return;
      }
    } finally {
      done();
    }
  }

  /** Moves the requests the dead worker did not answer into `covered`, except queries, which fail. */
  private takeUnanswered(reason: string, covered: Waiter[]): void {
    for (const w of this.waiting.values()) {
      if (w.type === 'status' || w.type === 'stats') w.reject(new EngineError('ENGINE_RESTARTING', `engine worker died: ${reason}`));
      else covered.push(w);
    }
    this.waiting = new Map();
  }

  private finishRestart(respawnedIds: string[], covered: Waiter[], started: number): void {
    const respawned = new Set(respawnedIds);
    this.restartCount++;
    this.state = 'running';
    for (const w of covered) {
      if (w.type === 'create' && !respawned.has(w.id!)) w.reject(new EngineError('ENGINE_STOPPED', `stream ${w.id} could not be created`));
      else w.resolve(undefined);
    }
    for (const h of this.held.splice(0)) {
      const coveredByRespawn = 'id' in h.msg && respawned.has(h.msg.id) && h.msg.type !== 'close' && h.msg.type !== 'status';
      if (coveredByRespawn) h.waiter.resolve(undefined);
      else this.post(this.worker, h.msg, h.transfer, h.waiter);
    }
    this.emit('restarted', { streams: respawned.size, ms: performance.now() - started, restarts: this.restartCount });
  }

  /**
   * Creates a record's stream in the new worker, then sends its unapplied controls in order. False if the
   * stream could not be created (it is forgotten); also false, the record kept, if the worker died meanwhile.
   */
  private async respawn(record: StreamRecord): Promise<boolean> {
    const { spec, controls } = record.respawn(performance.now());
    const send = (msg: EngineRequest, transfer: ArrayBuffer[] = []) =>
      new Promise<unknown>((resolve, reject) => this.post(this.worker, msg, transfer, { type: msg.type, resolve, reject }));
    try {
      await send({ type: 'create', id: record.id, spec }, createTransfer(spec));
      await Promise.all(controls.map((c: UnappliedControl) => send(controlRequest(record.id, c))));
      return true;
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === 'ENGINE_RESTARTING' || e.code === 'ENGINE_STOPPED') return false;
      this.records.delete(record.id);
      this.emit('streamError', record.id, e.code ?? 'ENGINE_INTERNAL', `could not resume the stream after an engine restart: ${e.message}`);
      return false;
    }
  }

  private fail(reason: string, unanswered: Waiter[]): void {
    const closing = this.state === 'stopped';
    this.state = 'stopped';
    const err = new EngineError('ENGINE_STOPPED', reason);
    for (const w of unanswered) w.reject(err);
    this.failHeld(err);
    if (!closing) this.emit('failed', reason);
  }

  private failHeld(err: Error): void {
    for (const h of this.held.splice(0)) h.waiter.reject(err);
  }

  private onEvent(e: EngineEvent): void {
    switch (e.type) {
      case 'reply': {
        const w = this.waiting.get(e.req);
        this.waiting.delete(e.req);
        if (e.error) w?.reject(new EngineError(e.error.code, e.error.message));
        else w?.resolve(e.result);
        break;
      }
      case 'packets':
        this.records.get(e.id)?.onPackets(e.packets, e.leadMs, performance.now());
        this.emit('packets', e.id, e.packets);
        break;
      case 'applied':
        this.records.get(e.id)?.onApplied(e.event);
        this.emit('applied', e.id, e.event);
        break;
      case 'history':
        this.records.get(e.id)?.onHistory(e.first, e.codes);
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
        this.log?.(e.message);
        break;
      case 'fatal':
        this.lastError = e.message;
        this.emit('fatal', e.message);
        break;
      case 'ready':
        break;
    }
  }
}

/** What a create request moves to the worker instead of copying: the audio prompt's buffer. */
function createTransfer(spec: StreamSpec): ArrayBuffer[] {
  return spec.audioPrompt ? [spec.audioPrompt.buffer as ArrayBuffer] : [];
}

function controlRequest(id: string, c: UnappliedControl): EngineRequest {
  return c.kind === 'prompts'
    ? { type: 'prompts', id, prompts: c.prompts, transitionMs: c.transitionMs, tag: c.tag }
    : { type: 'config', id, config: c.config, tag: c.tag };
}
