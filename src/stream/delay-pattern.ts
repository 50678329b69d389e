// MusicGen's delay pattern: codebook k at sequence position s holds the code of audio frame s - k - 1
// (position 0 is the all-pad start column). A position is "forced" to the pad token when that frame does
// not exist: before the start (s <= k) and, for a sequence of fixed length, past the last frame. The one
// place that knows the geometry: the engine's token history, the offline generator and the frames fed to
// the codec all go through it.

/** True when codebook k at position s must hold the pad token. `length` is set for finite sequences. */
export function isForced(k: number, s: number, codebooks: number, length?: number): boolean {
  if (s <= k) return true;
  return length !== undefined && s >= length - codebooks + 1 + k;
}

/** The frame that codebook k's token at position s belongs to (may be negative or past the end). */
export function frameOf(k: number, s: number): number {
  return s - k - 1;
}

/** Number of complete audio frames in a sequence of `positions` columns (start column included). */
export function completeFrames(positions: number, codebooks: number): number {
  return Math.max(0, positions - codebooks);
}

/**
 * Un-delays a column-major token sequence: columns[s][k] -> codes [K, frames] (frame t of codebook k is
 * column t + k + 1). Returns codes for frames [from, to).
 */
export function undelay(columns: ArrayLike<ArrayLike<number>>, codebooks: number, from: number, to: number): BigInt64Array {
  const frames = to - from;
  const codes = new BigInt64Array(codebooks * frames);
  for (let k = 0; k < codebooks; k++) {
    for (let t = from; t < to; t++) codes[k * frames + (t - from)] = BigInt(columns[t + k + 1]![k]!);
  }
  return codes;
}

/** The K codes of frame t, read off the delayed columns (column t + k + 1 for codebook k). */
export function frameCodes(columns: ArrayLike<ArrayLike<number>>, codebooks: number, t: number): number[] {
  const codes = new Array<number>(codebooks);
  for (let k = 0; k < codebooks; k++) codes[k] = columns[t + k + 1]![k]!;
  return codes;
}

/**
 * Delays frames [frame][k] into the columns at positions 1..frames.length, the pad token where a codebook
 * has not reached its first frame yet. The late codebooks of the last frames fall past these columns.
 */
export function delayFrames(frames: ArrayLike<ArrayLike<number>>, codebooks: number, pad: number): number[][] {
  const columns: number[][] = [];
  for (let s = 1; s <= frames.length; s++) {
    const column = new Array<number>(codebooks);
    for (let k = 0; k < codebooks; k++) {
      const f = frameOf(k, s);
      column[k] = f >= 0 ? frames[f]![k]! : pad;
    }
    columns.push(column);
  }
  return columns;
}

/** The column at position s with every forced position (start side) set to pad, as the decoder is fed it. */
export function fedColumn(column: ArrayLike<number>, s: number, codebooks: number, pad: number): number[] {
  const fed = new Array<number>(codebooks);
  for (let k = 0; k < codebooks; k++) fed[k] = isForced(k, s, codebooks) ? pad : column[k]!;
  return fed;
}
