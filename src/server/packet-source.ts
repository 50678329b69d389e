// What the server's outputs (WebSocket listeners, live Ogg over HTTP, Icecast) consume: the Opus
// packets of one stream, encoded once, and the format a decoder needs to play them.
import type { StampedPacket } from '../stream/engine-core.ts';

export interface AudioFormat {
  codec: 'opus';
  sampleRate: 48000;
  channels: 1 | 2;
  frameMs: 20;
  /** Samples (48 kHz) the decoder drops at the start: the encoder's lookahead (RFC 7845 pre-skip). */
  preSkip: number;
}

export interface PacketSource {
  readonly id: string;
  readonly format: AudioFormat;
  /** Calls `listener` with every batch of packets from now on; returns the unsubscribe function. */
  subscribe(listener: (packets: StampedPacket[]) => void): () => void;
}
