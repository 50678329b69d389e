// 48 kHz mono float -> 20 ms Opus packets (@discordjs/opus, libopus).
//
// @discordjs/opus passes buffer.length / 2 / channels to opus_encode as the frame size, and an invalid
// size (anything but a valid Opus frame, an empty buffer included) aborts the whole process with an
// uncatchable error. So the only path to the encoder is encodeFrame(), which takes one full frame of
// PACKET_SAMPLES mono samples from the frame cutter, writes it into a preallocated int16 buffer of
// exactly PACKET_SAMPLES * channels samples, and asserts that length right before encode().
import opus from '@discordjs/opus';
import { PACKET_SAMPLES, SAMPLE_RATE } from '../protocol/constants.ts';

const { OpusEncoder } = opus;

/**
 * Encoder lookahead at 48 kHz (OPUS_GET_LOOKAHEAD): Fs/400 (2.5 ms CELT overlap) + Fs/250 (4 ms delay
 * compensation) = 312 for OPUS_APPLICATION_AUDIO, which @discordjs/opus always uses. @discordjs/opus has
 * no getter for it (applyEncoderCTL passes its value as an int, so a GET ctl would hand libopus a bogus
 * pointer); test/opus-packetizer.test.ts measures the delay of the decoded signal instead.
 */
export const OPUS_PRE_SKIP = 312;

const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_SIGNAL = 4024;
const OPUS_SIGNAL_MUSIC = 3002;

export interface OpusPacket {
  /** firstSeq, firstSeq + 1, ... for the packets of one packetizer. */
  seq: number;
  /** 48 kHz sample index of the packet's first sample: seq * 960 (the pushed input starts at firstSeq's). */
  pts: number;
  data: Uint8Array;
}

export interface OpusPacketizerOptions {
  channels: 1 | 2;
  /** Target bitrate in bits per second (6000 .. 510000). */
  bitrate: number;
  /** libopus complexity 0..10 (default: libopus's own, 10 at this rate). */
  complexity?: number;
  /** seq of the first packet (default 0): a stream that goes on from a packet already sent (resume.ts). */
  firstSeq?: number;
}

function checkBitrate(bps: number): void {
  if (!Number.isInteger(bps) || bps < 6000 || bps > 510000)
    throw new RangeError(`Opus bitrate must be an integer in 6000..510000 bps (got ${bps})`);
}

export class OpusPacketizer {
  readonly channels: 1 | 2;
  /** Samples at 48 kHz that the decoder must drop at the start (the OpusHead pre-skip). */
  readonly preSkip = OPUS_PRE_SKIP;
  private readonly encoder: InstanceType<typeof OpusEncoder>;
  /** The frame cutter: a partial frame of mono samples, pending[0..fill). */
  private readonly pending = new Float32Array(PACKET_SAMPLES);
  private fill = 0;
  /** Interleaved int16 frame handed to the encoder; always exactly PACKET_SAMPLES * channels samples. */
  private readonly pcm: Buffer;
  private readonly pcm16: Int16Array;
  private readonly firstSeq: number;
  private seq: number;
  private pushed = 0;
  private flushed = false;

  constructor(options: OpusPacketizerOptions) {
    if (options.channels !== 1 && options.channels !== 2) throw new RangeError(`channels must be 1 or 2 (got ${String(options.channels)})`);
    checkBitrate(options.bitrate);
    this.channels = options.channels;
    this.pcm = Buffer.alloc(PACKET_SAMPLES * this.channels * 2);
    // Native-endian view (little-endian on every platform Node supports for this addon).
    this.pcm16 = new Int16Array(this.pcm.buffer, this.pcm.byteOffset, PACKET_SAMPLES * this.channels);
    this.encoder = new OpusEncoder(SAMPLE_RATE, this.channels);
    this.encoder.applyEncoderCTL(OPUS_SET_SIGNAL, OPUS_SIGNAL_MUSIC);
    if (options.complexity !== undefined) {
      if (!Number.isInteger(options.complexity) || options.complexity < 0 || options.complexity > 10)
        throw new RangeError(`complexity must be 0..10 (got ${options.complexity})`);
      this.encoder.applyEncoderCTL(OPUS_SET_COMPLEXITY, options.complexity);
    }
    this.encoder.setBitrate(options.bitrate);
    this.firstSeq = options.firstSeq ?? 0;
    if (!Number.isInteger(this.firstSeq) || this.firstSeq < 0)
      throw new RangeError(`firstSeq must be an integer >= 0 (got ${this.firstSeq})`);
    this.seq = this.firstSeq;
  }

