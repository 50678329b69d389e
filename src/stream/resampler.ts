// Streaming rational-ratio resampler: a polyphase Kaiser-windowed-sinc filter, written for this project.
//
// The ratio outRate/inRate is reduced by the gcd to L/M (32000 -> 48000 is 3/2). Output sample n sits at
// time t = n*M/L in input samples, exactly: its value is sum_i x[i] * h(t - i), where h is a lowpass
// sinc (cutoff just below the lower of the two Nyquist frequencies) under a Kaiser window of half-width
// K/2 input samples, K = taps per phase. Because t - i only takes the L values frac + integer,
// frac = p/L, the filter is precomputed as an L x K table (one row per phase p), and each output costs
// one K-tap dot product. When L is large (odd sample rates, L > MAX_EXACT_PHASES) the table holds a
// fixed grid of phases instead, and each output interpolates linearly between the two nearest rows.
//
// The output is time-aligned with the input (zero group delay, `delay` = 0): output n is the signal at
// n/outRate seconds. The price is latency: process() holds back outputs until the K/2 input samples
// after them have arrived (`latency`, in output samples). Chunked processing is deterministic: the same
// input split in any way gives bit-identical output, and process()+flush() equals resample().

export type ResamplerQuality = 'low' | 'medium' | 'high';

export interface ResamplerOptions {
  /** Filter quality; default 'medium' (~100 dB stopband, passband to 90 % of the lower Nyquist). */
  quality?: ResamplerQuality;
}

interface QualitySpec {
  /** Stopband attenuation in dB (Kaiser design target; passband ripple is of the same order). */
  attenuationDb: number;
  /** Passband edge as a fraction of the lower Nyquist; the stopband starts at the Nyquist itself. */
  passband: number;
}

const QUALITY: Record<ResamplerQuality, QualitySpec> = {
  low: { attenuationDb: 70, passband: 0.85 },
  medium: { attenuationDb: 100, passband: 0.9 },
  high: { attenuationDb: 130, passband: 0.92 },
};

/** Above this many phases the table is a fixed grid of INTERP_PHASES rows with linear interpolation. */
const MAX_EXACT_PHASES = 1024;
const INTERP_PHASES = 1024;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series). */
function besselI0(x: number): number {
  const q = (x * x) / 4;
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 500; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

interface FilterTable {
  /** Taps per phase (even). */
  taps: number;
  /** Number of rows: L (exact) or INTERP_PHASES + 1 (interpolated; the last row is frac = 1). */
  rows: number;
  interpolated: boolean;
  /** rows x taps; row r, tap j multiplies x[base - taps/2 + 1 + j]. */
  coefs: Float64Array;
}

/**
 * Designed tables, least recently used first, bounded in bytes: odd sample rates each need their own
 * table (tens of MB when downsampling by a large ratio), and a client chooses the rate of its prompt.
 */
const tableCache = new Map<string, FilterTable>();
const TABLE_CACHE_BYTES = 32 * 2 ** 20;
let tableCacheBytes = 0;

/** Bytes held by the filter-table cache of this thread (at most TABLE_CACHE_BYTES). */
export function filterTableCacheBytes(): number {
  return tableCacheBytes;
}

function cacheTable(key: string, table: FilterTable): void {
  const bytes = table.coefs.byteLength;
  if (bytes > TABLE_CACHE_BYTES / 4) return; // used once and dropped: it would evict everything else
  for (const [k, t] of tableCache) {
    if (tableCacheBytes + bytes <= TABLE_CACHE_BYTES) break;
    tableCache.delete(k);
    tableCacheBytes -= t.coefs.byteLength;
  }
  tableCache.set(key, table);
  tableCacheBytes += bytes;
}

function designTable(L: number, M: number, spec: QualitySpec): FilterTable {
  const key = `${L}/${M}/${spec.attenuationDb}/${spec.passband}`;
  const cached = tableCache.get(key);
  if (cached) {
    tableCache.delete(key); // most recently used goes last
    tableCache.set(key, cached);
    return cached;
  }

  // Everything in cycles per input sample. The lower Nyquist is 0.5 (upsampling) or 0.5*L/M (downsampling).
  const nyq = 0.5 * Math.min(1, L / M);
  const passEdge = spec.passband * nyq;
  const transition = nyq - passEdge;
  const cutoff = (passEdge + nyq) / 2; // -6 dB point
  const A = spec.attenuationDb;
  // Kaiser's estimate for the window length (in input samples) reaching A dB over this transition width.
  let taps = Math.ceil((A - 7.95) / (14.36 * transition));
  if (taps % 2) taps++;
  const beta = A > 50 ? 0.1102 * (A - 8.7) : A >= 21 ? 0.5842 * (A - 21) ** 0.4 + 0.07886 * (A - 21) : 0;
  const half = taps / 2;
  const i0beta = besselI0(beta);

  const interpolated = L > MAX_EXACT_PHASES;
  const rows = interpolated ? INTERP_PHASES + 1 : L;
  const coefs = new Float64Array(rows * taps);
  for (let r = 0; r < rows; r++) {
    const frac = interpolated ? r / INTERP_PHASES : r / L;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const tau = frac + half - 1 - j; // t - i for this tap, in input samples
      const u = tau / half;
      let v = 0;
      if (u * u <= 1) {
        const w = besselI0(beta * Math.sqrt(1 - u * u)) / i0beta;
        const arg = 2 * cutoff * tau;
        const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
        v = 2 * cutoff * sinc * w;
      }
      coefs[r * taps + j] = v;
      sum += v;
    }
    // Unit DC gain for every phase (the deviation before this is of the order of the ripple anyway).
    for (let j = 0; j < taps; j++) coefs[r * taps + j]! /= sum;
  }
  const table: FilterTable = { taps, rows, interpolated, coefs };
  cacheTable(key, table);
  return table;
}

