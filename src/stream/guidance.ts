// Classifier-free guidance of one generation's decoder rows into scores per codebook, and the draw of one
// token per codebook from them: the code the streaming engine and the offline generator share, so that
// the same logits, weights and generator give the same tokens in both.
import type { Rng } from './rng.ts';
import type { RowLayout } from './row-layout.ts';
import { type SamplingConfig, sample } from './sampler.ts';

/**
 * Guided scores [K, V] from the logits [rows, K, V] of a batch in which this generation's rows start at
 * row `first` (in `layout` order): uncond + g · Σᵢ wᵢ (condᵢ − uncond), with `weights` the prompts'
 * normalised weights. One prompt at weight 1 is MusicGen's guidance, uncond + (cond − uncond) · g;
 * without an unconditional row the scores are the conditional logits.
 */
export function guideScores(
  scores: Float32Array,
  logits: Float32Array,
  first: number,
  layout: RowLayout,
  weights: readonly number[],
  scale: number,
  codebooks: number,
): void {
  const K = codebooks;
  const V = scores.length / K;
  const single = weights.length === 1 && weights[0] === 1;
  for (let k = 0; k < K; k++) {
    const out = scores.subarray(k * V, (k + 1) * V);
    const condAt = ((first + layout.cond(0)) * K + k) * V;
    if (!layout.guided) {
      out.set(logits.subarray(condAt, condAt + V));
      continue;
    }
    const uncondAt = ((first + layout.uncond) * K + k) * V;
    if (single) {
      for (let v = 0; v < V; v++) out[v] = logits[uncondAt + v]! + (logits[condAt + v]! - logits[uncondAt + v]!) * scale;
      continue;
    }
    out.set(logits.subarray(uncondAt, uncondAt + V));
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i]!;
      if (w === 0) continue;
      const at = ((first + layout.cond(i)) * K + k) * V;
      for (let v = 0; v < V; v++) out[v] = out[v]! + scale * w * (logits[at + v]! - logits[uncondAt + v]!);
    }
  }
}

/** One token per codebook, codebook 0 first, drawn from the guided scores [K, V] (modified in place). */
export function sampleTokens(scores: Float32Array, sampling: SamplingConfig, rng: Rng, codebooks: number): number[] {
  const V = scores.length / codebooks;
  const tokens = new Array<number>(codebooks);
  for (let k = 0; k < codebooks; k++) tokens[k] = sample(scores.subarray(k * V, (k + 1) * V), sampling, rng);
  return tokens;
}

/** The streaming engine's per-stream stage: guided scores into `scores` ([K, V] scratch), then the tokens. */
export function guideAndSample(
  scores: Float32Array,
  logits: Float32Array,
  first: number,
  layout: RowLayout,
  weights: readonly number[],
  guidance: number,
  sampling: SamplingConfig,
  rng: Rng,
  codebooks: number,
): number[] {
  guideScores(scores, logits, first, layout, weights, guidance, codebooks);
  return sampleTokens(scores, sampling, rng, codebooks);
}
