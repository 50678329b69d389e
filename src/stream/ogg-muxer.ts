// Ogg Opus muxer (RFC 3533 framing, RFC 7845 mapping) for live streams: the two header pages, then audio
// pages built from Opus packets as they arrive, then an end-of-stream page.
//
// One muxer is one logical stream: its own serial number, page sequence from 0, granule positions from 0.
// A listener that joins a live source late gets a muxer of its own, so its stream is a complete, valid
// Ogg Opus stream that starts where it joined (headers first; no history, no page-sequence gap).
//
// Granule position (RFC 7845 section 4): the number of 48 kHz samples the decoder has produced up to the
// end of the last packet completed on the page, counted from the first packet of the stream. The first
// `preSkip` of those samples are the encoder's lookahead, which the decoder drops; so the playback
// position of a page is granule - preSkip, and granule itself is simply 960 * packets for 20 ms packets
// (the pre-skip samples are included in the count, not added on top of it). Header pages have granule 0;
// a page on which no packet ends has granule -1, the empty EOS page included. No end trimming: every
// packet's samples count in full, so the last granule is 960 * packets too.
//
// Page flush policy: push() emits a page whenever `maxPacketsPerPage` packets (default 5 = 100 ms) are
// pending, and flush() emits whatever is pending; ogg-http.ts calls flush() from a timer so a packet never
// waits long for a page. See DEFAULT_MAX_PACKETS_PER_PAGE for why 5.
import { randomInt } from 'node:crypto';

/**
 * Packets (20 ms each here) per audio page. Each page costs 27 bytes of header + 1 lacing byte per packet
 * of < 255 bytes, and each write to a client costs an HTTP chunk header (~8 bytes) and usually a TCP
 * segment (~52-66 bytes of TCP/IP headers). At 1 packet per page that is ~1.4 kB/s of Ogg framing alone
 * (11 kbit/s, 17 % of a 64 kbit/s stream); at 5 packets per page it is ~0.32 kB/s (2.6 kbit/s). Players
 * of HTTP Ogg (browser <audio>, ffplay, VLC, mpv) buffer hundreds of ms to seconds before they start, so
 * 100 ms pages add nothing they would notice; the engine also emits 0.5 s batches (25 packets), which
 * split into whole 5-packet pages with nothing left waiting. Low-latency listeners use the WebSocket path.
 */
const DEFAULT_MAX_PACKETS_PER_PAGE = 5;

/** Bytes of the fixed page header (before the lacing table). */
const OGG_PAGE_HEADER_BYTES = 27;
const MAX_SEGMENTS = 255;

const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;

// CRC-32 of Ogg: polynomial 0x04c11db7, initial value 0, no reflection, no final xor.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let b = 0; b < 8; b++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

/** Ogg CRC-32 over bytes (continuing from `crc`). */
export function oggCrc32(bytes: Uint8Array, crc = 0): number {
  let c = crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = ((c << 8) ^ CRC_TABLE[((c >>> 24) ^ bytes[i]!) & 0xff]!) >>> 0;
  return c;
}

const FRAME_SIZES_SILK = [480, 960, 1920, 2880]; // 10, 20, 40, 60 ms
const FRAME_SIZES_HYBRID = [480, 960]; // 10, 20 ms
const FRAME_SIZES_CELT = [120, 240, 480, 960]; // 2.5, 5, 10, 20 ms

/**
 * Duration in 48 kHz samples of one Opus packet, from its TOC byte (RFC 6716 section 3.1). Throws a
 * RangeError for an empty or malformed packet: an empty packet in an Ogg stream would make decoders
 * produce concealment audio, so the muxer refuses it.
 */
