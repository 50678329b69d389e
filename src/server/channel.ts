// A radio channel: one engine stream, encoded once, heard by many listeners. The channel keeps the
// packets that are generated but not yet due (the engine runs ahead of real time by its lead), so a
// listener that joins late starts at once with the audio that is playing now, with a full buffer.
// A channel nobody hears (no WebSocket or Ogg listener, no Icecast source pushing: every one of them
// subscribes) goes idle after `idleAfterMs`, unless `whenIdle` is "run": its engine stream takes no
// compute and its clock stands still, backlog included, so the next listener hears the continuation.

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
  /** Without listeners: pause the stream (the default) or keep generating. */
  whenIdle?: WhenIdle;
  /** How long a channel keeps generating after its last listener left, before it pauses (ms). */
  idleAfterMs?: number;
}

export type WhenIdle = 'pause' | 'run';
export const WHEN_IDLE: readonly WhenIdle[] = ['pause', 'run'];
const DEFAULT_IDLE_AFTER_MS = 5000;

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
  /** wall time at which the feed's clock stopped (its channel went idle), else null */
  private stoppedAt: number | null = null;
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
    const anchorOfFirst = this.clock() - packets[0]!.pts / (SAMPLE_RATE / 1000);
    if (this.anchor === null || anchorOfFirst > this.anchor + 100) this.anchor = anchorOfFirst;
    this.backlog.push(...packets);
    this.prune();
    for (const l of this.listeners) l(packets);
  }

  applied(e: AppliedEvent): void {
    this.lastApplied = e;
    for (const l of this.appliedListeners) l(e);
  }

  /**
   * Stops the feed's clock: nothing in the backlog becomes due, so the next listener starts with the
   * packet that was playing when it stopped and the lead that was buffered then.
   */
  stopClock(): void {
    this.stoppedAt ??= this.now();
  }

  /** Starts the clock where it stood: the anchor moves by the time it stood still, so no packet is late. */
  startClock(): void {
    if (this.stoppedAt === null) return;
    if (this.anchor !== null) this.anchor += this.now() - this.stoppedAt;
    this.stoppedAt = null;
  }

  protected get clockStopped(): boolean {
    return this.stoppedAt !== null;
  }

  /** Wall time as the feed counts it (standing still while its clock is stopped). */
  private clock(): number {
    return this.stoppedAt ?? this.now();
  }

  /** Drops backlog packets whose time has passed (keeping the one playing now). */
  private prune(): void {
    if (this.anchor === null) return;
    const nowPts = (this.clock() - this.anchor) * (SAMPLE_RATE / 1000);
    let drop = 0;
    while (drop < this.backlog.length - 1 && this.backlog[drop + 1]!.pts <= nowPts) drop++;
    if (drop > 0) this.backlog = this.backlog.slice(drop);
  }
}

export class Channel extends StreamFeed {
  /** Set once the stream exists; null again after close(). */
  private engine: Engine | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly spec: ChannelSpec,
    now?: () => number,
  ) {
    super(spec.id, spec.channels ?? 2, now);
  }

  /** True while the stream is paused for want of listeners (the feed's clock stands still then). */
  get idle(): boolean {
    return this.clockStopped;
  }

  async start(engine: Engine): Promise<void> {
    await engine.createStream(this.streamId, { prompts: this.spec.prompts, config: this.spec.config, channels: this.format.channels });
    this.engine = engine;
    this.listenersChanged();
  }

  /** Forgets the engine and the idle timer (the server is stopping). */
  close(): void {
    this.engine = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  override subscribe(listener: (packets: StampedPacket[]) => void): () => void {
    const unsubscribe = super.subscribe(listener);
    this.listenersChanged();
    return () => {
      unsubscribe();
      this.listenersChanged();
    };
  }

  /** The first listener wakes an idle channel at once; idleAfterMs after the last one left, it goes idle. */
  private listenersChanged(): void {
    if (!this.engine || this.spec.whenIdle === 'run') return;
    if (this.listenerCount > 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      if (this.idle) this.setIdle(false);
    } else if (!this.idle && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.setIdle(true);
      }, this.spec.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS);
      this.idleTimer.unref();
    }
  }

  private setIdle(idle: boolean): void {
    if (idle) this.stopClock();
    else this.startClock();
    // Fails only once the engine has stopped, when there is nothing left to pause.
    this.engine?.setIdle(this.streamId, idle).catch(() => {});
  }

  /** Engine stream id of the channel. */
  get streamId(): string {
    return `channel:${this.spec.id}`;
  }
}
