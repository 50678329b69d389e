// Incremental EnCodec decoding of an endless stream of codec frames, window by window, carrying the
// decoder's LSTM state from one window to the next, at a cost linear in the stream's length.
//
// The codec decoder (src/models/graphs/encodec.ts) is conv(k7) -> 2-layer LSTM -> upsampling convs. Its
// convolutions are not causal (the audio of frame t needs frames up to t + 4) and its LSTM depends on every
// earlier frame. A window here is
//
//     [emitted - leftContextFrames, emitted + chunkFrames + lookaheadFrames)
//
// (from frame 0 while emitted <= leftContextFrames: a true start, zero state), of which only the audio of
// [emitted, emitted + chunkFrames) is emitted:
// * the first preLstmFrames (3) frames feed only the first conv, whose output the LSTM needs from frame
//   start + 3 on (its reach is 3 frames either side); the graph drops them after that conv;
// * the LSTM runs from start + preLstmFrames, from the state the previous window returned for that frame
//   (state_at), so it follows the whole-sequence trajectory exactly instead of converging onto it;
// * the one frame between the LSTM start and `emitted` covers the upsampling convs' left reach (under a
//   frame), and the lookahead (4) puts the right-edge reflect padding past the emitted part. The state
//   handed on is the one before the next window's LSTM start (emitted + chunk - 1); the LSTM inputs before
//   it need frames up to emitted + chunk + 1, inside this window's lookahead.
// So every emitted sample is the whole-sequence decode's, up to float rounding. Measured against one
// whole-sequence decode of 300 random frames (test/codec-stream.test.ts), with the defaults and with chunks
// of 1-25 frames: max abs error 0 (bit-identical here) on the tiny preset and the musicgen-tiny fixture,
// 1.5e-7..1.8e-7 (129 dB SNR, signal rms 0.07) on the demo model, 7.8e-7..8.9e-7 (122-124 dB, rms 0.24) on a
// random codec of musicgen-small's shape; the test's tolerance is 2e-6 and 110 dB. One frame less of either
// context, of the pre-LSTM frames or of lookahead leaves errors of the order of the signal (max abs error
// 0.017-2, SNR 16-49 dB with chunk 10); more changes nothing.
// Every frame is decoded (chunk + left + lookahead) / chunk times (steadyStateCost): constant, so linear in
// total, and with only 8 frames of overlap small chunks are cheap.
//
// Frame history is bounded: frames older than the next window's start are dropped. Frames pushed but not
// yet decoded are kept until decoded (the caller is expected to call decodeNext() whenever ready()).

import { type ErrorRegistry, RiverrunError } from '../errors.ts';
import type { CodecState, CodecWindow, CodecWindowAudio } from '../models/model-bundle.ts';

/** Decodes one window (batch 1): `ModelBundle.decodeAudioWindow`. */
export type CodecDecodeFn = (window: CodecWindow) => Promise<CodecWindowAudio>;

export interface CodecStreamOptions {
  /** Codebooks per frame (K, 4 for MusicGen). */
  codebooks: number;
  /** Audio samples per codec frame (640 for the 32 kHz EnCodec). */
  hop: number;
  /** Frames emitted per decode. */
  chunkFrames: number;
  /** Frames before the chunk decoded again for the convolutions' left reach (not emitted). */
  leftContextFrames: number;
  /** Of those, the first ones, which feed only the first convolution: the LSTM starts after them. */
  preLstmFrames: number;
  /** Frames after the chunk that must be known before it is decoded (not emitted). */
  lookaheadFrames: number;
}

