// A stream's delayed token sequence since its last (re)start, with what the engine needs from it: the
// column to feed next, the frames that became complete, the re-prime that bounds it, and the tokens an
// audio prompt forces. The delay pattern's geometry comes from delay-pattern.ts.
import { completeFrames, delayFrames, fedColumn, frameCodes, frameOf } from './delay-pattern.ts';

/** A frame completed by the sequence: its absolute index and its K codes. */
export interface CompletedFrame {
  frame: number;
  codes: number[];
}

export class TokenHistory {
  /** columns[s][k]: the token of codebook k at local position s; column 0 is the all-pad start. */
  private columns: number[][];
  /** Absolute frame index of local frame 0 (grows on re-prime; set anew on reset). */
  #frameBase: number;
  /** Un-delayed codes [frame][k] of an audio prompt, forced into the sequence as it passes them. */
  private forced: number[][] = [];

  constructor(
    readonly codebooks: number,
    readonly pad: number,
    frameBase = 0,
  ) {
    this.columns = [new Array<number>(codebooks).fill(pad)];
    this.#frameBase = frameBase;
  }

  /** Absolute frame index of local frame 0. */
  get frameBase(): number {
    return this.#frameBase;
  }

  /** Local position of the column fed at the next step (= number of KV entries before it). */
  get position(): number {
    return this.columns.length - 1;
  }

  /** Absolute index of the frame whose first codebook the next step samples. */
  get nextFrame(): number {
    return this.#frameBase + this.position;
  }

  /** Tokens fed at the next step: the last column with not-yet-valid positions forced to pad. */
  nextInput(): number[] {
    const s = this.position;
    return fedColumn(this.columns[s]!, s, this.codebooks, this.pad);
  }

  /**
   * Starts a fresh sequence from an audio prompt's codes [frame][k]. Returns the frames already complete
   * in it (the rest complete as the next steps pass them).
   */
  startFrom(frames: number[][]): CompletedFrame[] {
    this.forced = frames;
    // Positions 1..F hold codebook 0's frames; codebook k lags by k, its missing tail is forced later.
    for (const column of delayFrames(frames, this.codebooks, this.pad)) this.columns.push(column);
    const complete = completeFrames(this.columns.length, this.codebooks);
    return frames.slice(0, complete).map((codes, f) => ({ frame: this.#frameBase + f, codes: [...codes] }));
  }

  /** Columns before the one fed next, as they were fed (forced positions as pad): what a prefill must run
   * through the decoder. */
  prefix(): number[][] {
    const { codebooks: K, pad } = this;
    return this.columns.slice(0, -1).map((column, s) => fedColumn(column, s, K, pad));
  }

  /**
   * Appends the sampled column; returns the frame completed by it, if any (frame n - K becomes complete
   * when column n arrives). Positions an audio prompt covers keep the prompt's codes.
   */
  append(tokens: number[]): CompletedFrame | null {
    const s = this.columns.length;
    const K = this.codebooks;
    for (let k = 0; k < K; k++) {
      const f = frameOf(k, s);
      if (f >= 0 && f < this.forced.length) tokens[k] = this.forced[f]![k]!;
    }
    this.columns.push(tokens);
    const f = completeFrames(s + 1, K) - 1;
    if (f < 0) return null;
    return { frame: this.#frameBase + f, codes: frameCodes(this.columns, K, f) };
  }

  /**
   * Drops all but the last `keep` frames: the sequence restarts at position 0 with those frames (and the
   * partial frames after them) as its prefix, as audiocraft does beyond 30 s. The next prefill runs the
   * new prefix (every column but the last, which the next step feeds).
   */
  reprime(keep: number): void {
    const shift = Math.max(0, this.position - keep);
    const { codebooks: K, pad } = this;
    const next = [new Array<number>(K).fill(pad)];
    for (let s = 1; s + shift < this.columns.length; s++) next.push(fedColumn(this.columns[s + shift]!, s, K, pad));
    this.columns = next;
    this.#frameBase += shift;
    this.forced = this.forced.slice(shift);
  }
}