export class Resampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Reduced ratio: L output samples per M input samples. */
  readonly up: number;
  readonly down: number;
  /** Filter taps per output sample. */
  readonly tapsPerPhase: number;
  /** Group delay in output samples: always 0, the output is time-aligned with the input. */
  readonly delay = 0;
  /** Output samples that process() holds back until more input arrives: latency or latency - 1 (taps/2 input samples). */
  readonly latency: number;

  private readonly table: FilterTable;
  private readonly half: number;
  /** History: buf[0..bufLen) holds input samples bufStart .. bufStart+bufLen-1 (absolute indices). */
  private buf: Float64Array;
  private bufStart = 0;
  private bufLen = 0;
  /** Next output: its time is base + phase/L input samples. */
  private base = 0;
  private phase = 0;

  constructor(inRate: number, outRate: number, options: ResamplerOptions = {}) {
    if (!Number.isInteger(inRate) || !Number.isInteger(outRate) || inRate <= 0 || outRate <= 0) {
      throw new RangeError(`sample rates must be positive integers (got ${inRate} -> ${outRate})`);
    }
    const quality = options.quality ?? 'medium';
    const spec = QUALITY[quality];
    if (!spec) throw new RangeError(`unknown resampler quality ${String(quality)}`);
    const g = gcd(inRate, outRate);
    this.inRate = inRate;
    this.outRate = outRate;
    this.up = outRate / g;
    this.down = inRate / g;
    this.table = designTable(this.up, this.down, spec);
    this.tapsPerPhase = this.table.taps;
    this.half = this.table.taps / 2;
    this.latency = Math.ceil((this.half * this.up) / this.down);
    this.buf = new Float64Array(Math.max(4096, 2 * this.table.taps));
    this.restart();
  }

  /** Forgets all input: the next sample pushed is time 0 again. */
  private restart(): void {
    // Output 0 needs x[-half+1 .. half]: start with half-1 zeros of history before the first sample.
    this.bufStart = -(this.half - 1);
    this.bufLen = this.half - 1;
    this.buf.fill(0, 0, this.bufLen);
    this.base = 0;
    this.phase = 0;
  }

  /** Feeds input; returns every output sample whose filter window is now complete. */
  process(input: Float32Array): Float32Array {
    this.append(input, input.length);
    return this.produce(this.bufStart + this.bufLen - 1 - this.half);
  }

  /**
   * Ends the stream: returns the remaining outputs (the input is taken as zero beyond its end), so that
   * the total output is ceil(totalInput * outRate / inRate) samples. Then resets for a new stream.
   */
  flush(): Float32Array {
    const end = this.bufStart + this.bufLen; // total input samples
    this.append(null, this.half);
    // Outputs with time < end, i.e. base <= end - 1.
    const out = this.produce(end - 1);
    this.restart();
    return out;
  }

  /** Appends `count` samples of `input` (or zeros when null), compacting or growing the history. */
  private append(input: Float32Array | null, count: number): void {
    if (count === 0) return;
    if (this.bufLen + count > this.buf.length) {
      // Drop history that no future output needs.
      const keepFrom = this.base - this.half + 1;
      const drop = Math.max(0, Math.min(this.bufLen, keepFrom - this.bufStart));
      if (drop > 0) {
        this.buf.copyWithin(0, drop, this.bufLen);
        this.bufLen -= drop;
        this.bufStart += drop;
      }
      if (this.bufLen + count > this.buf.length) {
        const grown = new Float64Array(Math.max(this.bufLen + count, this.buf.length * 2));
        grown.set(this.buf.subarray(0, this.bufLen));
        this.buf = grown;
      }
    }
    if (input) this.buf.set(input, this.bufLen);
    else this.buf.fill(0, this.bufLen, this.bufLen + count);
    this.bufLen += count;
  }

  /** Produces the outputs whose base index is <= lastBase. */
  private produce(lastBase: number): Float32Array {
    const L = this.up;
    const M = this.down;
    if (lastBase < this.base) return new Float32Array(0);
    // Output k (from 0) has base + floor((phase + k*M) / L) <= lastBase  <=>  k*M <= (lastBase-base+1)*L - 1 - phase.
    const count = Math.floor(((lastBase - this.base + 1) * L - 1 - this.phase) / M) + 1;
    const out = new Float32Array(count);
    const { coefs, taps, interpolated } = this.table;
    const buf = this.buf;
    let base = this.base;
    let phase = this.phase;
    // Index in buf of the first tap of the current output.
    let off = base - this.half + 1 - this.bufStart;
    const baseStep = Math.floor(M / L);
    const phaseStep = M % L;
    if (!interpolated) {
      for (let n = 0; n < count; n++) {
        const c = phase * taps;
        let acc0 = 0;
        let acc1 = 0;
        let j = 0;
        for (; j + 1 < taps; j += 2) {
          acc0 += coefs[c + j]! * buf[off + j]!;
          acc1 += coefs[c + j + 1]! * buf[off + j + 1]!;
        }
        out[n] = acc0 + acc1;
        phase += phaseStep;
        let step = baseStep;
        if (phase >= L) {
          phase -= L;
          step++;
        }
        base += step;
        off += step;
      }
    } else {
      const scale = INTERP_PHASES / L;
      for (let n = 0; n < count; n++) {
        const pos = phase * scale;
        const r = Math.min(Math.floor(pos), INTERP_PHASES - 1);
        const mu = pos - r;
        const c0 = r * taps;
        const c1 = c0 + taps;
        let acc0 = 0;
        let acc1 = 0;
        for (let j = 0; j < taps; j++) {
          const x = buf[off + j]!;
          acc0 += coefs[c0 + j]! * x;
          acc1 += coefs[c1 + j]! * x;
        }
        out[n] = acc0 + mu * (acc1 - acc0);
        phase += phaseStep;
        let step = baseStep;
        if (phase >= L) {
          phase -= L;
          step++;
        }
        base += step;
        off += step;
      }
    }
    this.base = base;
    this.phase = phase;
    return out;
  }
}

/**
 * One-shot resampling: output sample n is the input signal at time n/outRate (no delay), and the output
 * has ceil(input.length * outRate / inRate) samples.
 */
export function resample(input: Float32Array, inRate: number, outRate: number, options: ResamplerOptions = {}): Float32Array {
  if (inRate === outRate) return input.slice();
  const r = new Resampler(inRate, outRate, options);
  const a = r.process(input);
  const b = r.flush();
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
