// MusicGen's sinusoidal position table, the one used by the decoder graph when a checkpoint has no
// embed_positions weights and by the random checkpoints that store it.

/**
 * MusicGen's sinusoidal position table [numPositions, dim]: row t = [cos(t f_i) for i < half,
 * sin(t f_i) for i < half], f_i = exp(-i ln(10000) / (half - 1)), with every step rounded to float32
 * as PyTorch computes it (odd dims get a zero last column).
 */
export function sinusoidalPositions(numPositions: number, dim: number, firstRow = 0, out?: Float32Array): Float32Array {
  const half = Math.floor(dim / 2);
  const table = out ?? new Float32Array(numPositions * dim);
  const step = Math.fround(-Math.log(10000) / (half - 1));
  const freq = new Float64Array(half);
  for (let i = 0; i < half; i++) freq[i] = Math.fround(Math.exp(Math.fround(i * step)));
  for (let r = 0; r < numPositions; r++) {
    const t = firstRow + r;
    const row = r * dim;
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(t * freq[i]!);
      table[row + i] = Math.cos(arg);
      table[row + half + i] = Math.sin(arg);
    }
    if (dim % 2 === 1) table[row + dim - 1] = 0;
  }
  return table;
}