  /** Total mono samples pushed so far (the real audio length; the Ogg end granule is preSkip + this). */
  get samplesIn(): number {
    return this.pushed;
  }

  /** Packets produced so far. */
  get packetsOut(): number {
    return this.seq - this.firstSeq;
  }

  setBitrate(bps: number): void {
    checkBitrate(bps);
    this.encoder.setBitrate(bps);
  }

  /** Feeds 48 kHz mono samples (any length, including 0); returns the packets of every completed frame. */
  push(pcm: Float32Array): OpusPacket[] {
    if (this.flushed) throw new Error('OpusPacketizer: push after flush');
    const out: OpusPacket[] = [];
    let at = 0;
    while (at < pcm.length) {
      const take = Math.min(PACKET_SAMPLES - this.fill, pcm.length - at);
      this.pending.set(pcm.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === PACKET_SAMPLES) {
        out.push(this.encodeFrame(this.pending));
        this.fill = 0;
      }
    }
    this.pushed += pcm.length;
    return out;
  }

  /**
   * Ends the stream: pads with zeros and encodes until every pushed sample is out of the encoder, i.e.
   * until packets cover samplesIn + preSkip samples (the partial frame, plus one more frame when the
   * encoder lookahead still holds real audio). A decoder that drops preSkip then has all the audio;
   * trim its end to samplesIn (the Ogg end granule). Nothing pushed: no packets. Further pushes throw.
   */
  flush(): OpusPacket[] {
    if (this.flushed) return [];
    this.flushed = true;
    const out: OpusPacket[] = [];
    if (this.pushed === 0) return out; // no audio: nothing to drain
    const needed = this.pushed + this.preSkip;
    while (this.packetsOut * PACKET_SAMPLES < needed) {
      this.pending.fill(0, this.fill);
      this.fill = PACKET_SAMPLES;
      out.push(this.encodeFrame(this.pending));
      this.fill = 0;
    }
    return out;
  }

  /** The only caller of encoder.encode(). */
  private encodeFrame(frame: Float32Array): OpusPacket {
    if (frame.length !== PACKET_SAMPLES || this.fill !== PACKET_SAMPLES)
      throw new Error(`OpusPacketizer: internal error, partial frame (${this.fill} of ${PACKET_SAMPLES})`);
    const pcm = this.pcm;
    const pcm16 = this.pcm16;
    const ch = this.channels;
    for (let i = 0; i < PACKET_SAMPLES; i++) {
      const x = frame[i]!;
      // x * 32768 clipped to int16; NaN -> 0.
      let v = Math.round(x * 32768);
      if (v > 32767) v = 32767;
      else if (v < -32768) v = -32768;
      else if (Number.isNaN(v)) v = 0;
      if (ch === 1) pcm16[i] = v;
      else {
        pcm16[2 * i] = v;
        pcm16[2 * i + 1] = v;
      }
    }
    // Anything else would abort the process inside @discordjs/opus.
    if (pcm.length !== PACKET_SAMPLES * ch * 2) throw new Error(`OpusPacketizer: refusing to encode ${pcm.length} bytes`);
    const data = this.encoder.encode(pcm);
    const packet: OpusPacket = { seq: this.seq, pts: this.seq * PACKET_SAMPLES, data };
    this.seq++;
    return packet;
  }
}
