// The KV window's layout: rows at a stride that follows the longest row, moved in place when it grows or
// shrinks. Every row's entries survive every move, bit for bit; writes past the reserved stride are refused.
// (That the decoder reads the moved layout correctly is checked against the reference in model.test.ts.)
import { describe, expect, it } from 'vitest';
import { KvWindow } from '../src/models/kv-window.ts';

const [L, H, D] = [2, 3, 4];

/** A value that names its layer, kind, row, head, position and channel. */
const tag = (l: number, kv: number, row: number, h: number, pos: number, d: number): number =>
  ((((l * 2 + kv) * 16 + row) * 8 + h) * 64 + pos) * 8 + d;

/** new_kv [L, 2, rows, H, T, D] for rows [start, start + rows) with T tokens from positions at[r]. */
function newKv(start: number, rows: number, tokens: number, at: number[]): Float32Array {
  const out = new Float32Array(L * 2 * rows * H * tokens * D);
  for (let l = 0; l < L; l++)
    for (let kv = 0; kv < 2; kv++)
      for (let r = 0; r < rows; r++)
        for (let h = 0; h < H; h++)
          for (let t = 0; t < tokens; t++)
            for (let d = 0; d < D; d++)
              out[((((l * 2 + kv) * rows + r) * H + h) * tokens + t) * D + d] = tag(l, kv, start + r, h, at[r]! + t, d);
  return out;
}

/** Checks that each row holds its tagged entries at [0, length) at the current stride. */
function expectIntact(w: KvWindow, lengths: number[]): void {
  for (let l = 0; l < L; l++)
    for (let kv = 0; kv < 2; kv++)
      for (let row = 0; row < lengths.length; row++) {
        expect(w.length(row)).toBe(lengths[row]);
        const view = kv === 0 ? w.view(l, row, 1).key : w.view(l, row, 1).value;
        expect(view.length).toBe(H * w.stride * D);
        for (let h = 0; h < H; h++)
          for (let pos = 0; pos < lengths[row]!; pos++)
            for (let d = 0; d < D; d++) expect(view[(h * w.stride + pos) * D + d]).toBe(tag(l, kv, row, h, pos, d));
      }
}

describe('KvWindow', () => {
  it('keeps every row intact while the stride grows step by step and shrinks after a re-prime', () => {
    const w = new KvWindow(L, H, D, 20, 3, 4);
    // Rows of different lengths: prefills of 2, 5 and 0 positions.
    w.reserve(5);
    expect(w.stride).toBe(8);
    w.write(newKv(0, 2, 2, [0, 0]), 0, 2, 2, [0, 0]);
    w.write(newKv(1, 1, 5, [0]), 1, 1, 5, [0]);
    const lengths = [2, 5, 0];
    expectIntact(w, lengths);
    // Single steps for every row (row 2 from position 0) until row 1 fills the window: the stride grows
    // 8 -> 12 -> 16 -> 20 and stops at the window.
    const strides = [w.stride];
    while (lengths[1]! < 20) {
      w.reserve(Math.max(...lengths) + 1);
      if (w.stride !== strides.at(-1)) strides.push(w.stride);
      w.write(newKv(0, 3, 1, lengths), 0, 3, 1, lengths);
      for (let r = 0; r < 3; r++) lengths[r]!++;
      expectIntact(w, lengths);
    }
    expect(strides).toEqual([8, 12, 16, 20]);
    // A re-prime of rows 0 and 1 to 3 positions, row 2 keeps 15: the stride shrinks to 16.
    w.write(newKv(0, 2, 3, [0, 0]), 0, 2, 3, [0, 0]);
    w.reserve(1);
    expect(w.stride).toBe(16);
    expectIntact(w, [3, 3, 15]);
    // Row 2 re-primed too: down to 4.
    w.write(newKv(2, 1, 3, [0]), 2, 1, 3, [0]);
    w.reserve(1);
    expect(w.stride).toBe(4);
    expectIntact(w, [3, 3, 3]);
  });

  it('skips rows marked -1 and refuses writes past the reserved stride or the window', () => {
    const w = new KvWindow(L, H, D, 10, 2, 4);
    w.reserve(1);
    w.write(newKv(0, 2, 1, [0, 0]), 0, 2, 1, [0, -1]);
    expect([w.length(0), w.length(1)]).toEqual([1, 0]);
    expect(() => w.write(newKv(0, 2, 1, [4, 4]), 0, 2, 1, [4, -1])).toThrow(/exceed the reserved 4 \(call reserve first\)/);
    expect(() => w.reserve(11)).toThrow(/11 positions exceed the window of 10/);
    expectIntact(w, [1, 0]);
  });

  it('copyRow moves a row into another window at that window`s stride', () => {
    const a = new KvWindow(L, H, D, 16, 2, 4);
    a.reserve(9);
    a.write(newKv(0, 2, 9, [0, 0]), 0, 2, 9, [0, 0]);
    // The copy of row 1 lands in row 0 of b, row 0 in row 1: tags name the source row, so compare by hand.
    const b = new KvWindow(L, H, D, 16, 2, 4);
    b.reserve(9);
    expect(b.stride).toBe(12);
    b.copyRow(a, 1, 0);
    b.copyRow(a, 0, 1);
    for (let l = 0; l < L; l++)
      for (let h = 0; h < H; h++)
        for (let pos = 0; pos < 9; pos++)
          for (let d = 0; d < D; d++) {
            expect(b.view(l, 0, 1).key[(h * 12 + pos) * D + d]).toBe(tag(l, 0, 1, h, pos, d));
            expect(b.view(l, 1, 1).value[(h * 12 + pos) * D + d]).toBe(tag(l, 1, 0, h, pos, d));
          }
    const small = new KvWindow(L, H, D, 16, 1, 4);
    small.reserve(4);
    expect(() => small.copyRow(a, 0, 0)).toThrow(/holds 9 positions, more than the reserved 4/);
  });
});
