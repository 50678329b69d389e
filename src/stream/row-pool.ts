// Storage for every decoder row of every stream: the self-attention windows, the cross-attention
// keys/values of each row's prompt, and the cross mask. Rows of one stream are contiguous and streams
// follow each other, so a batch is one contiguous range handed to the decoder as views (no copy).
// When the set of rows changes (a stream or a prompt comes or goes) the pool is laid out anew: a copy
// that is rare and proportional to the pool, never part of a step.
import { KvWindow } from '../models/kv-window.ts';

export interface PoolShape {
  layers: number;
  heads: number;
  headDim: number;
  /** self-attention window (positions) */
  window: number;
  /** text tokens per row's cross-attention */
  textTokens: number;
}

/** Cross-attention inputs of one prompt: per layer [H, S, D] with S <= textTokens. */
export interface PromptEncoding {
  tokens: number;
  keys: Float32Array[];
  values: Float32Array[];
}

/** Cuts an encoding to the pool's text length (keeping the first tokens). */
export function fitEncoding(e: PromptEncoding, shape: PoolShape): PromptEncoding {
  const S = shape.textTokens;
  if (e.tokens <= S) return e;
  const { heads: H, headDim: D } = shape;
  const cut = (a: Float32Array): Float32Array => {
    const out = new Float32Array(H * S * D);
    for (let h = 0; h < H; h++) out.set(a.subarray(h * e.tokens * D, (h * e.tokens + S) * D), h * S * D);
    return out;
  };
  return { tokens: S, keys: e.keys.map(cut), values: e.values.map(cut) };
}

export class RowPool {
  kv: KvWindow;
  crossKeys: Float32Array[];
  crossValues: Float32Array[];
  crossMask: BigInt64Array;

  constructor(
    readonly shape: PoolShape,
    capacity = 0,
  ) {
    this.kv = new KvWindow(shape.layers, shape.heads, shape.headDim, shape.window, capacity);
    const crossSize = capacity * shape.heads * shape.textTokens * shape.headDim;
    this.crossKeys = Array.from({ length: shape.layers }, () => new Float32Array(crossSize));
    this.crossValues = Array.from({ length: shape.layers }, () => new Float32Array(crossSize));
    this.crossMask = new BigInt64Array(capacity * shape.textTokens);
  }

  get capacity(): number {
    return this.kv.capacity;
  }

  get bytes(): number {
    return this.kv.bytes + 2 * this.crossKeys.reduce((a, c) => a + c.byteLength, 0) + this.crossMask.byteLength;
  }

  /** A new pool where row i is a copy of old row sources[i] (null: zeros). */
  relayout(sources: (number | null)[]): RowPool {
    const next = new RowPool(this.shape, sources.length);
    const { heads: H, headDim: D, textTokens: S, layers: L } = this.shape;
    const crossRow = H * S * D;
    next.kv.reserve(Math.max(0, ...sources.map((from) => (from === null ? 0 : this.kv.length(from)))));
    sources.forEach((from, to) => {
      if (from === null) return;
      next.kv.copyRow(this.kv, from, to);
      for (let l = 0; l < L; l++) {
        next.crossKeys[l]!.set(this.crossKeys[l]!.subarray(from * crossRow, (from + 1) * crossRow), to * crossRow);
        next.crossValues[l]!.set(this.crossValues[l]!.subarray(from * crossRow, (from + 1) * crossRow), to * crossRow);
      }
      next.crossMask.set(this.crossMask.subarray(from * S, (from + 1) * S), to * S);
    });
    return next;
  }

  /** Sets row's cross-attention inputs; null is the null condition (zeros, fully masked). */
  setPrompt(row: number, encoding: PromptEncoding | null): void {
    const { heads: H, headDim: D, textTokens: S, layers: L } = this.shape;
    const crossRow = H * S * D;
    for (let l = 0; l < L; l++) {
      const k = this.crossKeys[l]!.subarray(row * crossRow, (row + 1) * crossRow);
      const v = this.crossValues[l]!.subarray(row * crossRow, (row + 1) * crossRow);
      k.fill(0);
      v.fill(0);
      if (!encoding) continue;
      const n = encoding.tokens;
      if (n > S) throw new RangeError(`prompt has ${n} tokens, more than the ${S} the pool holds`);
      for (let h = 0; h < H; h++) {
        k.set(encoding.keys[l]!.subarray(h * n * D, (h + 1) * n * D), h * S * D);
        v.set(encoding.values[l]!.subarray(h * n * D, (h + 1) * n * D), h * S * D);
      }
    }
    const mask = this.crossMask.subarray(row * S, (row + 1) * S);
    mask.fill(0n);
    if (encoding) mask.fill(1n, 0, encoding.tokens);
  }

  /** Views of rows [start, start + rows) for one decoder run (reserve the window's positions first). */
  views(
    start: number,
    rows: number,
  ): {
    window: number;
    pastKeys: Float32Array[];
    pastValues: Float32Array[];
    crossKeys: Float32Array[];
    crossValues: Float32Array[];
    crossMask: BigInt64Array;
  } {
    const { heads: H, headDim: D, textTokens: S } = this.shape;
    const crossRow = H * S * D;
    return {
      ...this.kv.views(start, rows),
      crossKeys: this.crossKeys.map((a) => a.subarray(start * crossRow, (start + rows) * crossRow)),
      crossValues: this.crossValues.map((a) => a.subarray(start * crossRow, (start + rows) * crossRow)),
      crossMask: this.crossMask.subarray(start * S, (start + rows) * S),
    };
  }
}
