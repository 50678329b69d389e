// Prompt text -> cross-attention inputs, with a cache: radio channels and games come back to the same
// prompts, and an encoding is small next to the work it saves.
import type { ModelBundle } from '../models/model-bundle.ts';
import type { TextEncoderService } from './engine-core.ts';
import type { PromptEncoding } from './row-pool.ts';

export class CachedTextEncoder implements TextEncoderService {
  private readonly cache = new Map<string, Promise<PromptEncoding>>();

  /** `encode` does the work (in this thread, or in the text-encoder worker). */
  constructor(
    private readonly encodeText: (text: string) => Promise<PromptEncoding>,
    private readonly maxEntries = 256,
  ) {}

  /** Encodes with the model in this thread (tests, benchmarks). */
  static inProcess(model: ModelBundle): CachedTextEncoder {
    return new CachedTextEncoder(async (text) => {
      const e = await model.encodeText([model.tokenize(text)]);
      return { tokens: e.tokens, keys: e.keys, values: e.values };
    });
  }

  encode(text: string): Promise<PromptEncoding> {
    const hit = this.cache.get(text);
    if (hit) {
      // Map order is insertion order: re-inserting marks the entry as recently used.
      this.cache.delete(text);
      this.cache.set(text, hit);
      return hit;
    }
    const p = this.encodeText(text);
    p.catch(() => this.cache.delete(text));
    this.cache.set(text, p);
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }
}
