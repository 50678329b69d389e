// Builds rows that have not seen their stream's whole history: every row after an audio prompt, a
// re-prime or a reset, the row of a prompt that a control brings in mid-stream. The work is spread over
// steps: each step runs at most a budget of row-tokens of a stream's history through such rows (decoder
// runs of T > 1 tokens from the position each row has reached), so no step of any stream costs much more
// than an ordinary one. A row has seen the history when its window holds as many positions as the
// history has; the stream samples only when every row of its layout has (see EngineCore.step).
import type { BatchLayout } from './batch-layout.ts';
import type { DecoderSetup } from './decode-step.ts';
import type { Stream } from './stream.ts';

/** What a stream's catch-up did this step. */
export interface CatchUp {
  /** Row-tokens run. */
  tokens: number;
  /** ms in decoder runs. */
  ms: number;
}

/**
 * Re-primes the stream if its history fills the window (keeping `keepFrames`), forgets rows of an older
 * sequence, then runs up to about `tokensPerStep` row-tokens of the history (at least one token for a
 * group of rows; twice as many while the stream cannot sample) through the rows behind it, first rows
 * first, in groups that have reached the same position (one decoder run per group).
 */
export async function catchUp(
  setup: DecoderSetup,
  batch: BatchLayout,
  s: Stream,
  keepFrames: number,
  tokensPerStep: number,
): Promise<CatchUp> {
  s.reprimeIfFull(setup.window, keepFrames);
  const kv = batch.pool.kv;
  const first = batch.firstRow(s);
  if (s.takeStaleRows()) kv.forget(first, s.rows);
  const end = s.history.position;
  // A stream whose own rows are behind does not sample this step: its catch-up takes the place of its
  // ordinary run, and may cost up to two of them (twice the budget; docs/benchmarks.md).
  const budget = layoutReady(batch, s) ? tokensPerStep : 2 * tokensPerStep;
  const done: CatchUp = { tokens: 0, ms: 0 };
  let r = 0;
  while (r < s.rows && done.tokens < budget) {
    const at = kv.length(first + r);
    if (at > end) throw new Error(`stream ${s.id}: row ${r} holds ${at} positions, its history ${end} (internal)`);
    if (at === end) {
      r++;
      continue;
    }
    let n = 1;
    while (r + n < s.rows && kv.length(first + r + n) === at) n++;
    const T = Math.min(end - at, Math.max(1, Math.floor((budget - done.tokens) / n)));
    done.ms += await runRows(setup, batch, s, r, n, at, T);
    done.tokens += n * T;
    r += n;
  }
  return done;
}

/** Whether some row of the stream (prompts being prepared included) has not seen the whole history. */
export function rowsBehind(batch: BatchLayout, s: Stream): boolean {
  if (s.rowsStale) return true;
  const first = batch.firstRow(s);
  for (let r = 0; r < s.rows; r++) if (batch.pool.kv.length(first + r) < s.history.position) return true;
  return false;
}

/** Whether the stream's row for a prompt, as laid out now, has seen the whole history. */
export function promptRowReady(batch: BatchLayout, s: Stream, text: string): boolean {
  const row = batch.promptRow(s, text);
  return row !== undefined && batch.pool.kv.length(row) === s.history.position;
}

/** Whether every row of the stream's layout has seen the whole history (the stream can sample). */
export function layoutReady(batch: BatchLayout, s: Stream): boolean {
  const first = batch.firstRow(s);
  for (let r = 0; r < s.layout.rows; r++) if (batch.pool.kv.length(first + r) !== s.history.position) return false;
  return true;
}

/** Runs history positions [at, at + T) through rows [row, row + R) of the stream. Returns ms spent. */
async function runRows(setup: DecoderSetup, batch: BatchLayout, s: Stream, row: number, R: number, at: number, T: number): Promise<number> {
  const columns = s.history.prefix().slice(at, at + T);
  const K = s.history.codebooks;
  const start = batch.firstRow(s) + row;
  const ids = new BigInt64Array(R * K * T);
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (let t = 0; t < T; t++) ids[(r * K + k) * T + t] = BigInt(columns[t]![k]!);
  const positions = BigInt64Array.from({ length: R * T }, (_, i) => BigInt(at + (i % T)));
  batch.pool.kv.reserve(at + T);
  const t0 = performance.now();
  const out = await setup.model.decode({
    rows: R,
    tokens: T,
    ids,
    positions,
    pastLength: new BigInt64Array(R).fill(BigInt(at)),
    textTokens: setup.textTokens,
    ...batch.pool.views(start, R),
  });
  batch.pool.kv.write(out.newKv, start, R, T, new Array<number>(R).fill(at));
  return performance.now() - t0;
}
