// MusicGen's delay pattern: codebook k at sequence position s holds the code of audio frame s - k - 1
// (position 0 is the all-pad start column). A position is "forced" to the pad token when that frame does
// not exist: before the start (s <= k) and, for a sequence of fixed length, past the last frame.

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
