// One piece, over 400 lines: the Ogg muxer's unit tests and the live Ogg-over-HTTP tests share the same packet fixtures and decoder checks.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PACKET_SAMPLES } from '../src/protocol/constants.ts';
import type { OpusStreamFormat } from '../src/protocol/messages.ts';
import type { OggCloseReason, OggStreamHandle, OggStreamOptions } from '../src/server/ogg-http.ts';
import { OggStreams, serveOggStream } from '../src/server/ogg-http.ts';
import type { PacketSource } from '../src/server/packet-source.ts';
import type { StampedPacket } from '../src/stream/engine-core.ts';
import { OggOpusMuxer, oggCrc32, opusPacketSamples } from '../src/stream/ogg-muxer.ts';
import { OPUS_PRE_SKIP, OpusPacketizer } from '../src/stream/opus-packetizer.ts';

// ---------------------------------------------------------------------------------------------------
// A small Ogg reader of our own (independent of the muxer), for checking what the muxer writes.

/** Ogg CRC-32, bit by bit (polynomial 0x04c11db7, init 0, unreflected, no final xor). */
function crcBitwise(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 24;
    for (let b = 0; b < 8; b++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

interface Page {
  flags: number;
  continued: boolean;
  bos: boolean;
  eos: boolean;
  granule: bigint;
  serial: number;
  seq: number;
  lacing: number[];
  body: Uint8Array;
  /** Packets that end on this page (the first one may have started on an earlier page). */
  completed: number;
  size: number;
}

interface ParsedStream {
  pages: Page[];
  /** Whole packets, reassembled across pages. */
  packets: Uint8Array[];
  /** Bytes after the last whole page (a page cut off by the end of the data). */
  trailing: number;
}

/** Parses Ogg pages; checks capture pattern, version and CRC (bit-by-bit CRC if `slowCrc`). */
function parseOgg(bytes: Uint8Array, slowCrc = true): ParsedStream {
  const pages: Page[] = [];
  const packets: Uint8Array[] = [];
  let partial: Uint8Array[] = [];
  let at = 0;
  while (at + 27 <= bytes.length) {
    expect(String.fromCharCode(...bytes.subarray(at, at + 4))).toBe('OggS');
    const view = new DataView(bytes.buffer, bytes.byteOffset + at);
    expect(view.getUint8(4)).toBe(0);
    const flags = view.getUint8(5);
    const nseg = view.getUint8(26);
    if (at + 27 + nseg > bytes.length) break;
    const lacing = [...bytes.subarray(at + 27, at + 27 + nseg)];
    const bodyLength = lacing.reduce((a, b) => a + b, 0);
    const size = 27 + nseg + bodyLength;
    if (at + size > bytes.length) break;
    const raw = Uint8Array.from(bytes.subarray(at, at + size));
    const crc = view.getUint32(22, true);
    raw.fill(0, 22, 26);
    expect(slowCrc ? crcBitwise(raw) : oggCrc32(raw)).toBe(crc);
    const body = bytes.subarray(at + 27 + nseg, at + size);
    const continued = (flags & 1) !== 0;
    if (!continued) expect(partial).toEqual([]);
    else expect(partial.length).toBeGreaterThan(0);
    let off = 0;
    let completed = 0;
    for (const l of lacing) {
      partial.push(body.subarray(off, off + l));
      off += l;
      if (l < 255) {
        packets.push(Buffer.concat(partial));
        partial = [];
        completed++;
      }
    }
    pages.push({
      flags,
      continued,
      bos: (flags & 2) !== 0,
      eos: (flags & 4) !== 0,
      granule: view.getBigInt64(6, true),
      serial: view.getUint32(14, true),
      seq: view.getUint32(18, true),
      lacing,
      body,
      completed,
      size,
    });
    at += size;
  }
  return { pages, packets, trailing: bytes.length - at };
}

/** Checks the stream structure: one serial, consecutive page numbers, BOS first only, EOS last only. */
function checkStructure(s: ParsedStream, ended: boolean): void {
  expect(s.pages.length).toBeGreaterThanOrEqual(2);
  const serial = s.pages[0]!.serial;
  s.pages.forEach((p, i) => {
    expect(p.serial).toBe(serial);
    expect(p.seq).toBe(i);
    expect(p.bos).toBe(i === 0);
    expect(p.eos).toBe(ended && i === s.pages.length - 1);
    expect(p.flags & ~7).toBe(0);
  });
  expect(s.trailing).toBe(0);
}

/** Checks OpusHead / OpusTags on pages 0 and 1; returns the tags. */
function checkHeaders(s: ParsedStream, channels: number, preSkip: number): { vendor: string; comments: string[] } {
  const [p0, p1] = s.pages;
  expect(p0!.granule).toBe(0n);
  expect(p0!.completed).toBe(1);
  expect(p1!.granule).toBe(0n);
  expect(p1!.completed).toBe(1);
  const head = Buffer.from(s.packets[0]!);
  expect(head.length).toBe(19);
  expect(head.toString('latin1', 0, 8)).toBe('OpusHead');
  expect(head[8]).toBe(1);
  expect(head[9]).toBe(channels);
  expect(head.readUInt16LE(10)).toBe(preSkip);
  expect(head.readUInt32LE(12)).toBe(48000);
  expect(head.readInt16LE(16)).toBe(0);
  expect(head[18]).toBe(0);
  const tags = Buffer.from(s.packets[1]!);
  expect(tags.toString('latin1', 0, 8)).toBe('OpusTags');
  let at = 8;
  const str = (): string => {
    const n = tags.readUInt32LE(at);
    const v = tags.toString('utf8', at + 4, at + 4 + n);
    at += 4 + n;
    return v;
  };
  const vendor = str();
  const count = tags.readUInt32LE(at);
  at += 4;
  const comments = Array.from({ length: count }, str);
  expect(at).toBe(tags.length);
  return { vendor, comments };
}

/**
 * Checks granules of the audio pages (RFC 7845 section 4): 960 * packets completed so far, -1 where none
 * ends (an empty EOS page included).
 */
function checkGranules(s: ParsedStream, firstPacket = 2): void {
  let packets = 0;
  for (const p of s.pages.slice(2)) {
    packets += p.completed;
    if (p.completed > 0) expect(p.granule).toBe(BigInt(packets * PACKET_SAMPLES));
    else expect(p.granule).toBe(-1n);
  }
  expect(packets).toBe(s.packets.length - firstPacket);
}

/** Packet-by-packet byte equality (cheaper than toEqual on big buffers). */
function expectSamePackets(actual: Uint8Array[], expected: Uint8Array[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    if (!Buffer.from(a.buffer, a.byteOffset, a.length).equals(expected[i]!)) throw new Error(`packet ${i} differs`);
  });
}

// A valid TOC byte: CELT fullband 20 ms (config 31), one frame (code 0).
const TOC_20MS = 31 << 3;

function fakePacket(length: number, fill: number): Uint8Array {
  const p = new Uint8Array(length).fill(fill & 0xff);
  p[0] = TOC_20MS;
  return p;
}

// ---------------------------------------------------------------------------------------------------

describe('OggOpusMuxer', () => {
  it('CRC-32 of Ogg: known answer and bit-by-bit agreement', () => {
    // CRC-32/CKSUM of "123456789" is 0x765e7680 (same polynomial, init 0, final xor ~0).
    const check = Buffer.from('123456789', 'latin1');
    expect(oggCrc32(check)).toBe(~0x765e7680 >>> 0);
    expect(crcBitwise(check)).toBe(~0x765e7680 >>> 0);
    const rand = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919 + 13) & 0xff);
    expect(oggCrc32(rand)).toBe(crcBitwise(rand));
  });

  it('Opus packet durations from the TOC byte', () => {
    expect(opusPacketSamples(Uint8Array.of(TOC_20MS))).toBe(960);
    expect(opusPacketSamples(Uint8Array.of(TOC_20MS | 1))).toBe(1920); // two frames, equal sizes
    expect(opusPacketSamples(Uint8Array.of(TOC_20MS | 2, 1))).toBe(1920); // two frames, different sizes
    expect(opusPacketSamples(Uint8Array.of(TOC_20MS | 3, 3))).toBe(2880); // code 3, 3 frames
    expect(opusPacketSamples(Uint8Array.of(16 << 3))).toBe(120); // CELT 2.5 ms
    expect(opusPacketSamples(Uint8Array.of(3 << 3))).toBe(2880); // SILK 60 ms
    expect(opusPacketSamples(Uint8Array.of(13 << 3))).toBe(960); // hybrid 20 ms
    expect(() => opusPacketSamples(new Uint8Array(0))).toThrow(RangeError);
    expect(() => opusPacketSamples(Uint8Array.of(TOC_20MS | 3, 7))).toThrow(RangeError); // 140 ms
  });

  it('header pages: OpusHead alone with BOS, then OpusTags, granule 0', () => {
    const mux = new OggOpusMuxer({
      channels: 2,
      preSkip: 312,
      serial: 0xdeadbeef,
      vendor: 'test vendor',
      tags: { TITLE: 'riverrun', ARTIST: 'ünïcode' },
    });
    const bytes = Buffer.concat([mux.headers(), mux.end()]);
    const s = parseOgg(bytes);
    checkStructure(s, true);
    expect(s.pages.length).toBe(3);
    expect(s.pages[0]!.serial).toBe(0xdeadbeef);
    expect(s.pages[0]!.lacing).toEqual([19]);
    const { vendor, comments } = checkHeaders(s, 2, 312);
    expect(vendor).toBe('test vendor');
    expect(comments).toEqual(['TITLE=riverrun', 'ARTIST=ünïcode']);
    // Empty EOS page (no audio): no packet ends on it, so granule -1.
    expect(s.pages[2]!.lacing).toEqual([]);
    expect(s.pages[2]!.granule).toBe(-1n);
  });

  it('lacing of packets of 1, 254, 255, 256, 510 and 1000 bytes; pages of maxPacketsPerPage packets; granules', () => {
    const mux = new OggOpusMuxer({ channels: 1, preSkip: 312, maxPacketsPerPage: 3 });
    const sizes = [1, 254, 255, 256, 510, 1000, 300];
    const input = sizes.map((n, i) => fakePacket(n, i + 1));
    const out: Buffer[] = [mux.headers()];
    // Fed in uneven batches: pages come out whenever 3 packets wait.
    out.push(mux.push(input.slice(0, 2).map((data) => ({ data }))));
    expect(mux.pendingPackets).toBe(2);
    out.push(mux.push(input.slice(2, 6).map((data) => ({ data }))));
    expect(mux.pendingPackets).toBe(0);
    out.push(mux.push([{ data: input[6]! }]));
    expect(out.at(-1)!.length).toBe(0);
    expect(mux.pendingPackets).toBe(1);
    out.push(mux.end());
    const s = parseOgg(Buffer.concat(out));
    checkStructure(s, true);
    checkHeaders(s, 1, 312);
    checkGranules(s);
    expect(s.packets.slice(2)).toEqual(input.map((p) => Buffer.from(p)));
    const audio = s.pages.slice(2);
    expect(audio.map((p) => p.completed)).toEqual([3, 3, 1]);
    expect(audio.map((p) => p.lacing)).toEqual([
      [1, 254, 255, 0], // 255 bytes: a full segment and a terminating 0
      [255, 1, 255, 255, 0, 255, 255, 255, 235],
      [255, 45],
    ]);
    // granule = 960 * packets completed so far (the pre-skip samples are part of that count)
    expect(audio.map((p) => p.granule)).toEqual([2880n, 5760n, 6720n]);
    expect(audio.at(-1)!.eos).toBe(true);
    expect(mux.stats).toMatchObject({
      packets: 7,
      granule: 6720,
      payloadBytes: sizes.reduce((a, b) => a + b, 0) + 19 + s.packets[1]!.length,
    });
  });

  it('a packet continued across pages (lacing table full) and a page where no packet ends (granule -1)', () => {
    const mux = new OggOpusMuxer({ channels: 1, preSkip: 312, maxPacketsPerPage: 10 });
    // 6 packets of 51 lacing values each: 5 fill one page exactly (255), the 6th starts a new page.
    // Then one packet longer than a whole page (255 * 255 bytes): a page of 255 x 255 without an end.
    const input = [...Array.from({ length: 6 }, (_, i) => fakePacket(13000, i)), fakePacket(255 * 255 + 700, 9), fakePacket(255 * 255, 10)];
    const bytes = Buffer.concat([
      mux.headers(),
      mux.push(input.slice(0, 6).map((data) => ({ data }))),
      mux.flush(),
      mux.push(input.slice(6).map((data) => ({ data }))),
      mux.end(),
    ]);
    const s = parseOgg(bytes);
    checkStructure(s, true);
    checkGranules(s);
    expectSamePackets(s.packets.slice(2), input);
    const audio = s.pages.slice(2);
    expect(audio.map((p) => [p.lacing.length, p.completed, p.continued, p.granule])).toEqual([
      [255, 5, false, 5n * 960n],
      [51, 1, false, 6n * 960n], // flush(): the 6th packet alone
      [255, 0, false, -1n], // 255 * 255 bytes of the 7th packet, nothing ends here
      [255, 1, true, 7n * 960n], // its last 700 bytes (3 lacing values), then 252 x 255 of the 8th
      [4, 1, true, 8n * 960n], // the 8th ends: 3 x 255 and a terminating 0 — with EOS
    ]);
    expect(audio.at(-1)!.eos).toBe(true);
  });

  it('flush() with nothing pending is empty; misuse throws; end() is idempotent', () => {
    const mux = new OggOpusMuxer({ channels: 1, preSkip: 312 });
    expect(() => mux.push([{ data: fakePacket(10, 0) }])).toThrow(/before headers/);
    mux.headers();
    expect(() => mux.headers()).toThrow();
    expect(mux.flush().length).toBe(0);
    expect(() => mux.push([{ data: fakePacket(10, 0) }, { data: new Uint8Array(0) }])).toThrow(RangeError);
    expect(mux.pendingPackets).toBe(0); // a bad batch queues nothing
    expect(mux.end().length).toBeGreaterThan(0);
    expect(mux.end().length).toBe(0);
    expect(() => mux.push([{ data: fakePacket(10, 0) }])).toThrow(/after end/);
    expect(() => new OggOpusMuxer({ channels: 1, preSkip: 312, tags: { 'A=B': 'x' } })).toThrow(RangeError);
    expect(() => new OggOpusMuxer({ channels: 1, preSkip: 312, maxPacketsPerPage: 0 })).toThrow(RangeError);
  });

  it('end of stream (RFC 7845): nothing pending gives an empty EOS page with granule -1; end(last) puts packets on the EOS page', () => {
    const input = Array.from({ length: 12 }, (_, i) => fakePacket(100, i));
    // 10 packets: two whole pages, nothing pending at end().
    const a = new OggOpusMuxer({ channels: 1, preSkip: 312 });
    const sa = parseOgg(Buffer.concat([a.headers(), a.push(input.slice(0, 10).map((data) => ({ data }))), a.end()]));
    checkStructure(sa, true);
    checkGranules(sa);
    expect(sa.pages.slice(2).map((p) => [p.completed, p.granule, p.eos])).toEqual([
      [5, 4800n, false],
      [5, 9600n, false],
      [0, -1n, true], // not the end position: no packet ends on this page
    ]);
    // The caller held back its last 7 packets: they go on the last pages, EOS on the one with the last packet.
    const b = new OggOpusMuxer({ channels: 1, preSkip: 312 });
    const parts = [b.headers(), b.push(input.slice(0, 3).map((data) => ({ data })))];
    expect(b.pendingPackets).toBe(3);
    parts.push(b.end(input.slice(3, 10).map((data) => ({ data }))));
    const sb = parseOgg(Buffer.concat(parts));
    checkStructure(sb, true);
    checkGranules(sb);
    expect(sb.pages.slice(2).map((p) => [p.completed, p.granule, p.eos])).toEqual([
      [5, 4800n, false],
      [5, 9600n, true],
    ]);
    expect(sb.packets.slice(2)).toEqual(input.slice(0, 10).map((p) => Buffer.from(p)));
    // A bad final packet throws before anything is written.
    const c = new OggOpusMuxer({ channels: 1, preSkip: 312 });
    c.headers();
    expect(() => c.end([{ data: new Uint8Array(0) }])).toThrow(RangeError);
    expect(c.ended).toBe(false);
  });

  it('every muxer has its own serial by default', () => {
    const serials = new Set(Array.from({ length: 20 }, () => new OggOpusMuxer({ channels: 1, preSkip: 312 }).serial));
    expect(serials.size).toBeGreaterThan(15);
  });
});

