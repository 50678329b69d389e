// A Hugging Face MusicGen checkpoint directory: config.json, generation_config.json, model.safetensors
// (or a sharded model.safetensors.index.json) and tokenizer.json.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type GenerationDefaults, type MusicgenConfig, parseGenerationConfig, parseMusicgenConfig } from './config.ts';
import { CheckpointError } from './errors.ts';
import { SafetensorsFile } from './safetensors.ts';

/** Weights looked up by Hugging Face key name across one or more safetensors files. */
export class Weights {
  private readonly byName = new Map<string, SafetensorsFile>();

  constructor(readonly files: SafetensorsFile[]) {
    for (const f of files) for (const name of f.tensors.keys()) this.byName.set(name, f);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** float32 copy of tensor `name`; `shape` is checked when given. */
  get(name: string, shape?: number[]): Float32Array {
    const file = this.byName.get(name);
    if (!file) throw new CheckpointError('CHECKPOINT_MISSING_TENSOR', this.files.map((f) => f.path).join(', '), `has no tensor ${name}`);
    return file.float32(name, shape);
  }

  /** The first of `names` that exists (checkpoints differ in naming, e.g. tied or parametrized weights). */
  first(names: string[], shape?: number[]): Float32Array {
    const name = names.find((n) => this.has(n));
    if (!name) return this.get(names[0]!, shape);
    return this.get(name, shape);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: MusicgenConfig,
    readonly generation: GenerationDefaults,
    readonly weightFiles: string[],
    readonly tokenizerPath: string | null,
    readonly rawConfig: Record<string, unknown>,
  ) {}

  static open(dir: string): Checkpoint {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new CheckpointError(
        'CHECKPOINT_MISSING_FILE',
        dir,
        'is not a directory (expected a Hugging Face MusicGen checkpoint with config.json and model.safetensors)',
      );
    }
    const configPath = join(dir, 'config.json');
    const rawConfig = readJson(configPath);
    const config = parseMusicgenConfig(rawConfig, configPath);
    const genPath = join(dir, 'generation_config.json');
    const generation = parseGenerationConfig(existsSync(genPath) ? readJson(genPath) : {}, genPath);
    const tokenizerPath = existsSync(join(dir, 'tokenizer.json')) ? join(dir, 'tokenizer.json') : null;
    return new Checkpoint(dir, config, generation, findWeightFiles(dir), tokenizerPath, rawConfig);
  }

  /** Opens the weight files; close the result when done. */
  openWeights(): Weights {
    const files: SafetensorsFile[] = [];
    try {
      for (const path of this.weightFiles) files.push(SafetensorsFile.open(path));
    } catch (err) {
      for (const f of files) f.close();
      throw err;
    }
    return new Weights(files);
  }

  /** Identity of the checkpoint's content for the compiled-graph cache: names, sizes and mtimes. */
  fingerprint(): string {
    const parts = [JSON.stringify(this.rawConfig)];
    for (const path of this.weightFiles) {
      const s = statSync(path);
      parts.push(`${path}:${s.size}:${s.mtimeMs}`);
    }
    return parts.join('\n');
  }
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CheckpointError(
      'CHECKPOINT_MISSING_FILE',
      path,
      'is missing (a MusicGen checkpoint needs config.json, model.safetensors and tokenizer.json)',
    );
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, `is not a JSON object (${(err as Error).message})`);
  }
}

function findWeightFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (existsSync(indexPath)) {
    const index = readJson(indexPath) as { weight_map?: Record<string, string> };
    if (!index.weight_map) throw new CheckpointError('CHECKPOINT_CORRUPT', indexPath, 'has no weight_map');
    return [...new Set(Object.values(index.weight_map))].map((f) => join(dir, f));
  }
  const hint = existsSync(join(dir, 'pytorch_model.bin')) ? ' (only pytorch_model.bin is present: Riverrun reads safetensors)' : '';
  throw new CheckpointError('CHECKPOINT_MISSING_FILE', single, `is missing${hint}`);
}
