// The self-attention window that the caller of the decoder graph owns: per layer, keys and values of
// `capacity` rows, each with room for `window` positions: [capacity, H, window, D]. A contiguous range of
// rows is handed to the decoder as subarray views (no copy); only the T new entries per row are written
// back after a run.
export class KvWindow {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  private readonly rowSize: number;

  constructor(
    readonly layers: number,
    readonly heads: number,
    readonly headDim: number,
    readonly window: number,
    readonly capacity: number,
  ) {
    this.rowSize = heads * window * headDim;
    this.keys = Array.from({ length: layers }, () => new Float32Array(capacity * this.rowSize));
    this.values = Array.from({ length: layers }, () => new Float32Array(capacity * this.rowSize));
  }

  /** Bytes held, for memory accounting. */
  get bytes(): number {
    return 2 * this.layers * this.capacity * this.rowSize * 4;
  }

  /** Layer l's keys and values for rows [start, start + rows), as views. */
  view(l: number, start: number, rows: number): { key: Float32Array; value: Float32Array } {
    const a = start * this.rowSize;
    const b = a + rows * this.rowSize;
    return { key: this.keys[l]!.subarray(a, b), value: this.values[l]!.subarray(a, b) };
  }

  /**
   * Stores the decoder's `new_kv` [L, 2, rows, H, T, D] for rows [start, start + rows), placing row r's
   * tokens at window positions at[r] .. at[r] + T. Rows with at[r] < 0 are not written (a batch may run
   * rows whose results are discarded).
   */
  write(newKv: Float32Array, start: number, rows: number, tokens: number, at: ArrayLike<number>): void {
    const { heads: H, headDim: D, window: W } = this;
    const span = tokens * D;
    for (let l = 0; l < this.layers; l++) {
      for (let kv = 0; kv < 2; kv++) {
        const dst = kv === 0 ? this.keys[l]! : this.values[l]!;
        for (let r = 0; r < rows; r++) {
          const pos = at[r]!;
          if (pos < 0) continue;
          if (pos + tokens > W) throw new RangeError(`row ${start + r}: positions ${pos}..${pos + tokens} exceed the window of ${W}`);
          for (let h = 0; h < H; h++) {
            const src = (((l * 2 + kv) * rows + r) * H + h) * tokens * D;
            dst.set(newKv.subarray(src, src + span), (((start + r) * H + h) * W + pos) * D);
          }
        }
      }
    }
  }
}