// ---------------------------------------------------------------------------------------------------
// HTTP

function sine(n: number, freq: number, amp: number, phase0 = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * (i + phase0)) / 48000);
  return x;
}

// 437 Hz: 40 packets (38400 samples) are not a whole number of periods, so a shifted copy differs.
const TONE_HZ = 437;
const TONE_AMP = 0.5;

/** 20 ms Opus packets of a sine, as the engine stamps them. */
function encodeSine(packets: number, bitrate = 64000): StampedPacket[] {
  const p = new OpusPacketizer({ channels: 1, bitrate });
  return p.push(sine(packets * PACKET_SAMPLES, TONE_HZ, TONE_AMP)).map((x) => ({ ...x, control: 0 }));
}

/** 20 ms Opus packets of white noise (deterministic). */
function encodeNoise(packets: number, bitrate: number): StampedPacket[] {
  const p = new OpusPacketizer({ channels: 1, bitrate });
  let a = 12345;
  const x = Float32Array.from({ length: packets * PACKET_SAMPLES }, () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return (a / 2 ** 32 - 0.5) * 1.6;
  });
  return p.push(x).map((q) => ({ ...q, control: 0 }));
}

class FakeSource implements PacketSource {
  readonly id = 'fake';
  readonly format: OpusStreamFormat = { codec: 'opus', sampleRate: 48000, channels: 1, frameMs: 20, preSkip: OPUS_PRE_SKIP };
  readonly listeners = new Set<(packets: StampedPacket[]) => void>();
  emitted = 0;
  /** Handed to a new listener from inside subscribe(), as a channel does with its late-join backlog. */
  backlog: StampedPacket[] = [];

