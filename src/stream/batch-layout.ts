// Where each stream's rows sit in the row pool: streams one after another, idle ones first and then the
// others in creation order, each stream's rows contiguous and in its RowLayout order (then the rows of
// prompts being prepared), so that any set of streams is one contiguous range of rows and no step's range
// runs over an idle stream's rows. Owns the pool and lays it out anew when rows come or go (a stream or a
// prompt) or a stream goes idle. A row keeps its window (and how much of the history it has seen) across
// layouts; a new row starts empty, and prefill.ts builds it from the history.
import type { RowLayout } from './row-layout.ts';
import { type PoolShape, type PromptEncoding, RowPool } from './row-pool.ts';
import type { Stream } from './stream.ts';

/** A contiguous range of pool rows. */
export interface RowSpan {
  first: number;
  rows: number;
}

export class BatchLayout {
  #pool: RowPool;
  /** pool row of each row key ("stream\0uncond" / "stream\0p:text") */
  #rows = new Map<string, number>();
  readonly #firstRow = new Map<Stream, number>();
  #dirty = false;

  constructor(shape: PoolShape) {
    this.#pool = new RowPool(shape);
  }

  get pool(): RowPool {
    return this.#pool;
  }

  /** True when the rows changed since the last relayout. */
  get dirty(): boolean {
    return this.#dirty;
  }

  markDirty(): void {
    this.#dirty = true;
  }

  /** Pool row of the stream's first row. */
  firstRow(s: Stream): number {
    return this.#firstRow.get(s)!;
  }

  /** Pool row of the stream's row for a prompt, if it has one in the pool as laid out. */
  promptRow(s: Stream, text: string): number | undefined {
    return this.#rows.get(promptKey(s, text));
  }

  /** True when streams that are not idle lie both before and after `s`: a step's range may run over its rows. */
  amidActive(s: Stream): boolean {
    const at = this.#firstRow.get(s);
    if (at === undefined) return false;
    let before = false;
    let after = false;
    for (const [x, first] of this.#firstRow) {
      if (x.idle) continue;
      if (first < at) before = true;
      if (first > at) after = true;
    }
    return before && after;
  }

  /** The range of rows covering every stream of `streams` (and whatever lies between them). */
  span(streams: readonly Stream[]): RowSpan {
    let first = Infinity;
    let last = -Infinity;
    for (const s of streams) {
      const at = this.#firstRow.get(s)!;
      if (at < first) first = at;
      if (at + s.rows > last) last = at + s.rows;
    }
    return { first, rows: last - first };
  }

  /**
   * Lays the pool out for `streams` (idle ones first) and their current prompts: rows that stay keep their windows and
   * prompts, new rows get their prompt's cross-attention inputs (or the null condition) and empty windows.
   */
  relayout(streams: readonly Stream[]): void {
    const old = this.#rows;
    const keys: string[] = [];
    const sources: (number | null)[] = [];
    const fresh: { row: number; encoding: PromptEncoding | null }[] = [];
    this.#firstRow.clear();
    for (const s of [...streams.filter((x) => x.idle), ...streams.filter((x) => !x.idle)]) {
      this.#firstRow.set(s, keys.length);
      const layout: RowLayout = s.layout;
      const prompts = [...s.mix.prompts, ...s.preparing];
      for (let r = 0; r < s.rows; r++) {
        // Layout rows (prompts, then the null condition), then the prompts being prepared.
        const i = r < layout.rows ? layout.promptOf(r) : s.mix.prompts.length + (r - layout.rows);
        const p = i < 0 ? null : prompts[i]!;
        const key = p ? promptKey(s, p.text) : `${s.id}\0uncond`;
        const was = old.get(key);
        keys.push(key);
        sources.push(was ?? null);
        // A prompt added mid-stream conditions the whole history, as MusicGen's p(next | history, text)
        // does: its new row's window is built from the history under its own text, not copied from
        // another prompt's row, whose keys and values past the first layer carry that other text.
        if (was === undefined) fresh.push({ row: keys.length - 1, encoding: p ? p.encoding : null });
      }
    }
    this.#pool = this.#pool.relayout(sources);
    for (const f of fresh) this.#pool.setPrompt(f.row, f.encoding);
    this.#rows = new Map(keys.map((k, i) => [k, i]));
    this.#dirty = false;
  }
}

function promptKey(s: Stream, text: string): string {
  return `${s.id}\0p:${text}`;
}
