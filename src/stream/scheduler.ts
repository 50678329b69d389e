// Which streams step now: the generating streams (playing, not idle) below their lead target, the driest
// first, as many as fit the decoder's batch. Streams ahead of the target, paused or idle take no compute.
import type { Stream } from './stream.ts';

/** Lead for ordering: a stream that has sent nothing yet comes first. */
function leadOf(s: Stream, now: number): number {
  return s.unanchored ? -Infinity : s.lead(now);
}

/** Generating streams below `leadTargetMs` (every generating stream with `force`), the driest first. */
export function dueStreams(streams: readonly Stream[], now: number, leadTargetMs: number, force: boolean): Stream[] {
  return streams
    .filter((s) => s.generating && (force || s.unanchored || s.lead(now) < leadTargetMs))
    .sort((a, b) => leadOf(a, now) - leadOf(b, now));
}

/** The first due streams whose rows fit `maxRows` (at least one). */
export function pickBatch(due: readonly Stream[], maxRows: number): Stream[] {
  const selected: Stream[] = [];
  let rows = 0;
  for (const s of due) {
    if (rows + s.rows > maxRows && selected.length > 0) break;
    selected.push(s);
    rows += s.rows;
  }
  return selected;
}

/**
 * ms until some generating stream is due (0 = now: one is below its lead, has work before its next step,
 * or `building(s)`: has rows to build), or null when none is generating.
 */
export function msUntilDue(streams: readonly Stream[], now: number, leadTargetMs: number, building: (s: Stream) => boolean): number | null {
  let wait: number | null = null;
  for (const s of streams) {
    if (!s.generating) continue;
    const w = Math.max(0, s.lead(now) - leadTargetMs);
    if (s.wantsStepNow || building(s)) return 0;
    wait = wait === null ? w : Math.min(wait, w);
  }
  return wait;
}
