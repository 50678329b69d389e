// The last stage of a step, per stream: every ready codec chunk decoded, resampled to 48 kHz and cut into
// Opus packets, each stamped with the control that generated its audio; the frames completed since the
// last packets go to the sink first (a resume's history).
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
    const pcm = s.resampler.process(audio);
    const packets = s.splice ? s.splice.packets(s.packetizer.push(s.splice.audio(pcm))) : s.packetizer.push(pcm);
    if (packets.length === 0) continue;
    const frames = s.takeNewFrames();
    if (frames) sink.history?.(s.id, frames.first, frames.codes);
    // A packet's control is that of the frame its audio starts with (the resampler's delay included).
    const stamped = packets.map((p) => ({ ...p, control: s.controlAt(timing.frameAt(p.pts, s.resampler.delay)) }));
    // The first packet after a start (or a stop) is due now; the packets before it are history.
    const t = now();
    s.sent(packets.length * PACKET_MS, t);
    sink.packets(s.id, stamped, s.lead(t));
  }
  return codecMs;
}
