// The prompts of one stream and their weights over time. Each prompt is a decoder row; the guided
// scores blend them: uncond + g * sum_i w_i (cond_i - uncond) / sum_i w_i, so one prompt is plain
// classifier-free guidance and several prompts mix the directions each one pulls in. A weight change
// ramps linearly over a number of generated frames (transitionMs / 20 ms), which keeps a stream's tokens
// a function of its seed and its control log only, not of wall-clock time.
import type { PromptEncoding } from './row-pool.ts';

export interface MixPrompt {
  text: string;
  encoding: PromptEncoding;
  /** weight at the start of the current ramp */
  from: number;
  /** weight at the end of it */
  to: number;
  /** ramp progress in frames, and its length */
  done: number;
  length: number;
}

export function weightOf(p: MixPrompt): number {
  if (p.length <= 0 || p.done >= p.length) return p.to;
  return p.from + ((p.to - p.from) * p.done) / p.length;
}

export class PromptMix {
  prompts: MixPrompt[] = [];

  /**
   * Moves to a new set of prompts: existing texts ramp to their new weight, new texts ramp up from 0,
   * texts no longer present ramp down to 0 (and are dropped by `advance` once there).
   */
  retarget(next: { text: string; weight: number; encoding: PromptEncoding }[], frames: number, immediate: boolean): void {
    const byText = new Map(this.prompts.map((p) => [p.text, p]));
    const seen = new Set<string>();
    for (const n of next) {
      seen.add(n.text);
      const old = byText.get(n.text);
      if (old) {
        old.from = weightOf(old);
        old.to = n.weight;
        old.done = 0;
        old.length = immediate ? 0 : frames;
      } else {
        this.prompts.push({
          text: n.text,
          encoding: n.encoding,
          from: immediate ? n.weight : 0,
          to: n.weight,
          done: 0,
          length: immediate ? 0 : frames,
        });
      }
    }
    for (const p of this.prompts) {
      if (seen.has(p.text)) continue;
      p.from = weightOf(p);
      p.to = 0;
      p.done = 0;
      p.length = immediate ? 0 : frames;
    }
    if (immediate) this.prompts = this.prompts.filter((p) => seen.has(p.text));
  }

  /** Normalised weights for this step (all zero when no prompt has weight). */
  weights(): number[] {
    const w = this.prompts.map(weightOf);
    const total = w.reduce((a, b) => a + b, 0);
    return total > 0 ? w.map((x) => x / total) : w.map(() => 0);
  }

  /** One frame of ramp progress. Returns true when a prompt was dropped (the rows change). */
  advance(): boolean {
    for (const p of this.prompts) if (p.done < p.length) p.done++;
    const before = this.prompts.length;
    this.prompts = this.prompts.filter((p) => p.to > 0 || p.done < p.length);
    return this.prompts.length !== before;
  }
}