/**
 * Defaults for the 32 kHz EnCodec of MusicGen (50 frames/s):
 * - leftContextFrames 4 = preLstmFrames 3 (the first conv's left reach) + 1 (the upsampling convs'), and
 *   lookaheadFrames 4 (the decoder's reach ahead, +80 ms before a frame's audio can be decoded): the
 *   least that makes every emitted sample exact (see the top of this file).
 * - chunkFrames 10 (0.2 s): a frame's audio (and the steering that shaped it) waits at most 0.2 s + 80 ms
 *   for its chunk, against 0.5 s + 80 ms with 25. Cost: (10 + 4 + 4) / 10 = 1.8 frames decoded per frame
 *   emitted (25: 1.32; 5: 2.6; 1: 9), computed from the options; below the 2.16 of the earlier re-decoding
 *   defaults (chunk 25, left context 25). On a random codec of musicgen-small's shape, one thread, the
 *   decode time followed that ratio (chunk 10: ~1.37x chunk 25's); per-call overhead added little.
 */
export const DEFAULT_CODEC_STREAM = {
  chunkFrames: 10,
  leftContextFrames: 4,
  preLstmFrames: 3,
  lookaheadFrames: 4,
} as const;

export interface CodecStreamStats {
  /** Frames pushed since construction. */
  framesPushed: number;
  /** Frames whose audio has been returned. */
  framesEmitted: number;
  /** Frames run through the decoder, overlaps included: framesDecoded / framesEmitted is the cost ratio. */
  framesDecoded: number;
  /** Decoder calls. */
  decodeCalls: number;
  /** Samples returned. */
  samplesEmitted: number;
  /** reset() calls (context resets the codec decoded across). */
  resets: number;
}

export const CODEC_STREAM_ERRORS = {
  CODEC_STREAM_OPTIONS: { meaning: 'CodecStream options are out of range or inconsistent with each other.' },
  CODEC_STREAM_FRAME: { meaning: 'A pushed frame has the wrong number of codes, or a code that is not a non-negative integer.' },
  CODEC_STREAM_BUSY: { meaning: 'decodeNext()/flush() was called while another decode was in flight.' },
  CODEC_STREAM_ENDED: { meaning: 'A frame was pushed after flush().' },
  CODEC_STREAM_DECODE: { meaning: 'The codec decoder returned the wrong number of samples.' },
} as const satisfies ErrorRegistry;

export type CodecStreamErrorCode = keyof typeof CODEC_STREAM_ERRORS;

export class CodecStreamError extends RiverrunError<CodecStreamErrorCode> {}

export class CodecStream {
  readonly codebooks: number;
  readonly hop: number;
  readonly chunkFrames: number;
  readonly leftContextFrames: number;
  readonly preLstmFrames: number;
  readonly lookaheadFrames: number;

  private readonly decode: CodecDecodeFn;
  /** Stored frames, frame-major: frame `base + i` at [i * K, (i + 1) * K). */
  private store: Int32Array;
  /** Absolute index (frames since the start) of the first stored frame. */
  private base = 0;
  /** Frames pushed so far (absolute index of the next frame). */
  private total = 0;
  /** Frames emitted so far. */
  private emitted = 0;
  /** The LSTM state before frame `stateFrame`, for the next window; null = none (the next one starts at 0). */
  private state: CodecState | null = null;
  private stateFrame = 0;
  private busy = false;
  private ended = false;
  private readonly counters: CodecStreamStats = {
    framesPushed: 0,
    framesEmitted: 0,
    framesDecoded: 0,
    decodeCalls: 0,
    samplesEmitted: 0,
    resets: 0,
  };

  constructor(decode: CodecDecodeFn, options: CodecStreamOptions) {
    const { codebooks, hop, chunkFrames, leftContextFrames, preLstmFrames, lookaheadFrames } = options;
    const int = (name: string, v: number, min: number) => {
      if (!Number.isInteger(v) || v < min)
        throw new CodecStreamError('CODEC_STREAM_OPTIONS', `${name} must be an integer >= ${min}, got ${v}`);
    };
    int('codebooks', codebooks, 1);
    int('hop', hop, 1);
    int('chunkFrames', chunkFrames, 1);
    int('leftContextFrames', leftContextFrames, 0);
    int('lookaheadFrames', lookaheadFrames, 0);
    int('preLstmFrames', preLstmFrames, 0);
    if (preLstmFrames > leftContextFrames)
      throw new CodecStreamError(
        'CODEC_STREAM_OPTIONS',
        `preLstmFrames ${preLstmFrames} is part of the left context: at most leftContextFrames = ${leftContextFrames}`,
      );
    this.decode = decode;
    this.codebooks = codebooks;
    this.hop = hop;
    this.chunkFrames = chunkFrames;
    this.leftContextFrames = leftContextFrames;
    this.preLstmFrames = preLstmFrames;
    this.lookaheadFrames = lookaheadFrames;
    this.store = new Int32Array((leftContextFrames + 2 * (chunkFrames + lookaheadFrames)) * codebooks);
  }

