// `riverrun model tiny --out DIR [--preset tiny|small] [--seed N]`: writes a random MusicGen
// checkpoint in the Hugging Face layout and prints the directory to pass to `--model DIR`.
import { resolve } from 'node:path';
import { isPreset, PRESETS, type Preset } from '../models/presets/dims.ts';
import { presetWeightBytes, writeRandomCheckpoint } from '../models/presets.ts';
import { parseCommandLine } from './command-line.ts';
import { formatBytes, progressBar } from './progress.ts';

const MODEL_TINY_USAGE = `Usage: riverrun model tiny --out DIR [--preset tiny|small] [--seed N]

Write a randomly initialised MusicGen checkpoint (Hugging Face layout: config.json,
generation_config.json, model.safetensors, tokenizer.json, ...). It needs no download and
sounds like noise; config.json is marked "riverrun_random": true.

  -o, --out DIR      directory to write (created if needed; an existing random checkpoint
                     there is replaced, a real one is never overwritten)
  -p, --preset P     tiny (default: toy dimensions, ~7 MB, real time on a laptop) or
                     small (facebook/musicgen-small's dimensions, ~2.5 GB)
  -s, --seed N       PRNG seed, an integer in [0, 4294967295] (default 0); same seed, same bytes
  -h, --help         show this help

Prints the checkpoint directory on stdout; pass it to --model.`;

export interface ModelTinyIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
}

export async function runModelTiny(args: string[], io: ModelTinyIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  const line = parseCommandLine(
    'model tiny',
    MODEL_TINY_USAGE,
    args,
    {
      out: { type: 'string', short: 'o' },
      preset: { type: 'string', short: 'p' },
      seed: { type: 'string', short: 's' },
      help: { type: 'boolean', short: 'h' },
    },
    { out: io.stdout },
  );
  if (!line) return;
  const { values, fail } = line;
  if (values.out === undefined || values.out === '') return fail('--out DIR is required');
  const presetName = values.preset ?? 'tiny';
  if (!isPreset(presetName)) return fail(`unknown preset ${JSON.stringify(presetName)} (expected ${PRESETS.join(' or ')})`);
  const preset: Preset = presetName;
  let seed = 0;
  if (values.seed !== undefined) {
    seed = /^\d+$/.test(values.seed) ? Number(values.seed) : NaN;
    if (!Number.isSafeInteger(seed) || seed > 0xffffffff) {
      fail(`--seed must be an integer in [0, 4294967295], got ${JSON.stringify(values.seed)}`);
    }
  }
  const dir = resolve(values.out);

  const started = Date.now();
  const progress =
    preset === 'small' ? new Progress(io.stderr, `writing random ${preset} checkpoint to ${dir}`, presetWeightBytes(preset)) : undefined;
  try {
    writeRandomCheckpoint(dir, preset, {
      seed,
      ...(progress ? { onProgress: (done: number, total: number) => progress.update(done, total) } : {}),
    });
  } finally {
    progress?.end();
  }
  if (progress) io.stderr.write(`wrote random ${preset} checkpoint (seed ${seed}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  io.stdout.write(`${dir}\n`);
}

/** On a TTY one line rewritten in place (at most ~10 times a second); otherwise a line every 10%. */
class Progress {
  private lastDraw = 0;
  private lastDecile = 0;
  private drawn = false;
  private readonly startedAt = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly out: { write(chunk: string): unknown; isTTY?: boolean },
    title: string,
    total: number,
  ) {
    this.tty = out.isTTY === true;
    out.write(`${title} (${formatBytes(total)})\n`);
  }

  update(done: number, total: number): void {
    const now = Date.now();
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    if (this.tty) {
      if (now - this.lastDraw >= 100 || done >= total) {
        this.lastDraw = now;
        this.drawn = true;
        this.out.write(`\r\x1b[K${progressBar(done, total, (now - this.startedAt) / 1000)}`);
      }
    } else {
      const decile = Math.floor(frac * 10);
      if (decile > this.lastDecile) {
        this.lastDecile = decile;
        this.out.write(`${decile * 10}% (${formatBytes(done)} / ${formatBytes(total)})\n`);
      }
    }
  }

  end(): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
