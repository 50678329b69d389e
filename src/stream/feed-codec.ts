// A frame the token history completed goes to the stream's codec, and its codes to the sink when the
// stream taps them.
import type { EngineSink } from './engine-core.ts';
import type { Stream } from './stream.ts';
import type { CompletedFrame } from './token-history.ts';

export function feedCodec(s: Stream, done: CompletedFrame, sink: EngineSink): void {
  s.completeFrame(done.frame, done.codes);
  if (s.tapCodes) sink.codes(s.id, done.frame, done.codes);
}
