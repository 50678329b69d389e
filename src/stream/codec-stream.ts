// Incremental EnCodec decoding of an endless stream of codec frames, in overlapping windows, at a cost
// linear in the stream's length.
//
// Why windows: the codec decoder (src/models/graphs/encodec.ts) is not causal and has a 2-layer LSTM, so
// the audio of frame t depends on frames up to t + 4 (convolutions) and on every frame before it (LSTM).
// Decoding each chunk alone would click at every boundary; decoding the whole history again each time
// would cost quadratic time. A window here is
//
//     [emitted - leftContextFrames, emitted + chunkFrames + lookaheadFrames)
//
// of which only the audio of [emitted, emitted + chunkFrames) is emitted. The left context lets the LSTM
// (which the graph starts from a zero state) converge back onto the whole-sequence trajectory, and lets
// the left-edge reflect padding fall outside the emitted part; the lookahead puts the right-edge padding
// past it. Every frame is decoded (chunk + left + lookahead) / chunk times: constant, so linear in total.
//
// Exactness against one whole-sequence decode of 300 random frames (test/codec-stream.test.ts, on the
// tiny preset and the musicgen-tiny fixture; a random codec of musicgen-small's size behaves the same):
// * Right edge: decoding frames [0, n) gives the whole-sequence audio exactly up to sample
//   (n - 4) * hop + 158, so lookaheadFrames >= 4 makes the emitted part's right edge exact. With 2 the
//   chunk tails are off by the order of the signal (max error 0.7-1.5, SNR ~19 dB); 6 changes nothing.
// * Left edge: what remains is the LSTM's distance from its whole-sequence state (plus the left-edge
//   padding for contexts under 4 frames). It shrinks by ~3.5 dB per frame of left context on all three
//   models: left 0 -> SNR 12 dB (max error 1-2.5), 8 -> 60 dB, 16 -> 90 dB, 25 -> 121-124 dB (max error
//   2e-6..1e-5), and from ~32 frames on only float rounding is left (~5e-7, 130 dB). The start of the
//   stream is a true sequence start, so the first windows begin at frame 0 and are exact.
// * Cross-fade (crossfadeSamples, default 0 = off): blends the previous window's audio just past its chunk
//   end (decoded in its lookahead) into the head of the new chunk. With lookahead 4 the previous window is
//   exact for 158 samples past its chunk end, so a fade of up to 158 samples costs nothing; 128 samples
//   gain 0.5 dB SNR (less than one more frame of left context) and leave the largest sample-to-sample jump
//   of the error about where it is: there is no step at the boundary to hide, the error is spread over the
//   chunk's first frames. Past the exact part of the lookahead a fade mixes in the right-edge padding error
//   (640 samples with lookahead 4: 37 dB against 124). It is off by default because more left context is
//   the better lever; keep crossfadeSamples <= (lookaheadFrames - 4) * hop + 158 if used.
//
// Frame history is bounded: frames older than the next window's start are dropped. Frames pushed but not
// yet decoded are kept until decoded (the caller is expected to call decodeNext() whenever ready()).

import { type ErrorRegistry, RiverrunError } from '../errors.ts';

/** Decodes codes [K, frames] (codebook-major, one batch row) to frames * hop samples. */
export type CodecDecodeFn = (codes: BigInt64Array, frames: number) => Promise<Float32Array>;

export interface CodecStreamOptions {
  /** Codebooks per frame (K, 4 for MusicGen). */
  codebooks: number;
  /** Audio samples per codec frame (640 for the 32 kHz EnCodec). */
  hop: number;
  /** Frames emitted per decode. */
  chunkFrames: number;
  /** Frames before the chunk decoded again for the LSTM to converge (not emitted). */
  leftContextFrames: number;
  /** Frames after the chunk that must be known before it is decoded (not emitted). */
  lookaheadFrames: number;
  /** Cross-fade length at chunk boundaries, <= lookaheadFrames * hop. Default 0 (off). */
  crossfadeSamples?: number;
}

/**
 * Defaults for the 32 kHz EnCodec of MusicGen (50 frames/s):
 * - lookaheadFrames 4: the smallest that makes the chunk's right edge exact (the decoder's receptive field
 *   reaches 4 frames ahead); it adds 80 ms between "frame generated" and "its audio can be decoded".
 * - chunkFrames 25 (0.5 s): audio arrives in half-second pieces, so a frame waits at most 0.5 s + 80 ms for
 *   its chunk. Smaller chunks pay the overlap more often (10 -> 3.9 frames decoded per frame, 5 -> 6.8) and
 *   more per-call overhead; larger ones (50 -> 1.58) make audio and steering arrive in later, bigger bursts.
 * - leftContextFrames 25 (0.5 s): 121-124 dB SNR vs the whole-sequence decode on the random models, i.e.
 *   ~20 dB above what 16-bit output can show, with ~7 frames of margin over the ~18 needed for 96 dB, for a
 *   trained LSTM that may remember longer. Beyond ~32 frames nothing more is gained on the random models.
 * Cost: (25 + 25 + 4) / 25 = 2.16 frames decoded per frame emitted, in steady state.
 */
