// WAV files: 32-bit float PCM (WAVE_FORMAT_IEEE_FLOAT) so that nothing clips, and a reader for the
// common PCM/float variants used by audio prompts and tests.
import { writeFileSync } from 'node:fs';

export function encodeWavFloat32(samples: Float32Array, sampleRate: number, channels = 1): Buffer {
  const dataBytes = samples.length * 4;
  const b = Buffer.alloc(58 + dataBytes);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(50 + dataBytes, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(18, 16);
  b.writeUInt16LE(3, 20); // IEEE float
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * channels * 4, 28);
  b.writeUInt16LE(channels * 4, 32);
  b.writeUInt16LE(32, 34);
  b.writeUInt16LE(0, 36); // cbSize
  // A fact chunk is required for non-PCM formats.
  b.write('fact', 38, 'ascii');
  b.writeUInt32LE(4, 42);
  b.writeUInt32LE(samples.length / channels, 46);
  b.write('data', 50, 'ascii');
  b.writeUInt32LE(dataBytes, 54);
  Buffer.from(samples.buffer, samples.byteOffset, dataBytes).copy(b, 58);
  return b;
}

export function writeWavFloat32(path: string, samples: Float32Array, sampleRate: number, channels = 1): void {
  writeFileSync(path, encodeWavFloat32(samples, sampleRate, channels));
}

export interface DecodedWav {
  sampleRate: number;
  channels: number;
  /** Interleaved samples in [-1, 1]. */
  samples: Float32Array;
}

/** Reads PCM 8/16/24/32-bit and float 32/64-bit WAV (including WAVE_FORMAT_EXTENSIBLE). */
export function decodeWav(buf: Buffer): DecodedWav {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE')
    throw new Error('not a RIFF/WAVE file');
  let at = 12;
  let format = 0;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  while (at + 8 <= buf.length) {
    const id = buf.toString('ascii', at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    const body = at + 8;
    if (id === 'fmt ') {
      format = buf.readUInt16LE(body);
      channels = buf.readUInt16LE(body + 2);
      sampleRate = buf.readUInt32LE(body + 4);
      bits = buf.readUInt16LE(body + 14);
      if (format === 0xfffe && size >= 26) format = buf.readUInt16LE(body + 24);
    } else if (id === 'data') {
      if (!channels || !sampleRate) throw new Error('WAV data chunk before its fmt chunk');
      const end = Math.min(buf.length, body + size);
      return { sampleRate, channels, samples: convert(buf.subarray(body, end), format, bits) };
    }
    at = body + size + (size & 1);
  }
  throw new Error('WAV file has no data chunk');
}

function convert(data: Buffer, format: number, bits: number): Float32Array {
  const width = bits / 8;
  const n = Math.floor(data.length / width);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * width;
    if (format === 3 && bits === 32) out[i] = data.readFloatLE(o);
    else if (format === 3 && bits === 64) out[i] = data.readDoubleLE(o);
    else if (format === 1 && bits === 16) out[i] = data.readInt16LE(o) / 32768;
    else if (format === 1 && bits === 24) out[i] = data.readIntLE(o, 3) / 8388608;
    else if (format === 1 && bits === 32) out[i] = data.readInt32LE(o) / 2147483648;
    else if (format === 1 && bits === 8) out[i] = (data.readUInt8(o) - 128) / 128;
    else throw new Error(`unsupported WAV encoding (format ${format}, ${bits} bits)`);
  }
  return out;
}
