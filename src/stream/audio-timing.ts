// The engine's audio clock: 48 kHz output in 20 ms Opus packets, and the conversion between codec frames
// (hop samples at the codec's rate) and 48 kHz sample indices (pts).
import { SAMPLE_RATE } from '../protocol/constants.ts';

export class AudioTiming {
  constructor(
    /** The codec's sample rate (32 kHz for MusicGen's EnCodec). */
    readonly codecRate: number,
    /** Codec samples per frame. */
    readonly hop: number,
  ) {}

  /** Codec frames per second. */
  get frameRate(): number {
    return this.codecRate / this.hop;
  }

  /** 48 kHz sample index at which absolute frame `frame` starts. */
  framePts(frame: number): number {
    return Math.round((frame * this.hop * SAMPLE_RATE) / this.codecRate);
  }

  /** The frame whose audio the 48 kHz sample `pts` comes from, given the resampler's delay (output samples). */
  frameAt(pts: number, resamplerDelay: number): number {
    const codecSample = ((pts - resamplerDelay) * this.codecRate) / SAMPLE_RATE;
    return Math.max(0, Math.floor(codecSample / this.hop));
  }
}
