// The batched decoder run of a step: one new column for every picked stream, all of their rows in one
// contiguous range of the pool, then the new keys and values written back into the windows of the rows
// that have seen the whole history.
import type { ModelBundle } from '../models/model-bundle.ts';
import type { BatchLayout, RowSpan } from './batch-layout.ts';
import type { RowPool } from './row-pool.ts';
import type { Stream } from './stream.ts';

/** What a decoder run over the pool needs besides its rows. */
export interface DecoderSetup {
  model: ModelBundle;
  /** Self-attention window (positions) of the pool. */
  window: number;
  /** Text tokens per row of the pool. */
  textTokens: number;
}

export interface DecodedStep extends RowSpan {
  /** Logits [rows, K, V] of the span's rows. */
  logits: Float32Array;
  newKv: Float32Array;
  /** Where each row's new K/V entry goes; -1 for rows in the span that were not picked (discarded). */
  writeAt: number[];
  /** ms inside the decoder run */
  ms: number;
}

/** Feeds each picked stream's next column to its rows (one token each) in one decoder run. */
export async function decodeStep(setup: DecoderSetup, batch: BatchLayout, selected: readonly Stream[]): Promise<DecodedStep> {
  const span = batch.span(selected);
  const { first } = span;
  const d = setup.model.config.decoder;
  const K = d.numCodebooks;
  const ids = new BigInt64Array(span.rows * K).fill(BigInt(d.padId));
  const positions = new BigInt64Array(span.rows);
  const pastLength = new BigInt64Array(span.rows);
  const writeAt = new Array<number>(span.rows).fill(-1);
  for (const s of selected) {
    const input = s.history.nextInput();
    const p = s.history.position;
    const r0 = batch.firstRow(s) - first;
    for (let r = r0; r < r0 + s.rows; r++) {
      for (let k = 0; k < K; k++) ids[r * K + k] = BigInt(input[k]!);
      positions[r] = BigInt(p);
      pastLength[r] = BigInt(p);
      // A row still being built (a prompt being prepared) keeps nothing: its window is behind.
      writeAt[r] = batch.pool.kv.length(first + r) === p ? p : -1;
    }
  }
  // Rows at the end that keep nothing (the last stream's prompts being prepared) are not run at all.
  let R = span.rows;
  while (R > 0 && writeAt[R - 1]! < 0) R--;
  writeAt.length = R;
  batch.pool.kv.reserve(Math.max(...writeAt) + 1);
  const t0 = performance.now();
  const out = await setup.model.decode({
    rows: R,
    tokens: 1,
    ids: ids.subarray(0, R * K),
    positions: positions.subarray(0, R),
    pastLength: pastLength.subarray(0, R),
    textTokens: setup.textTokens,
    ...batch.pool.views(first, R),
  });
  return { first, rows: R, logits: out.logits, newKv: out.newKv, writeAt, ms: performance.now() - t0 };
}

/** Writes the step's new keys and values into the picked rows' windows. */
export function writeKv(pool: RowPool, step: DecodedStep): void {
  pool.kv.write(step.newKv, step.first, step.rows, 1, step.writeAt);
}