export const DEFAULT_CODEC_STREAM = {
  chunkFrames: 25,
  leftContextFrames: 25,
  lookaheadFrames: 4,
  crossfadeSamples: 0,
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
  readonly lookaheadFrames: number;
  readonly crossfadeSamples: number;

  private readonly decode: CodecDecodeFn;
  /** Stored frames, frame-major: frame `base + i` at [i * K, (i + 1) * K). */
  private store: Int32Array;
  /** Absolute index (frames since the start) of the first stored frame. */
  private base = 0;
  /** Frames pushed so far (absolute index of the next frame). */
  private total = 0;
  /** Frames emitted so far. */
  private emitted = 0;
  /** Previous window's audio just past its chunk end, for the cross-fade. */
  private tail: Float32Array | null = null;
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
    const { codebooks, hop, chunkFrames, leftContextFrames, lookaheadFrames } = options;
    const crossfadeSamples = options.crossfadeSamples ?? 0;
    const int = (name: string, v: number, min: number) => {
      if (!Number.isInteger(v) || v < min)
        throw new CodecStreamError('CODEC_STREAM_OPTIONS', `${name} must be an integer >= ${min}, got ${v}`);
    };
    int('codebooks', codebooks, 1);
    int('hop', hop, 1);
    int('chunkFrames', chunkFrames, 1);
    int('leftContextFrames', leftContextFrames, 0);
    int('lookaheadFrames', lookaheadFrames, 0);
    int('crossfadeSamples', crossfadeSamples, 0);
    if (crossfadeSamples > lookaheadFrames * hop) {
      throw new CodecStreamError(
        'CODEC_STREAM_OPTIONS',
        `crossfadeSamples ${crossfadeSamples} needs lookahead audio: at most lookaheadFrames * hop = ${lookaheadFrames * hop}`,
      );
    }
    if (crossfadeSamples > chunkFrames * hop) {
      throw new CodecStreamError(
        'CODEC_STREAM_OPTIONS',
        `crossfadeSamples ${crossfadeSamples} is longer than a chunk (${chunkFrames * hop} samples)`,
      );
    }
    this.decode = decode;
    this.codebooks = codebooks;
    this.hop = hop;
    this.chunkFrames = chunkFrames;
    this.leftContextFrames = leftContextFrames;
    this.lookaheadFrames = lookaheadFrames;
    this.crossfadeSamples = crossfadeSamples;
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
    return this.guard(() => this.emit(this.chunkFrames, this.lookaheadFrames));
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
        parts.push(await this.emit(this.chunkFrames, this.lookaheadFrames));
      const rest = this.total - this.emitted;
      if (rest > 0) parts.push(await this.emit(rest, 0));
      this.ended = true;
      this.tail = null;
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

  /** Decodes [emitted - left, emitted + frames + lookahead) and returns the audio of [emitted, emitted + frames). */
  private async emit(frames: number, lookahead: number): Promise<Float32Array> {
    const K = this.codebooks;
    const hop = this.hop;
    const start = Math.max(this.base, this.emitted - this.leftContextFrames);
    const end = this.emitted + frames + lookahead;
    const n = end - start;
    const codes = new BigInt64Array(K * n);
    for (let t = 0; t < n; t++) {
      const at = (start - this.base + t) * K;
      for (let k = 0; k < K; k++) codes[k * n + t] = BigInt(this.store[at + k]!);
    }
    const audio = await this.decode(codes, n);
    if (audio.length !== n * hop)
      throw new CodecStreamError('CODEC_STREAM_DECODE', `decoder returned ${audio.length} samples for ${n} frames, expected ${n * hop}`);
    const from = (this.emitted - start) * hop;
    const to = from + frames * hop;
    const out = audio.slice(from, to);
    const X = this.crossfadeSamples;
    if (X > 0 && this.tail) {
      // Raised-cosine fade from the previous window's continuation into this window's head.
      const tail = this.tail;
      for (let i = 0; i < X; i++) {
        const w = 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / X);
        out[i] = tail[i]! * (1 - w) + out[i]! * w;
      }
    }
    this.tail = X > 0 && lookahead * hop >= X ? audio.slice(to, to + X) : null;
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
