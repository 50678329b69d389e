// Decoding of uploaded audio prompts: WAV (PCM / float) and Ogg Opus. Everything else is refused with a
// stable error code.
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { type ErrorRegistry, RiverrunError } from '../errors.ts';
import { resample } from './resampler.ts';
import { decodeWav } from './wav.ts';

export const AUDIO_FILE_ERRORS = {
  AUDIO_UNSUPPORTED: { meaning: 'The audio is not WAV (PCM or float) or Ogg Opus.' },
  AUDIO_CORRUPT: { meaning: 'The audio file is truncated or its header is inconsistent.' },
  AUDIO_TOO_LONG: { meaning: 'The audio is longer than the limit for a prompt.' },
  AUDIO_EMPTY: { meaning: 'The audio file is well formed but holds no samples (e.g. a WAV with an empty data chunk).' },
} as const satisfies ErrorRegistry;

export type AudioFileErrorCode = keyof typeof AUDIO_FILE_ERRORS;

export class AudioFileError extends RiverrunError<AudioFileErrorCode> {}

export interface DecodedAudio {
  sampleRate: number;
  channels: number;
  /** Interleaved samples, nominally in [-1, 1]; length is a multiple of channels. */
  samples: Float32Array;
}

export interface DecodeAudioOptions {
  /** Refuse (AUDIO_TOO_LONG) audio longer than this many seconds. */
  maxSeconds?: number;
}

export type AudioContainer = 'wav' | 'ogg-opus';

const MIN_RATE = 1000;
const MAX_RATE = 768000;
const MAX_CHANNELS = 255;

function ascii(bytes: Uint8Array, at: number, len: number): string {
  if (at + len > bytes.length) return '';
  return String.fromCharCode(...bytes.subarray(at, at + len));
}

/** Identifies the container/codec from the first bytes; throws AUDIO_UNSUPPORTED for anything else. */
export function detectAudioFormat(bytes: Uint8Array): AudioContainer {
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WAVE') return 'wav';
  if (ascii(bytes, 0, 4) === 'OggS') {
    // First page: 27-byte header, then the lacing table, then the first packet (the codec's ID header).
    const segments = bytes.length > 26 ? bytes[26]! : 0;
    const payload = 27 + segments;
    if (ascii(bytes, payload, 8) === 'OpusHead') return 'ogg-opus';
    let codec = 'an unknown codec';
    if (ascii(bytes, payload, 7) === '\x01vorbis') codec = 'Vorbis';
    else if (ascii(bytes, payload, 5) === '\x7fFLAC') codec = 'FLAC';
    else if (ascii(bytes, payload, 8) === 'Speex   ') codec = 'Speex';
    else if (ascii(bytes, payload, 7) === '\x80theora') codec = 'Theora';
    else if (payload + 8 > bytes.length) throw new AudioFileError('AUDIO_CORRUPT', 'truncated Ogg file');
    throw new AudioFileError('AUDIO_UNSUPPORTED', `Ogg file with ${codec}: only Ogg Opus and WAV are supported`);
  }
  let kind = 'unrecognized data';
  if (ascii(bytes, 0, 4) === 'RIFX' || ascii(bytes, 0, 4) === 'RF64') kind = `${ascii(bytes, 0, 4)} WAV`;
  else if (ascii(bytes, 0, 4) === 'fLaC') kind = 'FLAC';
  else if (ascii(bytes, 0, 3) === 'ID3' || (bytes.length > 1 && bytes[0] === 0xff && (bytes[1]! & 0xe0) === 0xe0)) kind = 'MP3/AAC';
  else if (ascii(bytes, 4, 4) === 'ftyp') kind = 'MP4/M4A';
  else if (ascii(bytes, 0, 4) === 'FORM') kind = 'AIFF';
  else if (bytes.length > 3 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) kind = 'WebM/Matroska';
  throw new AudioFileError('AUDIO_UNSUPPORTED', `${kind}: only WAV and Ogg Opus audio are supported`);
}

function checkDuration(frames: number, sampleRate: number, options: DecodeAudioOptions): void {
  const max = options.maxSeconds;
  if (max !== undefined && frames / sampleRate > max) {
    throw new AudioFileError('AUDIO_TOO_LONG', `audio is ${(frames / sampleRate).toFixed(1)} s long, the limit is ${max} s`);
  }
}

function decodeWavFile(bytes: Uint8Array, options: DecodeAudioOptions): DecodedAudio {
  let wav: ReturnType<typeof decodeWav>;
  try {
    wav = decodeWav(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const code = /unsupported WAV encoding/.test(message) ? 'AUDIO_UNSUPPORTED' : 'AUDIO_CORRUPT';
    throw new AudioFileError(code, `WAV: ${message}`, { cause: err });
  }
  const { sampleRate, channels } = wav;
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS)
    throw new AudioFileError('AUDIO_CORRUPT', `WAV: bad channel count ${channels}`);
  if (sampleRate < MIN_RATE || sampleRate > MAX_RATE) throw new AudioFileError('AUDIO_CORRUPT', `WAV: bad sample rate ${sampleRate}`);
  // A truncated file can end mid-frame: keep whole frames only.
  const frames = Math.floor(wav.samples.length / channels);
  // Nothing to continue from; refused here so that callers never see a zero-length prompt.
  if (frames === 0) throw new AudioFileError('AUDIO_EMPTY', 'WAV: the audio prompt is empty (no samples in the data chunk)');
  checkDuration(frames, sampleRate, options);
  const samples = frames * channels === wav.samples.length ? wav.samples : wav.samples.slice(0, frames * channels);
  for (let i = 0; i < samples.length; i++) if (!Number.isFinite(samples[i]!)) samples[i] = 0;
  return { sampleRate, channels, samples };
}

