// The self-attention window that the caller of the decoder graph owns: per layer, keys and values of
// `capacity` rows, each with room for up to `window` positions. A contiguous range of rows is handed to the
// decoder as subarray views (no copy); only the T new entries per row are written back after a run.
//
// Attention reads every slot it is given, valid or not, so the rows are laid out with a `stride` (slots per
// row and head: [capacity, H, stride, D]) that follows the longest row, rounded up to STRIDE_STEP, rather
// than the whole window: a step costs what the rows hold, not what they could hold. When the longest row
// outgrows the stride (every STRIDE_STEP positions) or shrinks (a re-prime, a row leaving), the rows are
// moved in place to the new stride: a copy of what they hold, at most once per STRIDE_STEP steps. Slots
// past a row's length hold stale but finite values (initial zeros or old entries), which the decoder masks.

/**
 * Slots the stride grows by. A relayout copies the pool (~2 F slots for rows of F positions), wasted
 * reads average STRIDE_STEP / 2 slots per step; 2 F / step + step / 2 is smallest near 2 sqrt(F): 32 for
 * windows of a few hundred positions.
 */
const STRIDE_STEP = 32;

export class KvWindow {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Slots per row and head in the current layout. */
  #stride = 0;
  /** Valid positions of each row (the entries at [0, length) are the row's history). */
  readonly #lengths: Int32Array;

  constructor(
    readonly layers: number,
    readonly heads: number,
    readonly headDim: number,
    readonly window: number,
    readonly capacity: number,
    /** Slots the stride grows by (STRIDE_STEP; tests use small steps to cross many boundaries). */
    readonly strideStep = STRIDE_STEP,
  ) {
    if (!Number.isInteger(strideStep) || strideStep < 1) throw new RangeError(`strideStep must be a positive integer, got ${strideStep}`);
    const size = capacity * heads * window * headDim;
    this.keys = Array.from({ length: layers }, () => new Float32Array(size));
    this.values = Array.from({ length: layers }, () => new Float32Array(size));
    this.#lengths = new Int32Array(capacity);
  }

  /** Bytes held, for memory accounting. */
  get bytes(): number {
    return 2 * this.layers * this.capacity * this.heads * this.window * this.headDim * 4;
  }

  /** Slots per row and head that the decoder reads now. */
  get stride(): number {
    return this.#stride;
  }

  /** Valid positions of `row`. */
  length(row: number): number {
    return this.#lengths[row]!;
  }

  /** Rows [start, start + rows) hold nothing valid any more (their sequence restarted). */
  forget(start: number, rows: number): void {
    this.#lengths.fill(0, start, start + rows);
  }

  /**
   * Makes room for writes up to position `positions` (exclusive) in any row: the stride becomes the longest
   * row or `positions`, whichever is more, rounded up to the stride step (at most the window).
   */
  reserve(positions: number): void {
    if (positions > this.window) throw new RangeError(`${positions} positions exceed the window of ${this.window}`);
    let longest = positions;
    for (const n of this.#lengths) if (n > longest) longest = n;
    const stride = Math.min(this.window, Math.ceil(longest / this.strideStep) * this.strideStep);
    if (stride !== this.#stride) this.#restride(stride);
  }

  /** Moves every row to `stride` slots per head, in place: upwards from the last row when growing, from the first when shrinking. */
  #restride(stride: number): void {
    const { heads: H, headDim: D } = this;
    const from = this.#stride;
    const chunks = this.capacity * H;
    for (const buffers of [this.keys, this.values]) {
      for (const a of buffers) {
        for (let j = 0; j < chunks; j++) {
          const i = stride > from ? chunks - 1 - j : j;
          const n = Math.min(this.#lengths[Math.floor(i / H)]!, stride);
          if (n > 0) a.copyWithin(i * stride * D, i * from * D, (i * from + n) * D);
        }
      }
    }
    this.#stride = stride;
  }

  /** Layer l's keys and values for rows [start, start + rows), as views of `stride` slots per head. */
  view(l: number, start: number, rows: number): { key: Float32Array; value: Float32Array } {
    const row = this.heads * this.#stride * this.headDim;
    const a = start * row;
    const b = a + rows * row;
    return { key: this.keys[l]!.subarray(a, b), value: this.values[l]!.subarray(a, b) };
  }

  /** Every layer's views of rows [start, start + rows), with their window length, as the decoder takes them. */
  views(start: number, rows: number): { window: number; pastKeys: Float32Array[]; pastValues: Float32Array[] } {
    const pastKeys: Float32Array[] = [];
    const pastValues: Float32Array[] = [];
    for (let l = 0; l < this.layers; l++) {
      const v = this.view(l, start, rows);
      pastKeys.push(v.key);
      pastValues.push(v.value);
    }
    return { window: this.#stride, pastKeys, pastValues };
  }

  /**
   * Stores the decoder's `new_kv` [L, 2, rows, H, T, D] for rows [start, start + rows), placing row r's
   * tokens at positions at[r] .. at[r] + T, which become the row's last: its length is at[r] + T. Rows with
   * at[r] < 0 are not written (a batch may run rows whose results are discarded). reserve() must have made
   * room.
   */
  write(newKv: Float32Array, start: number, rows: number, tokens: number, at: ArrayLike<number>): void {
    const { heads: H, headDim: D } = this;
    const W = this.#stride;
    const span = tokens * D;
    for (let r = 0; r < rows; r++) {
      const pos = at[r]!;
      if (pos >= 0 && pos + tokens > W)
        throw new RangeError(`row ${start + r}: positions ${pos}..${pos + tokens} exceed the reserved ${W} (call reserve first)`);
    }
    for (let l = 0; l < this.layers; l++) {
      for (let kv = 0; kv < 2; kv++) {
        const dst = kv === 0 ? this.keys[l]! : this.values[l]!;
        for (let r = 0; r < rows; r++) {
          const pos = at[r]!;
          if (pos < 0) continue;
          for (let h = 0; h < H; h++) {
            const src = (((l * 2 + kv) * rows + r) * H + h) * tokens * D;
            dst.set(newKv.subarray(src, src + span), (((start + r) * H + h) * W + pos) * D);
          }
        }
      }
    }
    for (let r = 0; r < rows; r++) if (at[r]! >= 0) this.#lengths[start + r] = at[r]! + tokens;
  }

  /** Copies row `from` of `source` (same shape but capacity) into row `to` of this window, at this window's stride. */
  copyRow(source: KvWindow, from: number, to: number): void {
    const { heads: H, headDim: D } = this;
    const n = source.length(from);
    if (n > this.#stride) throw new RangeError(`row ${from} holds ${n} positions, more than the reserved ${this.#stride}`);
    for (let l = 0; l < this.layers; l++) {
      for (const [dst, src] of [
        [this.keys[l]!, source.keys[l]!],
        [this.values[l]!, source.values[l]!],
      ] as const) {
        for (let h = 0; h < H; h++) {
          const s = (from * H + h) * source.stride * D;
          dst.set(src.subarray(s, s + n * D), (to * H + h) * this.#stride * D);
        }
      }
    }
    this.#lengths[to] = n;
  }
}
