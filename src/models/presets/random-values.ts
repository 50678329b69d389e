// Deterministic random tensor values: xoshiro128**, one independent stream per tensor keyed by the seed
// and the tensor's name, with normal samples from a fast inverse-CDF table.
import { sinusoidalPositions } from '../sinusoidal.ts';
import type { TensorSpec } from './tensor-specs.ts';

// Normal samples from one 32-bit draw: a 4096-interval piecewise-linear inverse CDF of N(0, 1),
// rescaled to unit variance exactly (tails cut at ~3.7 sigma).
const NORMAL_BITS = 12; // fillNormal hard-codes the 12/20 bit split
let normalTable: { base: Float64Array; delta: Float64Array } | undefined;

function getNormalTable(): { base: Float64Array; delta: Float64Array } {
  if (normalTable) return normalTable;
  const n = 1 << NORMAL_BITS;
  // CDF on a fine grid by the trapezoid rule, then inverted by linear interpolation.
  const lo = -8;
  const h = 1 / 1024;
  const steps = 16 * 1024;
  const cdf = new Float64Array(steps + 1);
  const pdf = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  for (let i = 1; i <= steps; i++) cdf[i] = cdf[i - 1]! + 0.5 * h * (pdf(lo + (i - 1) * h) + pdf(lo + i * h));
  const total = cdf[steps]!;
  const quantile = (p: number): number => {
    const target = p * total;
    let a = 0;
    let b = steps;
    while (b - a > 1) {
      const m = (a + b) >> 1;
      if (cdf[m]! < target) a = m;
      else b = m;
    }
    const f = (target - cdf[a]!) / (cdf[b]! - cdf[a]!);
    return lo + (a + f) * h;
  };
  const x = new Float64Array(n + 1);
  for (let j = 1; j < n; j++) x[j] = quantile(j / n);
  x[0] = quantile(0.25 / n);
  x[n] = -x[0]!;
  // Each interval is hit with probability 1/n and is uniform on [x_j, x_j+1].
  let m2 = 0;
  for (let j = 0; j < n; j++) m2 += (x[j]! * x[j]! + x[j]! * x[j + 1]! + x[j + 1]! * x[j + 1]!) / 3;
  const scale = 1 / Math.sqrt(m2 / n);
  const base = new Float64Array(n);
  const delta = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    base[j] = x[j]! * scale;
    delta[j] = (x[j + 1]! - x[j]!) * scale;
  }
  normalTable = { base, delta };
  return normalTable;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One splitmix32 step: returns [output, next state]. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

// The hot loops live in small standalone functions (V8 optimises them far better than the same loop
// inside a larger method). Both step xoshiro128** with its state in locals.

/** `mean + std * N(0, 1)` samples. */
function fillNormal(out: Float32Array, state: Int32Array, mean: number, std: number): void {
  const { base, delta } = getNormalTable();
  let s0 = state[0]!;
  let s1 = state[1]!;
  let s2 = state[2]!;
  let s3 = state[3]!;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    // Top 12 bits pick the interval of the inverse CDF, the low 20 the position inside it.
    const j = r >>> 20;
    const frac = (r & 0xfffff) * 9.5367431640625e-7;
    out[i] = mean + std * (base[j]! + frac * delta[j]!);
  }
  state[0] = s0;
  state[1] = s1;
  state[2] = s2;
  state[3] = s3;
}

/** Uniform samples in [-bound, bound). */
function fillUniform(out: Float32Array, state: Int32Array, bound: number): void {
  const scale = (2 * bound) / 4294967296;
  let s0 = state[0]!;
  let s1 = state[1]!;
  let s2 = state[2]!;
  let s3 = state[3]!;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[i] = r * scale - bound;
  }
  state[0] = s0;
  state[1] = s1;
  state[2] = s2;
  state[3] = s3;
}

/** Deterministic stream of tensor values (xoshiro128** keyed by seed and stream name). */
export class TensorFiller {
  private s = new Int32Array(4);
  private pos = 0;

  constructor(
    private readonly spec: TensorSpec,
    seed: number,
  ) {
    let [mixed] = splitmix32(seed >>> 0);
    let state = (mixed ^ fnv1a(spec.stream)) | 0;
    for (let i = 0; i < 4; i++) {
      [mixed, state] = splitmix32(state);
      this.s[i] = mixed | 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** Writes the next `out.length` values of the tensor (row-major). */
  fill(out: Float32Array): void {
    const init = this.spec.init;
    const n = out.length;
    switch (init.kind) {
      case 'const':
        out.fill(init.value);
        break;
      case 'sinusoidal': {
        const dim = this.spec.shape[1]!;
        if (this.pos % dim !== 0 || n % dim !== 0) throw new Error('sinusoidal table must be filled by whole rows');
        sinusoidalPositions(n / dim, dim, this.pos / dim, out);
        break;
      }
      case 'normal':
        fillNormal(out, this.s, init.mean, init.std);
        break;
      case 'uniform':
        fillUniform(out, this.s, init.bound);
        break;
    }
    this.pos += n;
  }
}
