// Re-creating a stream where it stood, in a fresh engine (after the engine worker died): its last frames
// become the new token history, and its audio continues at the next packet, seq and pts included.
//
// The audio chain restarts cold (codec LSTM, resampler, Opus encoder), so it is started earlier than the
// resume point and the audio before it is thrown away:
// - the codec decodes from CODEC_WARM_FRAMES frames before the first packet's audio (a zero LSTM state
//   converges onto the running one within that; the resampler's reach is a few ms);
// - the Opus encoder gets ENCODER_PRIME_PACKETS packets of audio before the resume point, which are
//   dropped, so that the first packet sent follows on from the listener's decoder state (its lookahead and
//   inter-frame prediction filled by the same audio, not the encoder's initial silence).
// Measured on the demo model (test/stream-resume.test.ts measures it too): the listener's decode of the
// spliced packets against the stream that never stopped, over the first 8 packets after the seam, 8 dB SNR
// with 1 priming packet, 23-26 with 2, 27-33 with 5 (the default), 27-35 with 10; 25 or 60 warm codec
// frames made no difference there.
import { PACKET_SAMPLES } from '../protocol/constants.ts';
import type { AudioTiming } from './audio-timing.ts';
import type { OpusPacket } from './opus-packetizer.ts';

/** Frames the codec decodes (and discards) before the audio of the first priming packet. */
const CODEC_WARM_FRAMES = 25;
/** Packets encoded (and dropped) before the first packet sent. */
const ENCODER_PRIME_PACKETS = 5;

/** What a stream needs to go on where it stood. */
export interface StreamResume {
  /** Codes [frame][k] of the stream's last complete frames; frames[0] is absolute frame `firstFrame`. */
  frames: number[][];
  firstFrame: number;
  /** seq of the first packet to send (its pts is seq * PACKET_SAMPLES): the one after the last one sent. */
  nextSeq: number;
  /** Version of the controls in effect: the next one applied is control + 1. */
  control: number;
  /** Audio the listener still has buffered (ms; <= 0: none): the first packet is due that much later. */
  leadMs: number;
}

/**
 * Where the restarted audio chain starts and what of it is thrown away. Sample j of the resampler's
 * output (zero delay) is then pts framePts(codecFrom) + j of the stream's timeline.
 */
export class ResumeSplice {
  /** First frame given to the codec. */
  readonly codecFrom: number;
  /** seq of the packetizer's first packet (those before nextSeq prime the encoder and are dropped). */
  readonly firstSeq: number;
  /** 48 kHz samples still to drop from the start of the resampler's output (negative: silence to add). */
  private trim: number;

  constructor(
    timing: AudioTiming,
    firstFrame: number,
    private readonly nextSeq: number,
  ) {
    this.firstSeq = Math.max(0, nextSeq - ENCODER_PRIME_PACKETS);
    const start = this.firstSeq * PACKET_SAMPLES;
    this.codecFrom = Math.max(firstFrame, timing.frameAt(start, 0) - CODEC_WARM_FRAMES);
    this.trim = start - timing.framePts(this.codecFrom);
  }

  /** The resampler's output as the packetizer takes it: the part before its first packet dropped. */
  audio(pcm: Float32Array): Float32Array {
    if (this.trim === 0) return pcm;
    if (this.trim < 0) {
      // The frames start after the resume point (a history that had just restarted): silence until they do.
      const out = new Float32Array(-this.trim + pcm.length);
      out.set(pcm, -this.trim);
      this.trim = 0;
      return out;
    }
    const drop = Math.min(this.trim, pcm.length);
    this.trim -= drop;
    return pcm.subarray(drop);
  }

  /** Packets to send: not those that only primed the encoder. */
  packets(packets: OpusPacket[]): OpusPacket[] {
    return packets[0] && packets[0].seq < this.nextSeq ? packets.filter((p) => p.seq >= this.nextSeq) : packets;
  }
}
