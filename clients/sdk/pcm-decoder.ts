// Opus → PCM for one connection: opus-decoder (WebAssembly, loaded on first use), 48 kHz, the channels
// of setup_complete. The pre-skip is removed here rather than inside the decoder, so that each frame
// knows its exact position; a gap in seq is filled with silence (960 samples per missing packet) to keep
// time, as docs/protocol.md asks; packets arrive in order, duplicates (seq already seen) are dropped.
import { PACKET_SAMPLES, SAMPLE_RATE } from '../../src/protocol/constants.ts';
import type { AudioMessage, OpusStreamFormat, PcmFrame } from './types.ts';

type OpusModule = typeof import('opus-decoder');
type OpusDecoderInstance = InstanceType<OpusModule['OpusDecoder']>;

/** Longest gap filled with silence, in packets (5 s); a longer one is skipped (the `start` of frames jumps). */
export const MAX_CONCEALED_PACKETS = 250;

let opusModule: Promise<OpusModule> | null = null;

function loadOpus(): Promise<OpusModule> {
  opusModule ??= import('opus-decoder').catch((err: unknown) => {
    opusModule = null;
    throw err;
  });
  return opusModule;
}

export class PcmDecoder {
  private decoder: OpusDecoderInstance | null = null;
  private queue: AudioMessage[] = [];
  private closed = false;
  private nextSeq: number | null = null;
  private skipLeft: number;

  /**
   * @param onFrame called with every frame, in seq order (synchronously from push() once the decoder is ready)
   * @param onError decoder failures (loading the WebAssembly, a packet libopus refuses)
   */
  constructor(
    private readonly format: OpusStreamFormat,
    private readonly onFrame: (frame: PcmFrame) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.skipLeft = format.preSkip;
    void this.init();
  }

  private async init(): Promise<void> {
    try {
      const { OpusDecoder } = await loadOpus();
      if (this.closed) return;
      const decoder = new OpusDecoder({ channels: this.format.channels, sampleRate: SAMPLE_RATE, preSkip: 0 });
      await decoder.ready;
      if (this.closed) {
        decoder.free();
        return;
      }
      this.decoder = decoder;
      this.drain();
    } catch (err) {
      if (!this.closed) this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Queues one audio message; decoded at once when the decoder is ready. */
  push(message: AudioMessage): void {
    if (this.closed) return;
    this.queue.push(message);
    if (this.decoder !== null) this.drain();
  }

  /** Frees the decoder; later pushes are ignored. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.decoder?.free();
    this.decoder = null;
  }

  private drain(): void {
    const decoder = this.decoder;
    if (decoder === null) return;
    while (this.queue.length > 0 && !this.closed) {
      const m = this.queue.shift()!;
      for (let i = 0; i < m.packets.length; i++) {
        const seq = m.seq + i;
        const pts = m.pts + PACKET_SAMPLES * i;
        if (this.nextSeq !== null && seq < this.nextSeq) continue;
        if (this.nextSeq !== null && seq > this.nextSeq) {
          const missing = seq - this.nextSeq;
          if (missing <= MAX_CONCEALED_PACKETS) {
            for (let k = missing; k > 0; k--) {
              const silence = Array.from({ length: this.format.channels }, () => new Float32Array(PACKET_SAMPLES));
              this.emit(seq - k, pts - PACKET_SAMPLES * k, m.control, silence, true);
            }
          }
        }
        this.nextSeq = seq + 1;
        const packet = m.packets[i]!;
        if (packet.length === 0) continue; // never feed an empty packet to a decoder
        const out = decoder.decodeFrame(packet);
        for (const e of out.errors) this.onError(new Error(`Opus packet seq ${seq}: ${e.message}`));
        if (out.samplesDecoded > 0) this.emit(seq, pts, m.control, out.channelData.slice(0, this.format.channels), false);
      }
    }
  }

  private emit(seq: number, pts: number, control: number, channelData: Float32Array[], lost: boolean): void {
    const length = channelData[0]?.length ?? 0;
    const skip = Math.min(this.skipLeft, length);
    this.skipLeft -= skip;
    if (skip === length) return;
    const data = skip > 0 ? channelData.map((c) => c.subarray(skip)) : channelData;
    this.onFrame({ seq, pts, start: pts - this.format.preSkip + skip, control, channelData: data, samples: length - skip, lost });
  }
}
