import opus from '@discordjs/opus';
import { OpusDecoder } from 'opus-decoder';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PACKET_SAMPLES } from '../src/protocol/constants.ts';
import type { OpusPacket } from '../src/stream/opus-packetizer.ts';
import { OpusPacketizer } from '../src/stream/opus-packetizer.ts';
import { Rng } from '../src/stream/rng.ts';

/** Uniform in [0, 1) from the project's seeded generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function sine(n: number, freq: number, amp: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / 48000);
  return x;
}

/** Pushes x in random-length chunks (0 included), then flushes. */
function packetize(p: OpusPacketizer, x: Float32Array, rand: () => number, maxChunk = 3000): OpusPacket[] {
  const out: OpusPacket[] = [];
  let at = 0;
  while (at < x.length) {
    const n = Math.min(Math.floor(rand() * maxChunk), x.length - at);
    out.push(...p.push(x.subarray(at, at + n)));
    at += n;
  }
  out.push(...p.flush());
  return out;
}

/** Decodes packet by packet with no pre-skip; checks that every packet is exactly one 20 ms frame. */
async function decodeAll(packets: OpusPacket[], channels: 1 | 2): Promise<Float32Array[]> {
  const decoder = new OpusDecoder({ channels, preSkip: 0 });
  await decoder.ready;
  try {
    const out = Array.from({ length: channels }, () => new Float32Array(packets.length * PACKET_SAMPLES));
    packets.forEach((p, k) => {
      const d = decoder.decodeFrame(p.data);
      expect(d.errors).toEqual([]);
      expect(d.samplesDecoded).toBe(PACKET_SAMPLES);
      expect(d.channelData.length).toBe(channels);
      for (let c = 0; c < channels; c++) out[c]!.set(d.channelData[c]!, k * PACKET_SAMPLES);
    });
    return out;
  } finally {
    decoder.free();
  }
}

