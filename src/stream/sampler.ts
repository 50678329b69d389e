// Turning a codebook's guided scores into a token: temperature, top-k, top-p, then a draw from the
// stream's own generator (or argmax when greedy). Guidance itself is in guidance.ts.
import type { Rng } from './rng.ts';

export interface SamplingConfig {
  /** 0 or less means greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set with probability >= p (0 or 1 = off). */
  topP: number;
}

/** First index of the maximum. */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/**
 * Samples a token from `scores` (modified in place). Top-k keeps every token whose score is at least the
 * k-th largest (as audiocraft and Hugging Face do), top-p keeps the most likely tokens until their
 * probability mass reaches p.
 */
export function sample(scores: Float32Array, config: SamplingConfig, rng: Rng): number {
  if (config.temperature <= 0) return argmax(scores);
  const n = scores.length;
  const inv = 1 / config.temperature;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    scores[i] = scores[i]! * inv;
    if (scores[i]! > max) max = scores[i]!;
  }
  if (config.topK > 0 && config.topK < n) {
    const threshold = kthLargest(scores, config.topK);
    for (let i = 0; i < n; i++) if (scores[i]! < threshold) scores[i] = -Infinity;
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    const p = scores[i] === -Infinity ? 0 : Math.exp(scores[i]! - max);
    scores[i] = p;
    total += p;
  }
  if (config.topP > 0 && config.topP < 1) {
    const order = Array.from({ length: n }, (_, i) => i)
      .filter((i) => scores[i]! > 0)
      .sort((a, b) => scores[b]! - scores[a]! || a - b);
    let mass = 0;
    let kept = 0;
    for (const i of order) {
      if (mass >= config.topP * total) scores[i] = 0;
      else {
        mass += scores[i]!;
        kept += scores[i]!;
      }
    }
    total = kept;
  }
  let u = rng.next() * total;
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (scores[i]! <= 0) continue;
    last = i;
    u -= scores[i]!;
    if (u < 0) return i;
  }
  return last;
}

let scratch = new Float32Array(0);

/** The k-th largest value, by quickselect on a scratch copy (a full sort would cost about a third of a step). */
export function kthLargest(values: Float32Array, k: number): number {
  if (scratch.length < values.length) scratch = new Float32Array(values.length);
  const a = scratch.subarray(0, values.length);
  a.set(values);
  const target = values.length - k;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target]!;
}
