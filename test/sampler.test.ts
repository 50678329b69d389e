import { describe, expect, it } from 'vitest';
import { Rng } from '../src/stream/rng.ts';
import { argmax, kthLargest, sample } from '../src/stream/sampler.ts';

describe('sampler', () => {
  it('kthLargest agrees with sorting, with ties and negatives', () => {
    const rng = new Rng(1);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(rng.next() * 300);
      const v = Float32Array.from({ length: n }, () => Math.round((rng.next() - 0.5) * 20) / 2);
      const k = 1 + Math.floor(rng.next() * n);
      expect(kthLargest(v, k) + 0).toBe(Float32Array.from(v).sort()[n - k]! + 0);
    }
  });

  it('top-k keeps only the k best tokens (ties at the threshold included)', () => {
    const rng = new Rng(2);
    const logits = Float32Array.from({ length: 100 }, (_, i) => i / 10);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sample(Float32Array.from(logits), { temperature: 1, topK: 5, topP: 0 }, rng));
    expect([...seen].sort((a, b) => a - b)).toEqual([95, 96, 97, 98, 99]);
  });

  it('top-p keeps the smallest set reaching the mass', () => {
    const rng = new Rng(3);
    // probabilities 0.5, 0.3, 0.2 (as logits)
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[sample(Float32Array.from(logits), { temperature: 1, topK: 0, topP: 0.7 }, rng)]!++;
    expect(counts[2]).toBe(0);
    expect(counts[0]! / 3000).toBeCloseTo(0.5 / 0.8, 1);
  });

  it('temperature 0 is argmax; the generator is deterministic per seed', () => {
    const logits = Float32Array.from([0.1, 3, 3, -1]);
    expect(sample(Float32Array.from(logits), { temperature: 0, topK: 0, topP: 0 }, new Rng(0))).toBe(1);
    expect(argmax(logits)).toBe(1);
    const a = new Rng(42);
    const b = new Rng(42);
    expect(Array.from({ length: 10 }, () => a.nextU32())).toEqual(Array.from({ length: 10 }, () => b.nextU32()));
    expect(new Rng(43).nextU32()).not.toBe(new Rng(42).nextU32());
  });
});
