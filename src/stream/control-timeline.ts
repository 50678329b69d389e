// Which control (version of prompts + config) generated each frame, so that every packet can be stamped
// with the control its audio came from. A frame belongs to the control under which its first (coarsest)
// codebook was sampled; entries are pruned as packets go out.

export class ControlTimeline {
  /** absolute frame index -> control, in insertion order */
  readonly #byFrame = new Map<number, number>();

  /** Frame `frame`'s first codebook was sampled under `control`. */
  mark(frame: number, control: number): void {
    this.#byFrame.set(frame, control);
  }

  /** For frames that arrive complete (an audio prompt's): `control` unless the frame has one. */
  markIfUnset(frame: number, control: number): void {
    if (!this.#byFrame.has(frame)) this.#byFrame.set(frame, control);
  }

  /** Control of `frame` (else of the oldest frame kept, else `current`); forgets frames before frame - 1. */
  controlAt(frame: number, current: number): number {
    for (const f of this.#byFrame.keys()) {
      if (f >= frame - 1) break;
      this.#byFrame.delete(f);
    }
    return this.#byFrame.get(frame) ?? this.#byFrame.values().next().value ?? current;
  }
}
