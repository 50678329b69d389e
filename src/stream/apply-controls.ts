// The first stage of a step, per stream: a pending reset, then the queued controls whose prompts are
// encoded, in order, each announced with the pts of the first frame generated under it.

import { PACKET_MS } from '../protocol/constants.ts';
import type { AudioTiming } from './audio-timing.ts';
import type { EngineSink } from './engine-core.ts';
import type { Stream } from './stream.ts';

/** Returns true when the stream's rows changed (the pool must be laid out anew). */
export function applyControls(s: Stream, sink: EngineSink, timing: AudioTiming): boolean {
  s.restartIfPending();
  let rowsChanged = false;
  for (let c = s.takeReadyControl(); c; c = s.takeReadyControl()) {
    if (s.applyControl(c, Math.round(c.transitionMs / PACKET_MS))) rowsChanged = true;
    sink.applied(s.id, { control: s.control, prompts: s.prompts, config: s.config, pts: timing.framePts(s.history.nextFrame) });
  }
  return rowsChanged;
}
