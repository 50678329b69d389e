// A steering change waiting for its prompts' text encodings: applied at the first step after every one
// of them has arrived, in the order the changes were made.
import type { GenerationConfig, WeightedPrompt } from '../protocol/controls.ts';
import type { PromptEncoding } from './row-pool.ts';

export class PendingControl {
  readonly #encodings = new Map<string, PromptEncoding>();
  readonly #missing: Set<string>;

  constructor(
    /** New prompts, or undefined when only the config changes. */
    readonly prompts: WeightedPrompt[] | undefined,
    /** Ramp length of the prompt change (ms of generated audio). */
    readonly transitionMs: number,
    /** The whole new config, or undefined when only the prompts change. */
    readonly config: GenerationConfig | undefined,
    /** The requester's tag, echoed by the applied event (AppliedEvent.tag). */
    readonly tag?: number,
  ) {
    this.#missing = new Set(prompts?.map((p) => p.text));
  }

  /** Texts whose encoding has not arrived yet. */
  get missing(): ReadonlySet<string> {
    return this.#missing;
  }

  /** True once every prompt's encoding has arrived. */
  get ready(): boolean {
    return this.#missing.size === 0;
  }

  encoded(text: string, encoding: PromptEncoding): void {
    this.#encodings.set(text, encoding);
    this.#missing.delete(text);
  }

  /** The encoding of one of the prompts (once ready). */
  encoding(text: string): PromptEncoding {
    return this.#encodings.get(text)!;
  }
}
