// A stream's delayed token sequence since its last (re)start, with what the engine needs from it: the
// column to feed next, the frames that became complete, the re-prime that bounds it, and the tokens an
// audio prompt forces.
import { isForced } from './delay-pattern.ts';

export class TokenHistory {
  /** columns[s][k]: the token of codebook k at local position s; column 0 is the all-pad start. */
  columns: number[][];
  /** Absolute frame index of local frame 0 (grows on re-prime; set anew on reset). */
  frameBase: number;
  /** Un-delayed codes [frame][k] of an audio prompt, forced into the sequence as it passes them. */
  private forced: number[][] = [];

  constructor(
    readonly codebooks: number,
    readonly pad: number,
    frameBase = 0,
  ) {
    this.columns = [new Array<number>(codebooks).fill(pad)];
    this.frameBase = frameBase;
  }

  /** Local position of the column fed at the next step (= number of KV entries before it). */
  get position(): number {
    return this.columns.length - 1;
  }

  /** Tokens fed at the next step: the last column with not-yet-valid positions forced to pad. */
  nextInput(): number[] {
    const s = this.position;
    return this.columns[s]!.map((tok, k) => (isForced(k, s, this.codebooks) ? this.pad : tok));
  }

  /**
   * Starts a fresh sequence from an audio prompt's codes [frame][k]. Returns the frames already complete
   * in it (the rest complete as the next steps pass them).
   */
  startFrom(frames: number[][]): { frame: number; codes: number[] }[] {
    this.forced = frames;
    const K = this.codebooks;
    // Positions 1..F hold codebook 0's frames; codebook k lags by k, its missing tail is forced later.
    for (let s = 1; s <= frames.length; s++) {
      this.columns.push(Array.from({ length: K }, (_, k) => (s - k - 1 >= 0 ? frames[s - k - 1]![k]! : this.pad)));
    }
    return frames.slice(0, Math.max(0, frames.length - K + 1)).map((codes, f) => ({ frame: this.frameBase + f, codes: [...codes] }));
  }

  /** Columns before the one fed next, as they were fed (forced positions as pad): what a prefill must run
   * through the decoder. */
  prefix(): number[][] {
    const K = this.codebooks;
    return this.columns.slice(0, -1).map((column, s) => column.map((tok, k) => (isForced(k, s, K) ? this.pad : tok)));
  }

  /**
   * Appends the sampled column; returns the absolute index and codes of the frame completed by it, if
   * any (frame n - K becomes complete when column n arrives).
   */
  append(tokens: number[]): { frame: number; codes: number[] } | null {
    const s = this.columns.length;
    const K = this.codebooks;
    const column = tokens.map((tok, k) => {
      const f = s - k - 1;
      return f >= 0 && f < this.forced.length ? this.forced[f]![k]! : tok;
    });
    this.columns.push(column);
    const f = s - K;
    if (f < 0) return null;
    return { frame: this.frameBase + f, codes: Array.from({ length: K }, (_, k) => this.columns[f + k + 1]![k]!) };
  }

  /**
   * Drops all but the last `keep` frames: the sequence restarts at position 0 with those frames (and the
   * partial frames after them) as its prefix, as audiocraft does beyond 30 s. Returns the columns to
   * prefill (every column but the last, which the next step feeds).
   */
  reprime(keep: number): number[][] {
    const shift = Math.max(0, this.position - keep);
    const K = this.codebooks;
    const next = [new Array<number>(K).fill(this.pad)];
    for (let s = 1; s + shift < this.columns.length; s++) {
      next.push(this.columns[s + shift]!.map((tok, k) => (isForced(k, s, K) ? this.pad : tok)));
    }
    this.columns = next;
    this.frameBase += shift;
    this.forced = this.forced.slice(shift);
    return next.slice(0, -1);
  }
}
