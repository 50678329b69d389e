import { describe, expect, it } from 'vitest';
import { AudioFileError, decodeAudioFile, decodeToMono, detectAudioFormat, toMono } from '../src/stream/audio-file.ts';
import { oggCrc32 } from '../src/stream/ogg-muxer.ts';
import { OpusPacketizer } from '../src/stream/opus-packetizer.ts';
import { encodeWavFloat32 } from '../src/stream/wav.ts';

// ---- test-only writers -------------------------------------------------------------------------------

/** 16-bit PCM WAV from interleaved float samples. */
function encodeWav16(samples: Float32Array, sampleRate: number, channels: number): Uint8Array {
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + samples.length * 2, 4);
  b.write('WAVEfmt ', 8, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * channels * 2, 28);
  b.writeUInt16LE(channels * 2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(samples.length * 2, 40);
  for (let i = 0; i < samples.length; i++) b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768))), 44 + i * 2);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** One Ogg page holding whole packets (RFC 3533). */
function oggPage(packets: Uint8Array[], granule: bigint, serial: number, seq: number, flags: number): Buffer {
  const lacing: number[] = [];
  for (const p of packets) {
    for (let n = p.length; ; n -= 255) {
      lacing.push(Math.min(n, 255));
      if (n < 255) break;
    }
  }
  if (lacing.length > 255) throw new Error('too many segments for one page');
  const body = Buffer.concat(packets);
  const page = Buffer.alloc(27 + lacing.length + body.length);
  page.write('OggS', 0, 'ascii');
  page[4] = 0;
  page[5] = flags;
  page.writeBigInt64LE(granule, 6);
  page.writeUInt32LE(serial, 14);
  page.writeUInt32LE(seq, 18);
  page[26] = lacing.length;
  Buffer.from(lacing).copy(page, 27);
  body.copy(page, 27 + lacing.length);
  page.writeUInt32LE(oggCrc32(page), 22);
  return page;
}

/** Minimal Ogg Opus file (RFC 7845) from a mono 48 kHz signal, via OpusPacketizer. */
function encodeOggOpus(x: Float32Array, channels: 1 | 2): Uint8Array {
  const p = new OpusPacketizer({ channels, bitrate: 96000 });
  const packets = [...p.push(x), ...p.flush()];
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'ascii');
  head[8] = 1;
  head[9] = channels;
  head.writeUInt16LE(p.preSkip, 10);
  head.writeUInt32LE(48000, 12);
  head.writeInt16LE(0, 16);
  head[18] = 0;
  const vendor = Buffer.from('riverrun-test', 'utf8');
  const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
  tags.write('OpusTags', 0, 'ascii');
  tags.writeUInt32LE(vendor.length, 8);
  vendor.copy(tags, 12);
  tags.writeUInt32LE(0, 12 + vendor.length);
  const serial = 0x5eed;
  const pages = [oggPage([head], 0n, serial, 0, 0x02), oggPage([tags], 0n, serial, 1, 0)];
  const perPage = 5;
  for (let i = 0; i < packets.length; i += perPage) {
    const group = packets.slice(i, i + perPage);
    const last = i + perPage >= packets.length;
    // Granule: 48 kHz samples through the page's last packet, pre-skip included; the last page ends the audio exactly.
    const granule = last ? BigInt(p.preSkip + p.samplesIn) : BigInt((i + group.length) * 960);
    pages.push(
      oggPage(
        group.map((q) => q.data),
        granule,
        serial,
        pages.length,
        last ? 0x04 : 0,
      ),
    );
  }
  const file = Buffer.concat(pages);
  return new Uint8Array(file.buffer, file.byteOffset, file.length);
}

function sine(n: number, freq: number, rate: number, amp = 0.5): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / rate);
  return x;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AudioFileError);
    return (err as AudioFileError).code;
  }
  return undefined;
}

// ---- tests -------------------------------------------------------------------------------------------

