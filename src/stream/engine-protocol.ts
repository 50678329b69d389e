// Messages between the main thread (Engine) and the engine worker. Buffers travel as transfers.

import type { Precision } from '../models/graphs/linear.ts';
import type { Device } from '../models/model-bundle.ts';
import type { GenerationConfig, PlaybackAction, WeightedPrompt } from '../protocol/controls.ts';
import type { AppliedEvent, StampedPacket, StepReport, StreamSpec } from './engine-core.ts';
import type { EngineOptions } from './engine-options.ts';

export interface WorkerModelOptions {
  modelDir: string;
  precision: Precision;
  device: Device;
  threads?: number;
  cacheDir?: string;
}

export interface EngineWorkerData extends WorkerModelOptions {
  engine: Partial<Omit<EngineOptions, 'now'>>;
  /** Accept 'fault' requests (tests and drills of the engine's restart). */
  faults?: boolean;
}

/** A failure a 'fault' request causes: an exception in the next step, or the worker's abrupt exit. */
export type EngineFault = 'step' | 'exit';

export type EngineRequest =
  | { type: 'create'; id: string; spec: StreamSpec }
  | { type: 'prompts'; id: string; prompts: WeightedPrompt[]; transitionMs: number; tag: number }
  | { type: 'config'; id: string; config: Partial<GenerationConfig>; tag: number }
  | { type: 'playback'; id: string; action: PlaybackAction }
  | { type: 'idle'; id: string; idle: boolean }
  | { type: 'close'; id: string }
  | { type: 'status'; id: string }
  | { type: 'stats' }
  | { type: 'fault'; fault: EngineFault }
  | { type: 'shutdown' };

export interface EngineStats {
  streams: number;
  poolBytes: number;
  steps: number;
}

/** The model the engine worker loaded, as its ready message reports it (not the server's wire ModelInfo). */
export interface EngineModelInfo {
  name: string;
  random: boolean;
  sampleRate: number;
  frameRate: number;
  precision: Precision;
  device: Device;
}

export type EngineEvent =
  /** keepFrames: the frames of history the engine keeps on a re-prime (and a resume starts from). */
  | { type: 'ready'; model: EngineModelInfo; keepFrames: number }
  | { type: 'fatal'; message: string }
  | { type: 'log'; message: string }
  | { type: 'reply'; req: number; result?: unknown; error?: { code: string; message: string } }
  | { type: 'packets'; id: string; packets: StampedPacket[]; leadMs: number }
  | { type: 'applied'; id: string; event: AppliedEvent }
  | { type: 'codes'; id: string; frame: number; codes: number[] }
  | { type: 'history'; id: string; first: number; codes: number[][] }
  | { type: 'error'; id: string; code: string; message: string }
  | { type: 'step'; report: StepReport };
