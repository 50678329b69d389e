// Runs a stream's history through rows that have not seen it, before the batched step: every row after
// an audio prompt or a re-prime, the row of a prompt added mid-stream otherwise.
import type { BatchLayout } from './batch-layout.ts';
import type { DecoderSetup } from './decode-step.ts';
import type { Stream } from './stream.ts';

/**
 * Re-primes a stream whose history fills the window (keeping `keepFrames`), then prefills the rows that
 * need it. Returns ms spent in decoder runs.
 */
export async function primeStream(setup: DecoderSetup, batch: BatchLayout, s: Stream, keepFrames: number): Promise<number> {
  s.reprimeIfFull(setup.window, keepFrames);
  let ms = 0;
  if (s.prefillDue) {
    ms += await prefillRows(setup, batch, s, 0, s.rows); // every row, new prompts' included
  } else {
    for (const text of s.unprimedPrompts) {
      const i = s.mix.prompts.findIndex((p) => p.text === text);
      if (i >= 0) ms += await prefillRows(setup, batch, s, s.layout.cond(i), 1);
    }
  }
  s.primed();
  return ms;
}

/** Runs the history's prefix through rows [row, row + R) of the stream, from position 0. Returns ms spent. */
async function prefillRows(setup: DecoderSetup, batch: BatchLayout, s: Stream, row: number, R: number): Promise<number> {
  const prefix = s.history.prefix();
  const T = prefix.length;
  if (T === 0) return 0;
  const K = s.history.codebooks;
  const start = batch.firstRow(s) + row;
  const ids = new BigInt64Array(R * K * T);
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (let t = 0; t < T; t++) ids[(r * K + k) * T + t] = BigInt(prefix[t]![k]!);
  const positions = BigInt64Array.from({ length: R * T }, (_, i) => BigInt(i % T));
  batch.pool.kv.reserve(T);
  const t0 = performance.now();
  const out = await setup.model.decode({
    rows: R,
    tokens: T,
    ids,
    positions,
    pastLength: new BigInt64Array(R),
    textTokens: setup.textTokens,
    ...batch.pool.views(start, R),
  });
  batch.pool.kv.write(out.newKv, start, R, T, new Array<number>(R).fill(0));
  return performance.now() - t0;
}
