// Random MusicGen checkpoints in the exact Hugging Face layout (config.json, generation_config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json), for tests and
// for a default model that works without a download.
//
// * `tiny`: toy dimensions (T5 d_model 32 / 2 layers, decoder hidden 64 / 2 layers, EnCodec with 4
//   base filters) but the real codebook size (2048) and audio rate (32 kHz, 50 frames/s), so that every
//   code path of the server runs, in real time, on a couple of CPU cores.
// * `small`: facebook/musicgen-small's exact dimensions (~2.5 GB of float32), streamed to disk tensor
//   by tensor in bounded memory.
//
// Weights come from a seeded PRNG (xoshiro128**, one independent stream per tensor keyed by the
// seed and the tensor's name) with magnitudes chosen so that activations stay O(1): see `tensorSpecs`.
// config.json carries `"riverrun_random": true` so the server can tell users the model is noise.
//
// The parts: presets/dims.ts (dimensions), presets/config-files.ts, presets/tokenizer-files.ts,
// presets/tensor-specs.ts (tensor layout and initialisation), presets/random-values.ts (the PRNG).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { presetConfig, presetGenerationConfig } from './presets/config-files.ts';
import { isPreset, PRESETS, type Preset } from './presets/dims.ts';
import { TensorFiller } from './presets/random-values.ts';
import { type TensorSpec, tensorSpecs } from './presets/tensor-specs.ts';
import { presetTokenizerFiles } from './presets/tokenizer-files.ts';
import { type GeneratedTensor, writeSafetensors } from './safetensors.ts';

export interface WriteRandomCheckpointOptions {
  /** PRNG seed, an integer in [0, 2^32). Default 0. Same seed, same bytes. */
  seed?: number;
  /** Called after every chunk of model.safetensors with bytes of tensor data written so far / in all. */
  onProgress?: (done: number, total: number) => void;
}

type Json = Record<string, unknown>;

/** The tensors of `specs` as generated tensors of the seeded PRNG. */
function generatedTensors(specs: readonly TensorSpec[], seed: number): Map<string, GeneratedTensor> {
  const tensors = new Map<string, GeneratedTensor>();
  for (const spec of specs) {
    if (tensors.has(spec.name)) throw new Error(`duplicate tensor ${spec.name}`);
    const filler = new TensorFiller(spec, seed);
    tensors.set(spec.name, { dtype: 'F32', shape: spec.shape, generate: (out) => filler.fill(out) });
  }
  return tensors;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Writes a random checkpoint of `preset` into `dir` (created if needed): config.json,
 * generation_config.json, tokenizer files, and model.safetensors last (written to
 * model.safetensors.partial and renamed, so a complete model.safetensors means a complete checkpoint).
 * Refuses to overwrite a directory holding a real (non-random) checkpoint.
 */
export function writeRandomCheckpoint(dir: string, preset: Preset, options: WriteRandomCheckpointOptions = {}): void {
  if (!isPreset(preset)) throw new Error(`unknown preset ${JSON.stringify(preset)} (expected ${PRESETS.join(' or ')})`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'config.json');
  if (existsSync(configPath)) {
    let random = false;
    try {
      random = (JSON.parse(readFileSync(configPath, 'utf8')) as Json).riverrun_random === true;
    } catch {
      random = false;
    }
    if (!random) throw new Error(`${configPath}: refusing to overwrite a checkpoint that is not a Riverrun random checkpoint`);
  } else {
    for (const name of ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin']) {
      if (existsSync(join(dir, name)))
        throw new Error(`${join(dir, name)}: refusing to overwrite model weights that do not belong to a Riverrun random checkpoint`);
    }
  }
  const config = { ...presetConfig(preset), riverrun_seed: seed };
  const specs = tensorSpecs(config, configPath);
  // Remove the old weights first: config and weights of different presets must never be mixed.
  rmSync(join(dir, 'model.safetensors'), { force: true });
  writeJson(configPath, config);
  writeJson(join(dir, 'generation_config.json'), presetGenerationConfig(preset));
  const tok = presetTokenizerFiles(preset);
  for (const [name, value] of Object.entries(tok)) writeJson(join(dir, name), value);
  writeSafetensors(join(dir, 'model.safetensors'), generatedTensors(specs, seed), { onProgress: options.onProgress });
}

/** Bytes of model.safetensors' tensor data for a preset (without generating it). */
export function presetWeightBytes(preset: Preset): number {
  return tensorSpecs(presetConfig(preset)).reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
}