/** SNR (dB) of y[i + lag] against x[i], away from the edges. */
function snrDb(x: Float32Array, y: Float32Array, lag: number, skip = 2000): number {
  let s = 0;
  let e = 0;
  for (let i = skip; i < x.length - skip; i++) {
    s += x[i]! ** 2;
    e += (x[i]! - y[i + lag]!) ** 2;
  }
  return 10 * Math.log10(s / e);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('OpusPacketizer', () => {
  for (const channels of [1, 2] as const) {
    it(`${channels === 1 ? 'mono' : 'stereo'}: random chunks give whole 20 ms packets with consecutive seq/pts that decode to the input`, async () => {
      const x = sine(48000 * 2 + 123, 440, 0.5);
      const p = new OpusPacketizer({ channels, bitrate: 64000 });
      const packets = packetize(p, x, rng(channels));
      // Enough frames to cover the input plus the encoder lookahead, no more.
      expect(packets.length).toBe(Math.ceil((x.length + p.preSkip) / PACKET_SAMPLES));
      packets.forEach((pk, i) => {
        expect(pk.seq).toBe(i);
        expect(pk.pts).toBe(i * PACKET_SAMPLES);
        expect(pk.data).toBeInstanceOf(Uint8Array);
        expect(pk.data.length).toBeGreaterThan(0);
      });
      const decoded = await decodeAll(packets, channels);
      for (let c = 0; c < channels; c++) {
        const snr = snrDb(x, decoded[c]!, p.preSkip);
        console.log(`440 Hz sine, ${channels} ch, 64 kbps, channel ${c}: SNR after pre-skip ${snr.toFixed(1)} dB`);
        expect(snr).toBeGreaterThan(15);
      }
      // Misaligned by a few samples the same comparison collapses, so the test does check alignment.
      expect(snrDb(x, decoded[0]!, p.preSkip + 20)).toBeLessThan(5);
    });
  }

  it('preSkip equals the measured encoder delay (cross-correlation of a broadband signal)', async () => {
    const rand = rng(42);
    const n = 48000;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = 0.2 * (rand() - 0.5) + 0.3 * Math.sin((2 * Math.PI * 330 * i) / 48000 + (3e-4 * i * i) / 48000);
    const p = new OpusPacketizer({ channels: 1, bitrate: 128000 });
    const [y] = await decodeAll([...p.push(x), ...p.flush()], 1);
    let bestLag = -1;
    let best = -Infinity;
    for (let lag = 0; lag <= 2000; lag++) {
      let c = 0;
      for (let i = 4000; i < n - 4000; i++) c += x[i]! * y![i + lag]!;
      if (c > best) {
        best = c;
        bestLag = lag;
      }
    }
    console.log(`measured Opus encoder delay: ${bestLag} samples at 48 kHz (preSkip ${p.preSkip})`);
    expect(bestLag).toBe(p.preSkip);
    expect(p.preSkip).toBe(312);
  });

  it('never encodes a partial frame: 0-length and 1-sample pushes', () => {
    const p = new OpusPacketizer({ channels: 2, bitrate: 96000 });
    // The native prototype is not configurable: spy on the instance's encoder instead.
    const encoder = (p as unknown as { encoder: InstanceType<typeof opus.OpusEncoder> }).encoder;
    expect(encoder).toBeInstanceOf(opus.OpusEncoder);
    const encode = vi.spyOn(encoder, 'encode');
    expect(p.push(new Float32Array(0))).toEqual([]);
    for (let i = 0; i < PACKET_SAMPLES - 1; i++) {
      expect(p.push(new Float32Array([0.1]))).toEqual([]);
      expect(p.push(new Float32Array(0))).toEqual([]);
    }
    expect(encode).not.toHaveBeenCalled();
    const out = p.push(new Float32Array([0.1]));
    expect(out.length).toBe(1);
    expect(out[0]!.pts).toBe(0);
    // 1919 + 1 + ... : a chunk that completes one frame and starts another.
    const more = p.push(new Float32Array(PACKET_SAMPLES * 2 + 5));
    expect(more.map((q) => q.seq)).toEqual([1, 2]);
    expect(p.samplesIn).toBe(PACKET_SAMPLES * 3 + 5);
    for (const call of encode.mock.calls) expect(call[0].length).toBe(PACKET_SAMPLES * 2 * 2);
    expect(encode).toHaveBeenCalledTimes(3);
  });

  it('flush pads the partial frame with zeros and covers the encoder lookahead', async () => {
    // 1000 samples: 1 full frame + 40 pending; 1000 + 312 needs 2 frames in all.
    const p = new OpusPacketizer({ channels: 1, bitrate: 64000 });
    const x = sine(1000, 1000, 0.5);
    const first = p.push(x);
    expect(first.length).toBe(1);
    const rest = p.flush();
    expect(rest.map((q) => q.pts)).toEqual([960]);
    expect(p.flush()).toEqual([]);
    expect(() => p.push(new Float32Array(1))).toThrow(/after flush/);
    const [y] = await decodeAll([...first, ...rest], 1);
    // The pushed audio is all there after the pre-skip, silence after it.
    const body = y!.subarray(p.preSkip + 100, p.preSkip + 900);
    expect(Math.max(...body.map(Math.abs))).toBeGreaterThan(0.3);
    const tail = y!.subarray(p.preSkip + 1000 + 100);
    expect(Math.max(0, ...tail.map(Math.abs))).toBeLessThan(0.05);

    // 960 - 312 = 648 samples fit in one frame with their lookahead.
    const q = new OpusPacketizer({ channels: 1, bitrate: 64000 });
    expect(q.push(new Float32Array(648))).toEqual([]);
    expect(q.flush().length).toBe(1);
    // Nothing pushed: nothing to flush.
    expect(new OpusPacketizer({ channels: 1, bitrate: 64000 }).flush()).toEqual([]);
  });

  it('clips out-of-range and non-finite samples instead of wrapping', async () => {
    const x = new Float32Array(PACKET_SAMPLES * 5);
    for (let i = 0; i < x.length; i++) x[i] = 3 * Math.sin((2 * Math.PI * 200 * i) / 48000);
    x[1234] = Number.NaN;
    x[2345] = Number.POSITIVE_INFINITY;
    const p = new OpusPacketizer({ channels: 1, bitrate: 64000 });
    const [y] = await decodeAll([...p.push(x), ...p.flush()], 1);
    // A wrapped int16 would give a full-scale sign flip; clipping gives a square-ish wave in the input's sign.
    let agree = 0;
    let total = 0;
    for (let i = 1000; i < x.length - 1000; i++) {
      if (Math.abs(x[i]!) > 1.5) {
        total++;
        if (Math.sign(y![i + p.preSkip]!) === Math.sign(x[i]!)) agree++;
      }
    }
    expect(agree / total).toBeGreaterThan(0.95);
  });

  it('setBitrate changes the packet size; bad options are refused', () => {
    const x = new Float32Array(PACKET_SAMPLES * 50);
    const rand = rng(3);
    for (let i = 0; i < x.length; i++) x[i] = 0.5 * (rand() - 0.5);
    const p = new OpusPacketizer({ channels: 1, bitrate: 128000 });
    const hi = p.push(x.subarray(0, x.length / 2));
    p.setBitrate(16000);
    const lo = p.push(x.subarray(x.length / 2));
    const avg = (a: OpusPacket[]) => a.slice(5).reduce((s, q) => s + q.data.length, 0) / (a.length - 5);
    console.log(`bytes per packet: ${avg(hi).toFixed(0)} at 128 kbps, ${avg(lo).toFixed(0)} at 16 kbps`);
    expect(avg(lo)).toBeLessThan(avg(hi) / 3);
    expect(() => p.setBitrate(100)).toThrow(RangeError);
    expect(() => new OpusPacketizer({ channels: 3 as 1, bitrate: 64000 })).toThrow(RangeError);
    expect(() => new OpusPacketizer({ channels: 1, bitrate: 1e9 })).toThrow(RangeError);
  });
});
