// Compiles a checkpoint into Riverrun's four ONNX graphs and keeps them in an on-disk cache keyed by the
// checkpoint's identity and the compile options, so that a second start loads instead of rebuilding.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { defaultCacheRoot } from './cache-root.ts';
import type { Checkpoint } from './checkpoint.ts';
import { buildDecoder } from './graphs/decoder.ts';
import { buildEncodecDecoder, buildEncodecEncoder } from './graphs/encodec.ts';
import type { Precision } from './graphs/linear.ts';
import { buildTextEncoder } from './graphs/text-encoder.ts';

/** Bump when any graph changes shape or meaning: it invalidates every cached compile. */
const GRAPH_VERSION = 3;

export const GRAPH_NAMES = ['text_encoder', 'decoder', 'codec_decoder', 'codec_encoder'] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];

export interface CompileOptions {
  precision: Precision;
  /** Defaults to `<RIVERRUN_CACHE or ~/.cache/riverrun>/graphs`. */
  cacheDir?: string;
  onProgress?: (message: string) => void;
}

export interface CompiledModel {
  dir: string;
  paths: Record<GraphName, string>;
  /** True when the graphs were found in the cache. */
  cached: boolean;
}

function compileKey(checkpoint: Checkpoint, precision: Precision): string {
  return createHash('sha256').update(`v${GRAPH_VERSION}\n${precision}\n${checkpoint.fingerprint()}`).digest('hex').slice(0, 24);
}

export function compileModel(checkpoint: Checkpoint, options: CompileOptions): CompiledModel {
  const root = options.cacheDir ?? join(defaultCacheRoot(), 'graphs');
  const dir = join(root, compileKey(checkpoint, options.precision));
  const paths = Object.fromEntries(GRAPH_NAMES.map((n) => [n, join(dir, `${n}.onnx`)])) as Record<GraphName, string>;
  if (existsSync(join(dir, 'complete'))) return { dir, paths, cached: true };

  const log = options.onProgress ?? (() => {});
  // Build into a private directory and rename it into place, so a crash never leaves a half cache entry.
  // Several processes (the workers of a cluster on one machine) may build the same entry at once.
  const tmp = `${dir}.tmp-${process.pid}-${threadId}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const weights = checkpoint.openWeights();
  try {
    const { config } = checkpoint;
    const steps: [GraphName, () => { save(path: string): string }][] = [
      ['text_encoder', () => buildTextEncoder(weights, config.textEncoder, config.decoder)],
      ['decoder', () => buildDecoder(weights, config.decoder, options.precision)],
      ['codec_decoder', () => buildEncodecDecoder(weights, config.codec, config.decoder.numCodebooks)],
      ['codec_encoder', () => buildEncodecEncoder(weights, config.codec, config.decoder.numCodebooks)],
    ];
    steps.forEach(([name, build], i) => {
      const started = Date.now();
      log(`compiling ${name} (${i + 1}/${steps.length}, ${options.precision})`);
      build().save(join(tmp, `${name}.onnx`));
      log(`compiled ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
    writeFileSync(
      join(tmp, 'source.json'),
      JSON.stringify({ checkpoint: checkpoint.dir, precision: options.precision, graphVersion: GRAPH_VERSION }, null, 2),
    );
    writeFileSync(join(tmp, 'complete'), '');
    // Another process put the same entry in place first: its graphs are ours, and it may be using them.
    if (!placeEntry(tmp, dir)) rmSync(tmp, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    weights.close();
  }
  return { dir, paths, cached: false };
}

/** Renames a built entry into place; false if a complete one is there already (built by another process). */
function placeEntry(tmp: string, dir: string): boolean {
  for (let attempt = 0; ; attempt++) {
    if (existsSync(join(dir, 'complete'))) return false;
    try {
      renameSync(tmp, dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt > 0) throw err;
      // A directory without its marker: what a crash of an older version left. Replace it.
      if (!existsSync(join(dir, 'complete'))) rmSync(dir, { recursive: true, force: true });
    }
  }
}