  subscribe(listener: (packets: StampedPacket[]) => void): () => void {
    const l = (packets: StampedPacket[]): void => listener(packets);
    this.listeners.add(l);
    if (this.backlog.length > 0) listener(this.backlog.slice());
    return () => this.listeners.delete(l);
  }

  emit(packets: StampedPacket[]): void {
    for (const l of [...this.listeners]) l(packets);
    this.emitted += packets.length;
  }

  async waitForListeners(n: number, timeoutMs = 3000): Promise<void> {
    const t0 = Date.now();
    while (this.listeners.size !== n) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`expected ${n} listeners, have ${this.listeners.size}`);
      await sleep(2);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface TestServer {
  url: string;
  streams: OggStreams;
  handles: OggStreamHandle[];
  reasons: OggCloseReason[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function startServer(source: PacketSource, options: Partial<OggStreamOptions> = {}): Promise<TestServer> {
  const streams = new OggStreams();
  const handles: OggStreamHandle[] = [];
  const reasons: OggCloseReason[] = [];
  const server = http.createServer((req, res) => {
    handles.push(streams.serve(req, res, source, { maxBufferedBytes: 256 * 1024, ...options, onClose: (r) => reasons.push(r) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s: TestServer = {
    url: `http://127.0.0.1:${port}/stream.ogg`,
    streams,
    handles,
    reasons,
    close: async () => {
      await streams.endAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(s);
  return s;
}

interface Client {
  res: http.IncomingMessage;
  chunks: Buffer[];
  readonly bytes: number;
  /** Resolves with the whole body when the server ends it. */
  body: Promise<Buffer>;
}

function get(url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      const body = new Promise<Buffer>((ok, fail) => {
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          bytes += c.length;
        });
        res.on('end', () => ok(Buffer.concat(chunks)));
        res.on('error', fail);
      });
      resolve({
        res,
        chunks,
        get bytes() {
          return bytes;
        },
        body,
      });
    });
    req.on('error', reject);
  });
}

async function decode(bytes: Uint8Array): Promise<{ samples: Float32Array; sampleRate: number; errors: unknown[] }> {
  const d = new OggOpusDecoder();
  await d.ready;
  try {
    const out = await d.decodeFile(bytes);
    return { samples: out.channelData[0]!, sampleRate: out.sampleRate, errors: out.errors };
  } finally {
    d.free();
  }
}

/** Normalised correlation of y[i] with x[i + offset], i in [from, y.length - 200). */
function correlation(x: Float32Array, y: Float32Array, offset: number, from: number): number {
  let xy = 0;
  let xx = 0;
  let yy = 0;
  for (let i = from; i < y.length - 200 && i + offset < x.length; i++) {
    const a = x[i + offset]!;
    const b = y[i]!;
    xy += a * b;
    xx += a * a;
    yy += b * b;
  }
  return xy / Math.sqrt(xx * yy);
}

/** Emits packets in batches, faster than real time (a batch every `everyMs`). */
async function emitAll(source: FakeSource, packets: StampedPacket[], batch: number, everyMs = 2): Promise<void> {
  for (let i = 0; i < packets.length; i += batch) {
    source.emit(packets.slice(i, i + batch));
    await sleep(everyMs);
  }
}

describe('serveOggStream over HTTP', () => {
  let tone: StampedPacket[];
  beforeAll(() => {
    tone = encodeSine(100); // 2 s
  });

  it('streams headers then live pages that decode to the sine (ogg-opus-decoder), EOS on end', async () => {
    const source = new FakeSource();
    // A long page delay: the last 3 packets (73 = 14 * 5 + 3) go out in the EOS page.
    const srv = await startServer(source, { maxPageDelayMs: 60_000 });
    const client = await get(srv.url);
    expect(client.res.statusCode).toBe(200);
    expect(client.res.headers['content-type']).toBe('audio/ogg');
    expect(client.res.headers['cache-control']).toBe('no-cache, no-store');
    expect(client.res.headers['content-length']).toBeUndefined();
    expect(client.res.headers['transfer-encoding']).toBe('chunked');
    await source.waitForListeners(1);
    const packets = tone.slice(0, 73);
    await emitAll(source, packets, 7);
    await srv.streams.endAll();
    const body = await client.body;
    expect(srv.reasons).toEqual(['ended']);
    expect(source.listeners.size).toBe(0);

    const s = parseOgg(body);
    checkStructure(s, true);
    checkHeaders(s, 1, OPUS_PRE_SKIP);
    checkGranules(s);
    expect(s.packets.slice(2)).toEqual(packets.map((p) => Buffer.from(p.data)));
    expect(s.pages.at(-1)!.completed).toBe(3);
    expect(s.pages.at(-1)!.granule).toBe(73n * 960n);

    const { samples, sampleRate, errors } = await decode(body);
    expect(errors).toEqual([]);
    expect(sampleRate).toBe(48000);
    expect(samples.length).toBe(73 * PACKET_SAMPLES - OPUS_PRE_SKIP);
    // Pre-skip removes exactly the encoder delay: decoded sample i is input sample i.
    const ref = sine(100 * PACKET_SAMPLES, TONE_HZ, TONE_AMP);
    expect(correlation(ref, samples, 0, 2000)).toBeGreaterThan(0.98);
    expect(correlation(ref, samples, 27, 2000)).toBeLessThan(0.3); // a quarter period off: not aligned
  });

  it('a late joiner gets headers first, then live audio from its join (not the history), granules from 0', async () => {
    const source = new FakeSource();
    const srv = await startServer(source);
    const early = await get(srv.url);
    await source.waitForListeners(1);
    await emitAll(source, tone.slice(0, 40), 5);
    const late = await get(srv.url);
    await source.waitForListeners(2);
    const joinedAt = source.emitted;
    expect(joinedAt).toBe(40);
    await emitAll(source, tone.slice(40), 5);
    await srv.streams.endAll();
    const [a, b] = await Promise.all([early.body, late.body]);

    const sa = parseOgg(a);
    const sb = parseOgg(b);
    checkStructure(sb, true);
    checkHeaders(sb, 1, OPUS_PRE_SKIP);
    checkGranules(sb);
    expect(sb.pages[0]!.serial).not.toBe(sa.pages[0]!.serial);
    // Its first audio page: 5 packets from its own start, not the source's position (40 packets in).
    expect(sb.pages[2]!.granule).toBe(5n * 960n);
    expect(sb.packets.slice(2)).toEqual(tone.slice(40).map((p) => Buffer.from(p.data)));
    expect(sa.packets.slice(2)).toEqual(tone.map((p) => Buffer.from(p.data)));

    const da = await decode(a);
    const db = await decode(b);
    expect(da.errors).toEqual([]);
    expect(db.errors).toEqual([]);
    expect(da.samples.length).toBe(100 * PACKET_SAMPLES - OPUS_PRE_SKIP);
    expect(db.samples.length).toBe(60 * PACKET_SAMPLES - OPUS_PRE_SKIP);
    // The late stream's sample i is the source's sample 40 * 960 + i (its first packets decode from a
    // cold decoder state, so skip its first 50 ms).
    const ref = sine(100 * PACKET_SAMPLES, TONE_HZ, TONE_AMP);
    expect(correlation(ref, db.samples, joinedAt * PACKET_SAMPLES, 2400)).toBeGreaterThan(0.98);
    expect(correlation(ref, db.samples, 0, 2400)).toBeLessThan(0.5); // the 40 packets of history are not there
    expect(srv.reasons).toEqual(['ended', 'ended']);
  });

  it('a backlog handed over from inside subscribe() comes right after the headers', async () => {
    const source = new FakeSource();
    source.backlog = tone.slice(0, 7);
    const srv = await startServer(source);
    const client = await get(srv.url);
    await source.waitForListeners(1);
    await emitAll(source, tone.slice(7, 20), 4);
    await srv.streams.endAll();
    const s = parseOgg(await client.body);
    checkStructure(s, true);
    checkHeaders(s, 1, OPUS_PRE_SKIP);
    checkGranules(s);
    expectSamePackets(
      s.packets.slice(2),
      tone.slice(0, 20).map((p) => p.data),
    );
    const d = await decode(await client.body);
    expect(d.errors).toEqual([]);
    expect(d.samples.length).toBe(20 * PACKET_SAMPLES - OPUS_PRE_SKIP);
  });

  it('drops a stalled client (maxBufferedBytes) without holding up a fast client on the same source', async () => {
    const source = new FakeSource();
    const srv = await startServer(source, { maxBufferedBytes: 64 * 1024 });
    const fast = await get(srv.url);
    // The stalled client sends its request and never reads: the kernel's socket buffers fill up (a few
    // MB on loopback), then the response's own buffer grows past maxBufferedBytes.
    const stalled = net.connect(Number(new URL(srv.url).port), '127.0.0.1');
    stalled.on('error', () => {});
    stalled.write('GET /stream.ogg HTTP/1.1\r\nHost: test\r\n\r\n');
    stalled.pause();
    try {
      await source.waitForListeners(2);

      // Big real packets (noise at the most a mono Opus stream takes, ~256 kbit/s: ~650 bytes), cycled, 25
      // per batch like the engine's 0.5 s batches.
      const big = encodeNoise(50, 510000);
      expect(big[10]!.data.length).toBeGreaterThan(500);
      let batches = 0;
      let droppedAt = -1;
      let fastBytesAtDrop = 0;
      let emittedBytes = 0;
      let emittedAtDrop = 0;
      while (batches < 2000) {
        const batch = Array.from({ length: 25 }, (_, i) => big[(batches * 25 + i) % big.length]!);
        source.emit(batch);
        batches++;
        emittedBytes += batch.reduce((n, p) => n + p.data.length, 0);
        if (droppedAt < 0 && srv.reasons.includes('slow-client')) {
          droppedAt = batches;
          fastBytesAtDrop = fast.bytes;
          emittedAtDrop = emittedBytes;
        }
        if (droppedAt > 0 && batches >= droppedAt + 20) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(droppedAt).toBeGreaterThan(0);
      expect(srv.reasons).toEqual(['slow-client']);
      expect(source.listeners.size).toBe(1); // the dropped client unsubscribed
      // The fast client kept up while the other one stalled: by the drop it had most of what was emitted.
      expect(emittedAtDrop).toBeGreaterThan(64 * 1024);
      expect(fastBytesAtDrop).toBeGreaterThan(0.5 * emittedAtDrop);

      await srv.streams.endAll();
      const body = await fast.body;
      const s = parseOgg(body, false);
      checkStructure(s, true);
      checkGranules(s);
      expect(s.packets.length - 2).toBe(batches * 25);
      expect(srv.reasons).toEqual(['slow-client', 'ended']);
    } finally {
      // The stalled client never reads, so it never sees the end of its connection.
      stalled.destroy();
    }
  });

  it('HEAD: the headers only, no subscription; other methods: 405', async () => {
    const source = new FakeSource();
    const srv = await startServer(source);
    const head = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const req = http.request(srv.url, { method: 'HEAD' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('audio/ogg');
    expect(head.headers['cache-control']).toBe('no-cache, no-store');
    expect(head.headers['content-length']).toBeUndefined();
    expect(head.body.length).toBe(0);
    expect(source.listeners.size).toBe(0);

    const post = await fetch(srv.url, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.text();
    await sleep(20);
    expect(srv.reasons).toEqual(['head', 'method-not-allowed']);
    expect(srv.streams.size).toBe(0);
  });

  it('a client that goes away is unsubscribed; a partly filled page goes out after maxPageDelayMs', async () => {
    const source = new FakeSource();
    const srv = await startServer(source, { maxPageDelayMs: 30 });
    const client = await get(srv.url);
    await source.waitForListeners(1);
    source.emit(tone.slice(0, 2)); // less than a page (5 packets)
    const t0 = Date.now();
    while (parseOgg(Buffer.concat(client.chunks), false).pages.length < 3) {
      if (Date.now() - t0 > 2000) throw new Error('the partial page never came');
      await sleep(5);
    }
    const s = parseOgg(Buffer.concat(client.chunks), false);
    expect(s.pages[2]!.completed).toBe(2);
    expect(s.pages[2]!.granule).toBe(2n * 960n);
    expect(srv.streams.size).toBe(1);
    client.res.destroy();
    const t1 = Date.now();
    while (srv.reasons.length === 0 && Date.now() - t1 < 2000) await sleep(5);
    expect(srv.reasons).toEqual(['client-closed']);
    expect(source.listeners.size).toBe(0);
    expect(srv.streams.size).toBe(0);
    expect(srv.handles[0]!.closed).toBe(true);
  });

  it('serveOggStream handle: end() sends an EOS page and closes once', async () => {
    const source = new FakeSource();
    const handles: OggStreamHandle[] = [];
    const reasons: string[] = [];
    const server = http.createServer((req, res) => {
      handles.push(serveOggStream(req, res, source, { maxBufferedBytes: 1 << 20, onClose: (r: string) => reasons.push(r) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = await get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await source.waitForListeners(1);
      source.emit(tone.slice(0, 10));
      const handle = handles[0]!;
      handle.end();
      handle.end();
      const s = parseOgg(await client.body);
      checkStructure(s, true);
      checkGranules(s);
      expect(await handle.done).toBe('ended');
      expect(reasons).toEqual(['ended']);
      expect(handle.stats).toMatchObject({ packets: 10, granule: 9600 });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