export function opusPacketSamples(packet: Uint8Array): number {
  if (packet.length === 0) throw new RangeError('empty Opus packet');
  const toc = packet[0]!;
  const config = toc >> 3;
  const frameSize =
    config < 12 ? FRAME_SIZES_SILK[config & 3]! : config < 16 ? FRAME_SIZES_HYBRID[config & 1]! : FRAME_SIZES_CELT[config & 3]!;
  const code = toc & 3;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code !== 3) frames = 2;
  else {
    if (packet.length < 2) throw new RangeError('Opus code-3 packet without a frame count');
    frames = packet[1]! & 0x3f;
    if (frames === 0) throw new RangeError('Opus code-3 packet with 0 frames');
  }
  const samples = frames * frameSize;
  if (samples > 5760) throw new RangeError(`Opus packet longer than 120 ms (${samples} samples)`);
  return samples;
}

export interface OggOpusMuxerOptions {
  channels: 1 | 2;
  /** Samples at 48 kHz the decoder drops at the start (OpusHead pre-skip): the encoder lookahead. */
  preSkip: number;
  /** Stream serial number (u32); random by default, so every listener's stream has its own. */
  serial?: number;
  /** OpusTags vendor string. */
  vendor?: string;
  /** OpusTags comments, e.g. { TITLE: 'riverrun' }. Keys: printable ASCII without '='. */
  tags?: Record<string, string>;
  /** Audio packets per page, 1..255 (default DEFAULT_MAX_PACKETS_PER_PAGE). */
  maxPacketsPerPage?: number;
  /** Input sample rate written in OpusHead (informational only; default 48000). */
  inputSampleRate?: number;
}

export interface OggMuxerStats {
  pages: number;
  packets: number;
  /** Bytes of packet data written. */
  payloadBytes: number;
  /** All bytes written (headers pages included). */
  totalBytes: number;
  /** Granule position of the last page with a completed audio packet (0 before any). */
  granule: number;
}

interface Pending {
  data: Uint8Array;
  samples: number;
}

export class OggOpusMuxer {
  readonly channels: 1 | 2;
  readonly preSkip: number;
  readonly serial: number;
  readonly maxPacketsPerPage: number;
  private readonly vendor: string;
  private readonly tags: [string, string][];
  private readonly inputSampleRate: number;
  private state: 'new' | 'audio' | 'ended' = 'new';
  private pageSeq = 0;
  private granule = 0;
  private pending: Pending[] = [];
  private pages = 0;
  private packets = 0;
  private payloadBytes = 0;
  private totalBytes = 0;