  /** Frames per emitted frame decoded in steady state: (chunk + left + lookahead) / chunk. */
  get steadyStateCost(): number {
    return (this.chunkFrames + this.leftContextFrames + this.lookaheadFrames) / this.chunkFrames;
  }

  /** Frames pushed but not yet emitted. */
  get pendingFrames(): number {
    return this.total - this.emitted;
  }

  /** Frames still needed: the pending ones plus the left context of the next window. */
  get heldFrames(): number {
    return this.total - Math.max(this.base, this.emitted - this.leftContextFrames);
  }

  /** Frames the code storage has room for (grows only when the caller lets frames pile up undecoded). */
  get capacityFrames(): number {
    return this.store.length / this.codebooks;
  }

  stats(): CodecStreamStats {
    return { ...this.counters };
  }

  /** Appends the K codes of the next frame. */
  push(frame: ArrayLike<number>): void {
    if (this.ended)
      throw new CodecStreamError('CODEC_STREAM_ENDED', 'push after flush(): the stream has ended (make a new CodecStream for a new one)');
    const K = this.codebooks;
    if (frame.length !== K) throw new CodecStreamError('CODEC_STREAM_FRAME', `a frame has ${K} codes, got ${frame.length}`);
    for (let k = 0; k < K; k++) {
      const c = frame[k]!;
      if (!Number.isInteger(c) || c < 0 || c > 0x7fffffff)
        throw new CodecStreamError('CODEC_STREAM_FRAME', `code ${c} of codebook ${k} is not a non-negative integer`);
    }
    let held = this.total - this.base;
    if ((held + 1) * K > this.store.length) {
      this.compact();
      held = this.total - this.base;
      if ((held + 1) * K > this.store.length) {
        const grown = new Int32Array(this.store.length * 2);
        grown.set(this.store.subarray(0, held * K));
        this.store = grown;
      }
    }
    const at = held * K;
    for (let k = 0; k < K; k++) this.store[at + k] = frame[k]!;
    this.total++;
    this.counters.framesPushed++;
  }

  /** True when enough frames are known to emit the next chunk (chunk + lookahead frames pending). */
  ready(): boolean {
    return !this.ended && this.total - this.emitted >= this.chunkFrames + this.lookaheadFrames;
  }

  /** Audio of the next chunk (chunkFrames * hop samples), or null when not ready(). */
  async decodeNext(): Promise<Float32Array | null> {
    if (!this.ready()) return null;
    return this.guard(() => this.emit(this.chunkFrames, this.lookaheadFrames, false));
  }

  /**
   * End of stream: the audio of every frame not yet emitted, decoded without lookahead (the sequence ends
   * there, exactly as a whole-sequence decode would end). Empty when nothing is pending. The stream is then
   * ended: push() throws.
   */
  async flush(): Promise<Float32Array> {
    if (this.ended) return new Float32Array(0);
    return this.guard(async () => {
      const parts: Float32Array[] = [];
      // Anything the caller left undecoded goes in chunks, so that one flush never decodes an unbounded window.
      while (this.total - this.emitted >= this.chunkFrames + this.lookaheadFrames)
        parts.push(await this.emit(this.chunkFrames, this.lookaheadFrames, false));
      const rest = this.total - this.emitted;
      if (rest > 0) parts.push(await this.emit(rest, 0, true));
      this.ended = true;
      this.state = null;
      return concat(parts);
    });
  }

