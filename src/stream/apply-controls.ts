// The first stage of a step, per stream: a pending reset, then the queued controls whose prompts are
// encoded, in order, each announced with the pts of the first frame generated under it. A control that
// brings new prompts into a stream with a history waits until their rows have been built from it
// (prefill.ts spreads that over steps); the stream goes on under its current prompts meanwhile.

import { PACKET_MS } from '../protocol/constants.ts';
import type { AudioTiming } from './audio-timing.ts';
import type { EngineSink } from './engine-core.ts';
import type { Stream } from './stream.ts';

/**
 * Returns true when the stream's rows changed (the pool must be laid out anew). `rowReady(text)`: the
 * row of that prompt has seen the whole history.
 */
export function applyControls(s: Stream, sink: EngineSink, timing: AudioTiming, rowReady: (text: string) => boolean): boolean {
  s.restartIfPending();
  let rowsChanged = false;
  for (let c = s.nextReadyControl(); c; c = s.nextReadyControl()) {
    const building = s.history.position > 0 && s.newTexts(c).some((t) => !rowReady(t));
    if (building) {
      if (s.prepare(c)) rowsChanged = true;
      break;
    }
    if (s.applyControl(c, Math.round(c.transitionMs / PACKET_MS))) rowsChanged = true;
    sink.applied(s.id, {
      control: s.control,
      prompts: s.prompts,
      config: s.config,
      pts: timing.framePts(s.history.nextFrame),
      ...(c.tag !== undefined && { tag: c.tag }),
    });
  }
  return rowsChanged;
}
