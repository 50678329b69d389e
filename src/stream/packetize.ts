// The last stage of a step, per stream: every ready codec chunk decoded, resampled to 48 kHz and cut into
// Opus packets, each stamped with the control that generated its audio.
import { PACKET_MS } from '../protocol/constants.ts';
import type { AudioTiming } from './audio-timing.ts';
import type { EngineSink } from './engine-core.ts';
import type { Stream } from './stream.ts';

/** Sends the stream's ready audio to the sink; returns ms spent in codec runs. */
export async function packetize(s: Stream, timing: AudioTiming, sink: EngineSink, now: () => number): Promise<number> {
  let codecMs = 0;
  while (s.codec.ready()) {
    const t0 = performance.now();
    const audio = await s.codec.decodeNext();
    codecMs += performance.now() - t0;
    if (!audio) break;
    const packets = s.packetizer.push(s.resampler.process(audio));
    if (packets.length === 0) continue;
    // A packet's control is that of the frame its audio starts with (the resampler's delay included).
    const stamped = packets.map((p) => ({ ...p, control: s.controlAt(timing.frameAt(p.pts, s.resampler.delay)) }));
    // The first packet after a start (or a stop) is due now; the packets before it are history.
    s.sent(packets.length * PACKET_MS, now());
    sink.packets(s.id, stamped);
  }
  return codecMs;
}
