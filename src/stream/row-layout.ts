// The decoder rows of one generation and their order, for the streaming engine and the offline generator
// alike: one conditional row per prompt (in the prompt mix's order), then the unconditional row (the null
// condition: zero text states, fully masked) when guidance is on. This is the order in which Hugging
// Face's MusicGen batches a prompt and its null condition, so the offline generator's logits line up
// with the reference's.

export class RowLayout {
  /** Rows in all. */
  readonly rows: number;
  /** Row of the null condition; -1 without guidance. */
  readonly uncond: number;

  constructor(
    /** Conditional rows, one per prompt. */
    readonly prompts: number,
    /** With the unconditional row (classifier-free guidance). */
    readonly guided = true,
  ) {
    this.rows = prompts + (guided ? 1 : 0);
    this.uncond = guided ? prompts : -1;
  }

  /** Row of prompt i. */
  cond(i: number): number {
    return i;
  }

  /** Prompt index of a row, or -1 for the unconditional row. */
  promptOf(row: number): number {
    return row === this.uncond ? -1 : row;
  }
}
