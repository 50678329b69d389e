// Generation of a fixed number of steps in one process, exactly as Hugging Face's MusicGen generate():
// start column of pads, delay pattern (forced start and end positions), classifier-free guidance with the
// null condition (all-zero text states and mask), sampling, un-delay, codec decode. Used by
// `riverrun generate` and by the tests that match the reference implementation token for token.
import { KvWindow } from '../models/kv-window.ts';
import type { ModelBundle } from '../models/model-bundle.ts';
import { isForced, undelay } from './delay-pattern.ts';
import { Rng } from './rng.ts';
import { guide, type SamplingConfig, sample } from './sampler.ts';

export interface OfflineOptions {
  /** Text token ids of the prompt, ending in </s>. */
  promptIds: number[];
  /** Decoder steps after the start column (Hugging Face's max_new_tokens); yields steps + 1 - K frames. */
  steps: number;
  /** Guidance scale; 1 runs without the unconditional row. */
  guidance: number;
  sampling: SamplingConfig;
  seed: number;
  /** Called with each step's raw logits [rows, K, V] and guided scores [K, V] (for tests and tools). */
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
  const guided = o.guidance !== 1;
  const rows = guided ? 2 : 1;

  // Cross-attention inputs: row 0 the prompt, row 1 (if guided) the null condition, all zeros.
  const text = await model.encodeText([o.promptIds]);
  const S = text.tokens;
  const crossKeys = text.keys.map((k) => padRows(k, rows));
  const crossValues = text.values.map((v) => padRows(v, rows));
  const crossMask = padRows(text.mask, rows);

  const kv = new KvWindow(L, H, hidden / H, o.steps, rows);
  const rng = new Rng(o.seed);
  const columns: number[][] = [new Array<number>(K).fill(padId)];
  const scores = new Float32Array(K * V);

  for (let s = 0; s < o.steps; s++) {
    const ids = new BigInt64Array(rows * K);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < K; k++) ids[r * K + k] = BigInt(isForced(k, s, K, length) ? padId : columns[s]![k]!);
    }
    const { logits, newKv } = await model.decode({
      rows,
      tokens: 1,
      ids,
      positions: new BigInt64Array(rows).fill(BigInt(s)),
      pastLength: new BigInt64Array(rows).fill(BigInt(s)),
      window: o.steps,
      pastKeys: kv.keys,
      pastValues: kv.values,
      textTokens: S,
      crossKeys,
      crossValues,
      crossMask,
    });
    kv.write(newKv, 0, rows, 1, new Array<number>(rows).fill(s));
    for (let k = 0; k < K; k++) {
      const out = scores.subarray(k * V, (k + 1) * V);
      const cond = logits.subarray(k * V, (k + 1) * V);
      if (guided) guide(out, cond, logits.subarray((K + k) * V, (K + k + 1) * V), o.guidance);
      else out.set(cond);
    }
    o.onStep?.(s, logits, scores);
    const next = Array.from({ length: K }, (_, k) => sample(scores.subarray(k * V, (k + 1) * V), o.sampling, rng));
    columns.push(next);
  }
  for (let s = 0; s < length; s++) for (let k = 0; k < K; k++) if (isForced(k, s, K, length)) columns[s]![k] = padId;
  const frames = length - K;
  const codes = undelay(columns, K, 0, frames);
  const audio = await model.decodeAudio(codes, 1, frames);
  return { columns, codes, frames, audio };
}

/** Row 0 holds `a`; rows 1.. are zeros (the null condition). */
function padRows<T extends Float32Array | BigInt64Array>(a: T, rows: number): T {
  const out = new (a.constructor as new (n: number) => T)(a.length * rows);
  out.set(a as never);
  return out;
}