  constructor(options: OggOpusMuxerOptions) {
    if (options.channels !== 1 && options.channels !== 2) throw new RangeError(`channels must be 1 or 2 (got ${String(options.channels)})`);
    if (!Number.isInteger(options.preSkip) || options.preSkip < 0 || options.preSkip > 0xffff)
      throw new RangeError(`preSkip must be an integer in 0..65535 (got ${options.preSkip})`);
    const serial = options.serial ?? randomInt(0, 0x100000000);
    if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) throw new RangeError(`serial must be a u32 (got ${serial})`);
    const maxPackets = options.maxPacketsPerPage ?? DEFAULT_MAX_PACKETS_PER_PAGE;
    if (!Number.isInteger(maxPackets) || maxPackets < 1 || maxPackets > MAX_SEGMENTS)
      throw new RangeError(`maxPacketsPerPage must be an integer in 1..255 (got ${maxPackets})`);
    const rate = options.inputSampleRate ?? 48000;
    if (!Number.isInteger(rate) || rate < 0 || rate > 0xffffffff) throw new RangeError(`inputSampleRate must be a u32 (got ${rate})`);
    const tags = Object.entries(options.tags ?? {});
    for (const [key] of tags) {
      if (!/^[\x20-\x3c\x3e-\x7d]+$/.test(key))
        throw new RangeError(`bad Ogg comment key ${JSON.stringify(key)}: printable ASCII without '=' only`);
    }
    this.channels = options.channels;
    this.preSkip = options.preSkip;
    this.serial = serial;
    this.maxPacketsPerPage = maxPackets;
    this.vendor = options.vendor ?? 'riverrun';
    this.tags = tags;
    this.inputSampleRate = rate;
  }

  /** Number of packets waiting for a page (emitted by the next push that fills a page, flush() or end()). */
  get pendingPackets(): number {
    return this.pending.length;
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  get stats(): OggMuxerStats {
    return {
      pages: this.pages,
      packets: this.packets,
      payloadBytes: this.payloadBytes,
      totalBytes: this.totalBytes,
      granule: this.granule,
    };
  }

  /** Page 0 (OpusHead, BOS flag) and page 1 (OpusTags). Must be called once, first. */
  headers(): Buffer {
    if (this.state !== 'new') throw new Error('OggOpusMuxer: headers() must be called once, before any audio');
    this.state = 'audio';
    const head = Buffer.alloc(19);
    head.write('OpusHead', 0, 'latin1');
    head[8] = 1; // version
    head[9] = this.channels;
    head.writeUInt16LE(this.preSkip, 10);
    head.writeUInt32LE(this.inputSampleRate, 12);
    head.writeInt16LE(0, 16); // output gain
    head[18] = 0; // channel mapping family 0 (mono / stereo)

    const parts: Buffer[] = [Buffer.from('OpusTags', 'latin1')];
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n, 0);
      return b;
    };
    const vendor = Buffer.from(this.vendor, 'utf8');
    parts.push(u32(vendor.length), vendor, u32(this.tags.length));
    for (const [key, value] of this.tags) {
      const c = Buffer.from(`${key}=${value}`, 'utf8');
      parts.push(u32(c.length), c);
    }
    const tags = Buffer.concat(parts);

    const out: Buffer[] = [];
    // Each header packet alone on its page(s), granule 0 (RFC 7845 section 3).
    this.writePackets([{ data: head, samples: 0 }], out, { bos: true, eos: false, header: true });
    this.writePackets([{ data: tags, samples: 0 }], out, { bos: false, eos: false, header: true });
    return Buffer.concat(out);
  }

  /**
   * Queues packets; returns the pages completed (zero or more, concatenated): one page per
   * maxPacketsPerPage packets. Packets that do not fill a page wait for the next push, flush() or end().
   */
  push(packets: readonly { data: Uint8Array }[]): Buffer {
    this.checkAudio('push');
    // Every packet is checked before any is queued: a bad one throws and leaves the stream as it was.
    const checked = packets.map((p) => ({ data: p.data, samples: opusPacketSamples(p.data) }));
    for (const p of checked) this.pending.push(p);
    if (this.pending.length < this.maxPacketsPerPage) return Buffer.alloc(0);
    const out: Buffer[] = [];
    const n = this.maxPacketsPerPage;
    let at = 0;
    for (; at + n <= this.pending.length; at += n)
      this.writePackets(this.pending.slice(at, at + n), out, { bos: false, eos: false, header: false });
    this.pending = this.pending.slice(at);
    return Buffer.concat(out);
  }

  /** Emits the pending packets now (as a page shorter than maxPacketsPerPage); empty if none wait. */
  flush(): Buffer {
    this.checkAudio('flush');
    if (this.pending.length === 0) return Buffer.alloc(0);
    const out: Buffer[] = [];
    this.writePackets(this.pending, out, { bos: false, eos: false, header: false });
    this.pending = [];
    return Buffer.concat(out);
  }

  /**
   * Ends the stream: the pending packets and `last` (the stream's final packets, if the caller held them
   * back) in pages of maxPacketsPerPage, the last with the EOS flag. With no packet to carry it, the EOS
   * page is empty with granule -1 (RFC 7845 section 4: a page on which no packet ends has no granule;
   * the stream's length is the granule of the page before). A caller that can hold back its newest
   * packet until it knows the stream ends (riverrun listen) passes it here, so that the EOS page carries
   * audio and the end position. Includes the header pages when headers() was never called. Further
   * calls return nothing.
   */
  end(last: readonly { data: Uint8Array }[] = []): Buffer {
    if (this.state === 'ended') return Buffer.alloc(0);
    const checked = last.map((p) => ({ data: p.data, samples: opusPacketSamples(p.data) }));
    const out: Buffer[] = [];
    if (this.state === 'new') out.push(this.headers());
    const packets = [...this.pending, ...checked];
    const n = this.maxPacketsPerPage;
    let at = 0;
    for (; at + n < packets.length; at += n) this.writePackets(packets.slice(at, at + n), out, { bos: false, eos: false, header: false });
    this.writePackets(packets.slice(at), out, { bos: false, eos: true, header: false });
    this.pending = [];
    this.state = 'ended';
    return Buffer.concat(out);
  }

  private checkAudio(what: string): void {
    if (this.state === 'new') throw new Error(`OggOpusMuxer: ${what}() before headers()`);
    if (this.state === 'ended') throw new Error(`OggOpusMuxer: ${what}() after end()`);
  }

  /**
   * Lays packets out on as few pages as the 255-entry lacing table allows (normally one), continuing a
   * packet onto the next page when the table is full. Every page goes into `out`; the last page carries
   * the EOS flag if asked. An empty list with eos gives one empty EOS page.
   */
  private writePackets(packets: readonly Pending[], out: Buffer[], flags: { bos: boolean; eos: boolean; header: boolean }): void {
    let lacing: number[] = [];
    let chunks: Uint8Array[] = [];
    let continued = false; // the page being built starts with the rest of a packet
    let completed = false; // a packet ends on the page being built
    let bos = flags.bos;
    const emit = (eos: boolean): void => {
      // RFC 7845 section 4: a page's granule is that of the last packet completed on it, -1 when none
      // is (a page within one long packet, or an empty EOS page).
      const granule = flags.header ? 0 : completed ? this.granule : -1;
      out.push(this.page(lacing, chunks, (continued ? FLAG_CONTINUED : 0) | (bos ? FLAG_BOS : 0) | (eos ? FLAG_EOS : 0), granule));
      lacing = [];
      chunks = [];
      completed = false;
      bos = false;
    };
    for (const p of packets) {
      const data = p.data;
      let off = 0;
      for (;;) {
        if (lacing.length === MAX_SEGMENTS) {
          emit(false);
          continued = off > 0;
        }
        const rest = data.length - off;
        const full = Math.floor(rest / 255);
        const room = MAX_SEGMENTS - lacing.length;
        if (full + 1 <= room) {
          for (let i = 0; i < full; i++) lacing.push(255);
          lacing.push(rest % 255);
          chunks.push(data.subarray(off));
          this.granule += p.samples;
          completed = true;
          break;
        }
        // The rest does not fit: fill the table with 255s (the packet continues on the next page).
        for (let i = 0; i < room; i++) lacing.push(255);
        chunks.push(data.subarray(off, off + room * 255));
        off += room * 255;
      }
      if (!flags.header) this.packets++;
      this.payloadBytes += data.length;
    }
    if (lacing.length > 0 || flags.eos) emit(flags.eos);
  }

  private page(lacing: readonly number[], chunks: readonly Uint8Array[], flags: number, granule: number): Buffer {
    let bodyLength = 0;
    for (const c of chunks) bodyLength += c.length;
    const headerLength = OGG_PAGE_HEADER_BYTES + lacing.length;
    const page = Buffer.allocUnsafe(headerLength + bodyLength);
    page.write('OggS', 0, 'latin1');
    page[4] = 0; // stream structure version
    page[5] = flags;
    page.writeBigInt64LE(BigInt(granule), 6);
    page.writeUInt32LE(this.serial, 14);
    page.writeUInt32LE(this.pageSeq, 18);
    page.writeUInt32LE(0, 22); // CRC, computed with this field zeroed
    page[26] = lacing.length;
    for (let i = 0; i < lacing.length; i++) page[OGG_PAGE_HEADER_BYTES + i] = lacing[i]!;
    let at = headerLength;
    for (const c of chunks) {
      page.set(c, at);
      at += c.length;
    }
    page.writeUInt32LE(oggCrc32(page), 22);
    this.pageSeq = (this.pageSeq + 1) >>> 0;
    this.pages++;
    this.totalBytes += page.length;
    return page;
  }
}