describe('decodeAudioFile', () => {
  it('decodes a float32 WAV exactly', async () => {
    const x = sine(32000, 440, 32000);
    const d = await decodeAudioFile(encodeWavFloat32(x, 32000, 1));
    expect(d.sampleRate).toBe(32000);
    expect(d.channels).toBe(1);
    expect(d.samples).toEqual(x);
  });

  it('decodes a 16-bit stereo WAV', async () => {
    const frames = 44100;
    const x = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      x[2 * i] = 0.5 * Math.sin((2 * Math.PI * 440 * i) / 44100);
      x[2 * i + 1] = -0.25;
    }
    const d = await decodeAudioFile(encodeWav16(x, 44100, 2));
    expect(d.sampleRate).toBe(44100);
    expect(d.channels).toBe(2);
    expect(d.samples.length).toBe(frames * 2);
    let maxErr = 0;
    for (let i = 0; i < x.length; i++) maxErr = Math.max(maxErr, Math.abs(d.samples[i]! - x[i]!));
    expect(maxErr).toBeLessThanOrEqual(0.5 / 32768 + 1e-9);
  });

  for (const channels of [1, 2] as const) {
    it(`decodes a ${channels}-channel Ogg Opus file to its exact length at 48 kHz`, async () => {
      const n = 48000 + 777;
      const x = sine(n, 440, 48000);
      const file = encodeOggOpus(x, channels);
      expect(detectAudioFormat(file)).toBe('ogg-opus');
      const d = await decodeAudioFile(file);
      expect(d.sampleRate).toBe(48000);
      expect(d.channels).toBe(channels);
      expect(d.samples.length).toBe(n * channels);
      const mono = toMono(d.samples, channels);
      let s = 0;
      let e = 0;
      for (let i = 2000; i < n - 2000; i++) {
        s += x[i]! ** 2;
        e += (x[i]! - mono[i]!) ** 2;
      }
      const snr = 10 * Math.log10(s / e);
      console.log(`Ogg Opus round trip, ${channels} ch at 96 kbps: SNR ${snr.toFixed(1)} dB`);
      expect(snr).toBeGreaterThan(15);
    });
  }

  it('refuses other formats with AUDIO_UNSUPPORTED', async () => {
    const garbage = new Uint8Array(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) & 0xff;
    expect(await codeOf(decodeAudioFile(garbage))).toBe('AUDIO_UNSUPPORTED');
    expect(await codeOf(decodeAudioFile(new Uint8Array(0)))).toBe('AUDIO_UNSUPPORTED');
    expect(await codeOf(decodeAudioFile(new TextEncoder().encode('ID3\x04\x00 mp3 data')))).toBe('AUDIO_UNSUPPORTED');
    // An Ogg Vorbis first page (identification header).
    const vorbisId = Buffer.concat([Buffer.from('\x01vorbis', 'latin1'), Buffer.alloc(23)]);
    const vorbis = oggPage([vorbisId], 0n, 1, 0, 0x02);
    let err: unknown;
    try {
      await decodeAudioFile(vorbis);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AudioFileError);
    expect((err as AudioFileError).code).toBe('AUDIO_UNSUPPORTED');
    expect((err as Error).message).toMatch(/Vorbis/);
    // A WAV in an encoding decodeWav does not know (A-law, format 6).
    const alaw = Buffer.from(encodeWav16(new Float32Array(100), 8000, 1));
    alaw.writeUInt16LE(6, 20);
    alaw.writeUInt16LE(8, 34);
    expect(await codeOf(decodeAudioFile(alaw))).toBe('AUDIO_UNSUPPORTED');
  });

  it('reports damaged files as AUDIO_CORRUPT', async () => {
    // WAV header cut before the data chunk.
    const wav = encodeWav16(sine(1000, 440, 8000), 8000, 1);
    expect(await codeOf(decodeAudioFile(wav.subarray(0, 40)))).toBe('AUDIO_CORRUPT');
    // WAV with a zero sample rate.
    const badRate = Buffer.from(wav);
    badRate.writeUInt32LE(0, 24);
    expect(await codeOf(decodeAudioFile(badRate))).toBe('AUDIO_CORRUPT');
    // Ogg Opus with its headers only.
    const ogg = encodeOggOpus(sine(4800, 440, 48000), 1);
    const headersOnly = ogg.subarray(0, 27 + 1 + 19);
    expect(await codeOf(decodeAudioFile(headersOnly))).toBe('AUDIO_CORRUPT');
    // A WAV truncated mid-frame keeps whole frames only.
    const stereo = encodeWav16(new Float32Array(200).fill(0.25), 8000, 2);
    const cut = await decodeAudioFile(stereo.subarray(0, stereo.length - 2));
    expect(cut.samples.length).toBe(198);
  });

  it('refuses a WAV whose data chunk is empty with AUDIO_EMPTY, saying so', async () => {
    const empty = encodeWav16(new Float32Array(0), 8000, 1);
    const err = await decodeAudioFile(empty).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AudioFileError);
    expect((err as AudioFileError).code).toBe('AUDIO_EMPTY');
    expect((err as AudioFileError).message).toMatch(/empty/);
    // Less than one frame (a stereo WAV with 2 bytes of data) is empty too.
    const half = encodeWav16(new Float32Array(2), 8000, 2);
    expect(await codeOf(decodeAudioFile(half.subarray(0, half.length - 2)))).toBe('AUDIO_EMPTY');
    expect(await codeOf(decodeToMono(empty, 32000))).toBe('AUDIO_EMPTY');
  });

  it('refuses audio longer than maxSeconds with AUDIO_TOO_LONG', async () => {
    const wav = encodeWavFloat32(new Float32Array(16000 * 3), 16000, 1);
    expect(await codeOf(decodeAudioFile(wav, { maxSeconds: 2.5 }))).toBe('AUDIO_TOO_LONG');
    expect((await decodeAudioFile(wav, { maxSeconds: 3 })).samples.length).toBe(48000);
    const ogg = encodeOggOpus(sine(48000 * 2, 440, 48000), 1);
    expect(await codeOf(decodeAudioFile(ogg, { maxSeconds: 1.5 }))).toBe('AUDIO_TOO_LONG');
    expect((await decodeAudioFile(ogg, { maxSeconds: 2 })).samples.length).toBe(96000);
    expect(await codeOf(decodeToMono(wav, 32000, { maxSeconds: 1 }))).toBe('AUDIO_TOO_LONG');
  });
});

