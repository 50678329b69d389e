// Generation of a fixed number of steps in one process, exactly as Hugging Face's MusicGen generate():
// start column of pads, delay pattern (forced start and end positions), classifier-free guidance with the
// null condition (all-zero text states and mask), sampling, un-delay, codec decode. Rows, guidance and
// sampling are the streaming engine's (row-layout.ts, guidance.ts), so both give the same tokens for the
// same seed and prompt where the fixed length does not force the end (test/offline-engine.test.ts). Used by
// `riverrun generate` and by the tests that match the reference implementation token for token.
import { KvWindow } from '../models/kv-window.ts';
import type { ModelBundle } from '../models/model-bundle.ts';
import { completeFrames, isForced, undelay } from './delay-pattern.ts';
import { guideScores, sampleTokens } from './guidance.ts';
import { Rng } from './rng.ts';
import { RowLayout } from './row-layout.ts';
import type { SamplingConfig } from './sampler.ts';

export interface OfflineOptions {
  /** Text token ids of the prompt, ending in </s>. */
  promptIds: number[];
  /** Decoder steps after the start column (Hugging Face's max_new_tokens); yields steps + 1 - K frames. */
  steps: number;
  /** Guidance scale; 1 runs without the unconditional row. */
  guidance: number;
  sampling: SamplingConfig;
  seed: number;
  /** Called with each step's raw logits [rows, K, V] (RowLayout order) and guided scores [K, V] (for tests and tools). */
  onStep?: (step: number, logits: Float32Array, scores: Float32Array) => void;
}

export interface OfflineResult {
  /** Delayed token matrix, column-major: columns[s][k], pattern applied. */
  columns: number[][];
  /** Un-delayed codes [K, frames]. */
  codes: BigInt64Array;
  frames: number;
  /** Audio at the codec's sample rate. */
  audio: Float32Array;
}

export async function generateOffline(model: ModelBundle, o: OfflineOptions): Promise<OfflineResult> {
  const { numCodebooks: K, vocabSize: V, padId, numLayers: L, numHeads: H, hidden } = model.config.decoder;
  if (!Number.isInteger(o.steps) || o.steps < K) throw new RangeError(`steps must be an integer >= ${K} (got ${o.steps})`);
  const length = o.steps + 1;
  const layout = new RowLayout(1, o.guidance !== 1);
  const rows = layout.rows;

  // Cross-attention inputs: the prompt's row, and (if guided) the null condition, all zeros.
  const text = await model.encodeText([o.promptIds]);
  const S = text.tokens;
  const crossKeys = text.keys.map((k) => promptRow(k, layout));
  const crossValues = text.values.map((v) => promptRow(v, layout));
  const crossMask = promptRow(text.mask, layout);

  const kv = new KvWindow(L, H, hidden / H, o.steps, rows);
  const rng = new Rng(o.seed);
  const columns: number[][] = [new Array<number>(K).fill(padId)];
  const scores = new Float32Array(K * V);
  const weights = [1];

  for (let s = 0; s < o.steps; s++) {
    const ids = new BigInt64Array(rows * K);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < K; k++) ids[r * K + k] = BigInt(isForced(k, s, K, length) ? padId : columns[s]![k]!);
    }
    kv.reserve(s + 1);
    const { logits, newKv } = await model.decode({
      rows,
      tokens: 1,
      ids,
      positions: new BigInt64Array(rows).fill(BigInt(s)),
      pastLength: new BigInt64Array(rows).fill(BigInt(s)),
      ...kv.views(0, rows),
      textTokens: S,
      crossKeys,
      crossValues,
      crossMask,
    });
    kv.write(newKv, 0, rows, 1, new Array<number>(rows).fill(s));
    guideScores(scores, logits, 0, layout, weights, o.guidance, K);
    o.onStep?.(s, logits, scores);
    columns.push(sampleTokens(scores, o.sampling, rng, K));
  }
  for (let s = 0; s < length; s++) for (let k = 0; k < K; k++) if (isForced(k, s, K, length)) columns[s]![k] = padId;
  const frames = completeFrames(length, K);
  const codes = undelay(columns, K, 0, frames);
  const audio = await model.decodeAudio(codes, 1, frames);
  return { columns, codes, frames, audio };
}

/** One row's worth of `a` at the prompt's row of `layout`, zeros (the null condition) in the others. */
function promptRow<T extends Float32Array | BigInt64Array>(a: T, layout: RowLayout): T {
  const out = new (a.constructor as new (n: number) => T)(a.length * layout.rows);
  out.set(a as never, layout.cond(0) * a.length);
  return out;
}
