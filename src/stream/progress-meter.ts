// A stream's generation speed: frames generated per wall time over the last few seconds, as a real-time
// factor (1 = just real time).

/** How far back the samples reach (ms of wall time). */
const SPAN_MS = 5000;

export class ProgressMeter {
  #frames = 0;
  /** (wall ms, frames generated) samples, oldest first */
  readonly #samples: [number, number][] = [];

  /** One frame generated at `now`. */
  record(now: number): void {
    this.#frames++;
    this.#samples.push([now, this.#frames]);
    while (this.#samples.length > 2 && now - this.#samples[0]![0] > SPAN_MS) this.#samples.shift();
  }

  /** Generated audio per wall time (frameRate: frames per second of audio). */
  rtf(frameRate: number): number {
    if (this.#samples.length < 2) return 0;
    const [t0, f0] = this.#samples[0]!;
    const [t1, f1] = this.#samples[this.#samples.length - 1]!;
    return t1 > t0 ? (f1 - f0) / frameRate / ((t1 - t0) / 1000) : 0;
  }
}