describe('toMono / decodeToMono', () => {
  it('averages the channels', () => {
    expect(toMono(new Float32Array([1, 0, 0.5, 0.5, -1, 1]), 2)).toEqual(new Float32Array([0.5, 0.5, 0]));
    const mono = new Float32Array([0.1, 0.2]);
    const copy = toMono(mono, 1);
    expect(copy).toEqual(mono);
    expect(copy).not.toBe(mono);
    expect(toMono(new Float32Array([3, 6, 9, 1, 1, 1]), 3)).toEqual(new Float32Array([6, 1]));
  });

  it('resamples a 44.1 kHz stereo WAV to 32 kHz mono of the right length', async () => {
    const frames = 44100 * 2;
    const x = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      const s = Math.sin((2 * Math.PI * 1000 * i) / 44100);
      x[2 * i] = 0.6 * s;
      x[2 * i + 1] = 0.2 * s;
    }
    const y = await decodeToMono(encodeWav16(x, 44100, 2), 32000);
    expect(y.length).toBe(64000);
    // Mono = 0.4 * sin, time-aligned at 32 kHz (16-bit quantisation limits the SNR to ~90 dB).
    let s = 0;
    let e = 0;
    for (let i = 500; i < y.length - 500; i++) {
      const r = 0.4 * Math.sin((2 * Math.PI * 1000 * i) / 32000);
      s += r * r;
      e += (y[i]! - r) ** 2;
    }
    const snr = 10 * Math.log10(s / e);
    console.log(`decodeToMono 44.1 kHz stereo 16-bit WAV -> 32 kHz mono: SNR ${snr.toFixed(1)} dB`);
    expect(snr).toBeGreaterThan(70);
    // Same rate: no resampling, just the downmix.
    const same = await decodeToMono(encodeWavFloat32(new Float32Array([0.5, 0.5, 0.25, 0.75]), 32000, 2), 32000);
    expect(same).toEqual(new Float32Array([0.5, 0.5]));
  });

  it('decodes Ogg Opus to 32 kHz mono', async () => {
    const n = 48000;
    const y = await decodeToMono(encodeOggOpus(sine(n, 440, 48000), 2), 32000);
    expect(y.length).toBe(32000);
  });
});