/** Granule position of the last Ogg page (48 kHz samples incl. pre-skip for Opus), or -1. */
function lastGranule(bytes: Uint8Array): number {
  for (let at = bytes.length - 27; at >= 0; at--) {
    if (bytes[at] === 0x4f && bytes[at + 1] === 0x67 && bytes[at + 2] === 0x67 && bytes[at + 3] === 0x53 && bytes[at + 4] === 0) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + at + 6, 8);
      const g = view.getBigInt64(0, true);
      if (g >= 0n) return Number(g);
    }
  }
  return -1;
}

/**
 * Checks the OpusHead packet (RFC 7845 section 5.1) before the WASM decoder sees it: a malformed one can
 * make the decoder fail with a WASM memory error. Returns the pre-skip.
 */
function checkOpusHead(bytes: Uint8Array): number {
  const segments = bytes[26]!;
  const at = 27 + segments; // detectAudioFormat found "OpusHead" here
  let size = 0;
  for (let i = 0; i < segments; i++) {
    size += bytes[27 + i]!;
    if (bytes[27 + i]! < 255) break;
  }
  if (size < 19 || at + size > bytes.length) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: truncated OpusHead');
  const version = bytes[at + 8]!;
  const channels = bytes[at + 9]!;
  const preSkip = bytes[at + 10]! | (bytes[at + 11]! << 8);
  const family = bytes[at + 18]!;
  if (version >> 4 !== 0) throw new AudioFileError('AUDIO_UNSUPPORTED', `Ogg Opus: unsupported OpusHead version ${version}`);
  if (channels < 1) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: zero channels');
  if (family === 0) {
    if (channels > 2) throw new AudioFileError('AUDIO_CORRUPT', `Ogg Opus: ${channels} channels with mapping family 0`);
  } else if (family === 1) {
    if (channels > 8 || size < 21 + channels) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: bad channel mapping table');
    const streams = bytes[at + 19]!;
    const coupled = bytes[at + 20]!;
    if (streams < 1 || coupled > streams) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: bad stream counts');
    for (let c = 0; c < channels; c++) {
      const m = bytes[at + 21 + c]!;
      if (m !== 255 && m >= streams + coupled) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: bad channel mapping');
    }
  } else {
    throw new AudioFileError('AUDIO_UNSUPPORTED', `Ogg Opus: channel mapping family ${family} is not supported`);
  }
  return preSkip;
}

async function decodeOggOpusFile(bytes: Uint8Array, options: DecodeAudioOptions): Promise<DecodedAudio> {
  const preSkip = checkOpusHead(bytes);
  // Cheap early refusal of long files from the last granule (decoding an hour of Opus takes a while).
  if (options.maxSeconds !== undefined) {
    const granule = lastGranule(bytes);
    if (granule > 0) checkDuration(Math.max(0, granule - preSkip), 48000, options);
  }
  const decoder = new OggOpusDecoder();
  try {
    await decoder.ready;
    let decoded: Awaited<ReturnType<typeof decoder.decodeFile>>;
    try {
      decoded = await decoder.decodeFile(bytes);
    } catch (err) {
      throw new AudioFileError('AUDIO_CORRUPT', `Ogg Opus: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const { channelData, samplesDecoded, errors, sampleRate } = decoded;
    if (errors.length > 0) {
      throw new AudioFileError('AUDIO_CORRUPT', `Ogg Opus: ${errors.length} corrupt packet(s), first: ${errors[0]!.message}`);
    }
    const channels = channelData.length;
    if (channels === 0 || samplesDecoded === 0) throw new AudioFileError('AUDIO_CORRUPT', 'Ogg Opus: no audio decoded');
    checkDuration(samplesDecoded, sampleRate, options);
    const samples = new Float32Array(samplesDecoded * channels);
    for (let c = 0; c < channels; c++) {
      const data = channelData[c]!;
      for (let i = 0; i < samplesDecoded; i++) samples[i * channels + c] = data[i]!;
    }
    return { sampleRate, channels, samples };
  } finally {
    try {
      decoder.free();
    } catch {
      // A decoder that failed on bad input can fail again while freeing its WASM memory; nothing to keep.
    }
  }
}

/**
 * Decodes a WAV (8/16/24/32-bit PCM, 32/64-bit float) or Ogg Opus file. Errors are AudioFileError with
 * code AUDIO_UNSUPPORTED (other formats), AUDIO_CORRUPT (damaged), AUDIO_EMPTY (a WAV without samples) or
 * AUDIO_TOO_LONG.
 */
export async function decodeAudioFile(bytes: Uint8Array, options: DecodeAudioOptions = {}): Promise<DecodedAudio> {
  const format = detectAudioFormat(bytes);
  return format === 'wav' ? decodeWavFile(bytes, options) : decodeOggOpusFile(bytes, options);
}

/** Averages interleaved channels into a new mono array (a copy even for mono input). */
export function toMono(samples: Float32Array, channels: number): Float32Array {
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`bad channel count ${channels}`);
  if (channels === 1) return samples.slice();
  const frames = Math.floor(samples.length / channels);
  const out = new Float32Array(frames);
  const scale = 1 / channels;
  for (let i = 0, k = 0; i < frames; i++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += samples[k++]!;
    out[i] = s * scale;
  }
  return out;
}

/** Decodes, downmixes to mono and resamples to targetRate (time-aligned, ceil(frames * ratio) samples). */
export async function decodeToMono(bytes: Uint8Array, targetRate: number, options: DecodeAudioOptions = {}): Promise<Float32Array> {
  const { sampleRate, channels, samples } = await decodeAudioFile(bytes, options);
  const mono = toMono(samples, channels);
  return sampleRate === targetRate ? mono : resample(mono, sampleRate, targetRate);
}
