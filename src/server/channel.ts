// A radio channel: one engine stream, encoded once, heard by many listeners. The channel keeps the
// packets that are generated but not yet due (the engine runs ahead of real time by its lead), so a
// listener that joins late starts at once with the audio that is playing now, with a full buffer.

import { PACKET_MS, SAMPLE_RATE } from '../protocol/constants.ts';
import type { GenerationConfig, WeightedPrompt } from '../protocol/controls.ts';
import type { OpusStreamFormat } from '../protocol/messages.ts';
import type { Engine } from '../stream/engine.ts';
import type { AppliedEvent, StampedPacket } from '../stream/engine-core.ts';
import { OPUS_PRE_SKIP } from '../stream/opus-packetizer.ts';
import type { PacketSource } from './packet-source.ts';

export interface ChannelSpec {
  id: string;
  name: string;
  prompts: WeightedPrompt[];
  config?: Partial<GenerationConfig>;
  channels?: 1 | 2;
  /** Icecast source URL (http://source:PASSWORD@host:port/mount.ogg), optional. */
  icecast?: string;
}

export interface StreamStatus {
  leadMs: number;
  rtf: number;
  underruns: number;
}

/** Fan-out of one engine stream: the part shared by channels and personal sessions. */
export class StreamFeed implements PacketSource {
  readonly format: OpusStreamFormat;
  private readonly listeners = new Set<(packets: StampedPacket[]) => void>();
  private readonly appliedListeners = new Set<(e: AppliedEvent) => void>();
  private readonly codesListeners = new Set<(frame: number, codes: number[]) => void>();
  /** packets not yet due, oldest first */
  private backlog: StampedPacket[] = [];
  /** wall time (ms) at which pts 0 is due, set by the first packet */
  private anchor: number | null = null;
  lastApplied: AppliedEvent | null = null;
  status: StreamStatus = { leadMs: 0, rtf: 0, underruns: 0 };

  constructor(
    readonly id: string,
    channels: 1 | 2,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.format = { codec: 'opus', sampleRate: SAMPLE_RATE, channels, frameMs: PACKET_MS, preSkip: OPUS_PRE_SKIP };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** New listeners first get the packets still ahead of real time, then everything live. */
  subscribe(listener: (packets: StampedPacket[]) => void): () => void {
    this.prune();
    if (this.backlog.length > 0) listener(this.backlog.slice());
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onApplied(listener: (e: AppliedEvent) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  onCodes(listener: (frame: number, codes: number[]) => void): () => void {
    this.codesListeners.add(listener);
    return () => this.codesListeners.delete(listener);
  }

  codes(frame: number, codes: number[]): void {
    for (const l of this.codesListeners) l(frame, codes);
  }

  /** Called with the engine's packets for this stream. */
  publish(packets: StampedPacket[]): void {
    if (packets.length === 0) return;
    // Re-anchor when packets arrive after their due time: the stream was paused or ran dry.
    const anchorOfFirst = this.now() - packets[0]!.pts / (SAMPLE_RATE / 1000);
    if (this.anchor === null || anchorOfFirst > this.anchor + 100) this.anchor = anchorOfFirst;
    this.backlog.push(...packets);
    this.prune();
    for (const l of this.listeners) l(packets);
  }

  applied(e: AppliedEvent): void {
    this.lastApplied = e;
    for (const l of this.appliedListeners) l(e);
  }

  /** Drops backlog packets whose time has passed (keeping the one playing now). */
  private prune(): void {
    if (this.anchor === null) return;
    const nowPts = (this.now() - this.anchor) * (SAMPLE_RATE / 1000);
    let drop = 0;
    while (drop < this.backlog.length - 1 && this.backlog[drop + 1]!.pts <= nowPts) drop++;
    if (drop > 0) this.backlog = this.backlog.slice(drop);
  }
}

export class Channel extends StreamFeed {
  constructor(
    readonly spec: ChannelSpec,
    now?: () => number,
  ) {
    super(spec.id, spec.channels ?? 2, now);
  }

  async start(engine: Engine): Promise<void> {
    await engine.createStream(this.streamId, { prompts: this.spec.prompts, config: this.spec.config, channels: this.format.channels });
  }

  /** Engine stream id of the channel. */
  get streamId(): string {
    return `channel:${this.spec.id}`;
  }
}
