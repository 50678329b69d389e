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
}

export type EngineRequest =
  | { type: 'create'; id: string; spec: StreamSpec }
  | { type: 'prompts'; id: string; prompts: WeightedPrompt[]; transitionMs: number }
  | { type: 'config'; id: string; config: Partial<GenerationConfig> }
  | { type: 'playback'; id: string; action: PlaybackAction }
  | { type: 'idle'; id: string; idle: boolean }
  | { type: 'close'; id: string }
  | { type: 'status'; id: string }
  | { type: 'stats' }
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
  | { type: 'ready'; model: EngineModelInfo }
  | { type: 'fatal'; message: string }
  | { type: 'log'; message: string }
  | { type: 'reply'; req: number; result?: unknown; error?: { code: string; message: string } }
  | { type: 'packets'; id: string; packets: StampedPacket[] }
  | { type: 'applied'; id: string; event: AppliedEvent }
  | { type: 'codes'; id: string; frame: number; codes: number[] }
  | { type: 'error'; id: string; code: string; message: string }
  | { type: 'step'; report: StepReport };
