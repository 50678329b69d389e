// What the server's outputs (WebSocket listeners, live Ogg over HTTP, Icecast) consume: the Opus
// packets of one stream, encoded once, and the format a decoder needs to play them.
import type { OpusStreamFormat } from '../protocol/messages.ts';
import type { StampedPacket } from '../stream/engine-core.ts';

export interface PacketSource {
  readonly id: string;
  readonly format: OpusStreamFormat;
  /** Calls `listener` with every batch of packets from now on; returns the unsubscribe function. */
  subscribe(listener: (packets: StampedPacket[]) => void): () => void;
}