  /**
   * The language model's context was reset: the frames pushed from now on come from a new token history.
   * The codec keeps its history and decodes across the boundary as one code sequence, dropping and
   * restarting nothing, so
   * - every pushed frame still becomes exactly `hop` samples, in order: frame numbers, pts and the audio
   *   stay in step (dropping the frames pending at the reset would lose up to chunk + lookahead - 1 frames
   *   and shift everything after it);
   * - the cut sounds the way the codec renders those codes back to back, as an offline decode of the
   *   whole stream would: the convolutions blend the ~4 frames either side and the LSTM carries on (a cold
   *   restart would put two artificial edges at the cut: the old audio's reflect padding and a zero LSTM
   *   state).
   * For an unrelated new sequence (a new stream) make a new CodecStream: it holds no model state.
   * Only counted (stats().resets).
   */
  reset(): void {
    this.counters.resets++;
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw new CodecStreamError('CODEC_STREAM_BUSY', 'decodeNext()/flush() called while another decode is in flight');
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Decodes [start, emitted + frames + lookahead), start = emitted - left (or 0, a true start from the zero
   * state): the LSTM runs from start + preLstm on, from the state the previous window left for that frame,
   * and leaves the state for the next window's LSTM start (unless `last`: the end of the stream). Returns the
   * audio of [emitted, emitted + frames).
   */
  private async emit(frames: number, lookahead: number, last: boolean): Promise<Float32Array> {
    const K = this.codebooks;
    const hop = this.hop;
    const fromZero = this.emitted <= this.leftContextFrames;
    const start = fromZero ? 0 : this.emitted - this.leftContextFrames;
    const contextFrames = fromZero ? 0 : this.preLstmFrames;
    if (!fromZero && (this.state === null || this.stateFrame !== start + contextFrames))
      throw new Error(`CodecStream: no LSTM state for frame ${start + contextFrames} (internal)`);
    const end = this.emitted + frames + lookahead;
    const n = end - start;
    // The next window's LSTM start, when there is a next window that does not start from zero.
    const nextEmitted = this.emitted + frames;
    const carry = !last && nextEmitted > this.leftContextFrames;
    const nextStateFrame = nextEmitted - this.leftContextFrames + this.preLstmFrames;
    const codes = new BigInt64Array(K * n);
    for (let t = 0; t < n; t++) {
      const at = (start - this.base + t) * K;
      for (let k = 0; k < K; k++) codes[k * n + t] = BigInt(this.store[at + k]!);
    }
    const { audio, state } = await this.decode({
      codes,
      frames: n,
      contextFrames,
      stateAt: carry ? nextStateFrame - start : n,
      state: fromZero ? null : this.state,
    });
    const expected = (n - contextFrames) * hop;
    if (audio.length !== expected)
      throw new CodecStreamError('CODEC_STREAM_DECODE', `decoder returned ${audio.length} samples for ${n} frames, expected ${expected}`);
    const from = (this.emitted - start - contextFrames) * hop;
    const out = audio.slice(from, from + frames * hop);
    this.state = carry ? state : null;
    this.stateFrame = nextStateFrame;
    this.emitted += frames;
    this.counters.framesEmitted += frames;
    this.counters.framesDecoded += n;
    this.counters.decodeCalls++;
    this.counters.samplesEmitted += out.length;
    this.dropHistory();
    return out;
  }

  /** Forgets frames that no later window needs (logically; the storage is compacted lazily in push). */
  private dropHistory(): void {
    const keep = Math.max(0, this.emitted - this.leftContextFrames);
    if (keep > this.base && (keep - this.base) * this.codebooks * 2 >= this.store.length) this.compact();
  }

  private compact(): void {
    const keep = Math.max(this.base, this.emitted - this.leftContextFrames);
    // Safe during a decode: a window copies its codes before awaiting, and `emitted` moves only after.
    if (keep === this.base) return;
    const K = this.codebooks;
    this.store.copyWithin(0, (keep - this.base) * K, (this.total - this.base) * K);
    this.base = keep;
  }
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
