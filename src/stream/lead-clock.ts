// How far a stream's audio runs ahead of its listener, in ms of the stream's own audio clock. The clock
// is anchored when the first packet after a start goes out (that packet is due at once), shifted by
// pauses, re-anchored when the listener runs dry (as a player re-buffers), and forgotten on stop.

export class LeadClock {
  /** wall time at which the listener's playback of packet 0 (re-anchored after pauses and underruns) began */
  #anchor: number | null = null;
  #emittedMs = 0;
  #underruns = 0;
  #pausedAt: number | null = null;
  /** Wall time at which the first packet is due, when not at once (a resumed stream's listener has a buffer). */
  #firstDue: number | null = null;

  /** False until the first packet after a start (or a stop) has gone out. */
  get anchored(): boolean {
    return this.#anchor !== null;
  }

  get underruns(): number {
    return this.#underruns;
  }

  /** Audio buffered ahead of the listener, in ms (negative: the listener ran dry). */
  lead(now: number): number {
    if (this.#anchor === null) return 0;
    const clock = this.#pausedAt ?? now;
    return this.#emittedMs - (clock - this.#anchor);
  }

  /** When the listener ran dry: counts an underrun and re-anchors so that the lead is 0 again. */
  catchUp(now: number): void {
    if (this.#anchor === null || this.lead(now) >= 0) return;
    this.#underruns++;
    this.#anchor = now - this.#emittedMs;
  }

  /** Stops the clock (a second pause keeps the first one's time). */
  pause(now: number): void {
    this.#pausedAt ??= now;
  }

  /** Ends a pause: the listener's clock skips the paused time. */
  resume(now: number): void {
    if (this.#pausedAt !== null && this.#anchor !== null) this.#anchor += now - this.#pausedAt;
    this.#pausedAt = null;
  }

  /** Stop: what was sent is history, not buffer; the next packet anchors the clock anew. */
  forget(): void {
    this.#anchor = null;
    this.#pausedAt = null;
  }

  /** The first packet is due at wall time `at` (not at once): a resumed stream's listener still has audio. */
  firstDueAt(at: number): void {
    this.#firstDue = at;
  }

  /** `ms` of audio went out at `now`; the first after a start is due at once (or at firstDueAt). */
  sent(ms: number, now: number): void {
    this.#anchor ??= Math.max(now, this.#firstDue ?? now) - this.#emittedMs;
    this.#firstDue = null;
    this.#emittedMs += ms;
  }
}
