// Riverrun jitter buffer: an AudioWorkletProcessor that plays decoded PCM chunks (posted by the decode
// worker through a MessagePort) on the audio thread, with
//   - a target fill: playback starts, and restarts after an underrun, once TARGET ms are buffered;
//   - underrun recovery: when the buffer runs dry it outputs silence, counts an underrun and re-buffers
//     to the target before resuming (with a 5 ms fade-in, so the restart does not click); each underrun
//     also raises the target by 100 ms (up to 1 s), and every 30 s without one lowers it by 50 ms back
//     towards the configured target, so a jittery server gets a deeper buffer by itself;
//   - drift correction: the lowest fill over the last 2 s is compared with the target; more than 100 ms
//     above it, the read pointer advances 0.25 % faster (linear interpolation between samples), more than
//     100 ms below it, 0.25 % slower; it goes back to 1.0 once within 40 ms (hysteresis);
//   - a cap: a fill above 4 s (a stalled tab, a burst after a reconnect) drops the oldest audio down to 2 s.
// The numbers are the defaults of JitterBuffer below; docs/web-client.md explains them.
//
// The file is an ES module: the page loads it with audioWorklet.addModule(), and the tests import the
// JitterBuffer class in Node (no AudioWorkletProcessor there, so registration is skipped).

export const DEFAULTS = Object.freeze({
  /** fill (ms) to reach before playing, at the start and after an underrun; also the drift set point */
  targetMs: 300,
  /** each underrun raises the target by this much (ms) ... */
  underrunStepMs: 100,
  /** ... up to this (ms) */
  maxTargetMs: 1000,
  /** after this long (ms) playing without an underrun, the target goes down by decayStepMs */
  calmMs: 30000,
  decayStepMs: 50,
  /** drift correction engages when the 2 s minimum fill is this far (ms) from the target */
  bandMs: 100,
  /** ... and disengages once it is back within this distance (ms) */
  releaseMs: 40,
  /** window (ms) of the minimum fill that steers drift correction */
  windowMs: 2000,
  /** playback-rate change while correcting (0.0025 = 0.25 %, about 4 cents, 2.5 ms of fill per second) */
  rateStep: 0.0025,
  /** above this fill (ms) the oldest audio is dropped ... */
  capMs: 4000,
  /** ... down to this fill (ms) */
  capToMs: 2000,
  /** ring buffer size (ms); more than capMs plus the largest chunk */
  capacityMs: 8000,
  /** fade-in after a (re)start (frames) */
  fadeFrames: 240,
  /** stats period (ms) */
  statsMs: 100,
});

/**
 * The jitter buffer proper, independent of the Web Audio API (so it can be tested in Node): a stereo
 * ring buffer with a fractional read position, markers mapping buffer positions to stream pts and
 * control version, and the playback state machine.
 */
export class JitterBuffer {
  /**
   * @param {number} sampleRate
   * @param {Partial<typeof DEFAULTS>} [options]
   */
  constructor(sampleRate, options = {}) {
    this.sampleRate = sampleRate;
    this.o = { ...DEFAULTS, ...options };
    const ms = sampleRate / 1000;
    this.baseTarget = Math.round(this.o.targetMs * ms);
    this.target = this.baseTarget;
    this.maxTarget = Math.max(this.baseTarget, Math.round(this.o.maxTargetMs * ms));
    this.underrunStep = Math.round(this.o.underrunStepMs * ms);
    this.calmFrames = Math.round(this.o.calmMs * ms);
    this.decayStep = Math.round(this.o.decayStepMs * ms);
    this.calm = 0;
    this.band = this.o.bandMs * ms;
    this.release = this.o.releaseMs * ms;
    this.cap = Math.round(this.o.capMs * ms);
    this.capTo = Math.round(this.o.capToMs * ms);
    this.capacity = Math.round(this.o.capacityMs * ms);
    this.left = new Float32Array(this.capacity);
    this.right = new Float32Array(this.capacity);
    // Window minimum: 4 segments of windowMs / 4, each holding its own minimum.
    this.segFrames = Math.round((this.o.windowMs / 4) * ms);
    this.resetCounters();
    this.reset();
  }

  resetCounters() {
    /** times the buffer ran dry while playing */
    this.underruns = 0;
    /** frames dropped by the cap, or because the ring was full */
    this.skippedFrames = 0;
    /** frames consumed minus frames output by drift correction (positive: sped up) */
    this.driftFrames = 0;
    /** frames received / output from the buffer */
    this.receivedFrames = 0;
    this.playedFrames = 0;
    /** quanta output as silence while waiting for the target (start or after an underrun) */
    this.bufferingFrames = 0;
  }

  /** Forgets all audio (a new connection, or `stop`): back to idle, counters kept. */
  reset() {
    /** absolute frame index one past the last written frame */
    this.writeCount = 0;
    /** absolute (fractional) read position */
    this.readPos = 0;
    /** @type {{at: number, pts: number, control: number}[]} */
    this.markers = [];
    /** 'idle' (nothing yet) | 'buffering' | 'playing' | 'paused' */
    this.state = 'idle';
    this.rate = 1;
    this.fade = 0;
    this.segMins = [];
    this.segMin = Infinity;
    this.segLeft = this.segFrames;
    this.playingPts = -1;
    this.playingControl = -1;
  }

  /** Buffered frames. */
  get fill() {
    return Math.max(0, this.writeCount - this.readPos);
  }

  /** Stops consuming (keeps the buffer); `resume` goes back to buffering/playing. */
  pause() {
    if (this.state !== 'idle') this.state = 'paused';
  }

  resume() {
    if (this.state === 'paused') this.startBuffering();
  }

  startBuffering() {
    this.state = 'buffering';
    this.rate = 1;
  }

  /**
   * Appends decoded audio.
   * @param {Float32Array[]} channels 1 or 2 channels of equal length
   * @param {number} pts stream pts of the first frame
   * @param {number} control control version that produced it
   */
  push(channels, pts, control) {
    const l = channels[0];
    if (!l || l.length === 0) return;
    const r = channels[1] ?? l;
    const n = Math.min(l.length, this.capacity - 2);
    // Room in the ring: drop the oldest audio when full (should not happen below the cap).
    const over = this.fill + n - (this.capacity - 2);
    if (over > 0) this.skip(over);
    let w = this.writeCount % this.capacity;
    for (let i = 0; i < n; i++) {
      this.left[w] = l[i];
      this.right[w] = r[i];
      if (++w === this.capacity) w = 0;
    }
    this.markers.push({ at: this.writeCount, pts, control });
    this.writeCount += n;
    this.receivedFrames += n;
    if (this.state === 'idle') this.startBuffering();
    if (this.fill > this.cap) this.skip(this.fill - this.capTo);
  }

  /** Drops `frames` of the oldest audio. */
  skip(frames) {
    const n = Math.min(frames, this.fill);
    this.readPos += n;
    this.skippedFrames += n;
    this.dropMarkers();
  }

  dropMarkers() {
    const m = this.markers;
    let k = 0;
    while (k + 1 < m.length && m[k + 1].at <= this.readPos) k++;
    if (k > 0) m.splice(0, k);
  }

  /**
   * Renders `n` frames into `outL` / `outR` (which may be the same array for mono output).
   * @param {Float32Array} outL
   * @param {Float32Array} outR
   * @param {number} n
   */
  pull(outL, outR, n) {
    let i = 0;
    if (this.state === 'buffering' && this.fill >= this.target) {
      this.state = 'playing';
      this.fade = this.o.fadeFrames;
      this.segMins = [];
      this.segMin = Infinity;
      this.segLeft = this.segFrames;
    }
    if (this.state === 'playing') {
      const cap = this.capacity;
      const L = this.left;
      const R = this.right;
      const fadeFrames = this.o.fadeFrames;
      for (; i < n; i++) {
        const pos = this.readPos;
        const i0 = Math.floor(pos);
        if (i0 + 1 >= this.writeCount) {
          // Ran dry (one frame is kept for the interpolation): silence, and re-buffer to the target.
          this.underruns++;
          this.state = 'buffering';
          this.rate = 1;
          this.target = Math.min(this.maxTarget, this.target + this.underrunStep);
          this.calm = 0;
          break;
        }
        const frac = pos - i0;
        const a = i0 % cap;
        const b = a + 1 === cap ? 0 : a + 1;
        let g = 1;
        if (this.fade > 0) g = 1 - this.fade-- / fadeFrames;
        outL[i] = (L[a] + (L[b] - L[a]) * frac) * g;
        outR[i] = (R[a] + (R[b] - R[a]) * frac) * g;
        this.readPos = pos + this.rate;
      }
      this.playedFrames += i;
      this.driftFrames += i * (this.rate - 1);
      this.dropMarkers();
      const mk = this.markers[0];
      if (mk) {
        this.playingPts = mk.pts + Math.floor(this.readPos - mk.at);
        this.playingControl = mk.control;
      }
      if (this.state === 'playing') {
        this.steer(n);
        this.calm += n;
        if (this.calm >= this.calmFrames) {
          this.calm = 0;
          this.target = Math.max(this.baseTarget, this.target - this.decayStep);
        }
      }
    }
    if (this.state === 'buffering') this.bufferingFrames += n - i;
    for (; i < n; i++) {
      outL[i] = 0;
      outR[i] = 0;
    }
  }

  /** Drift correction, once per render quantum while playing. */
  steer(n) {
    const fill = this.fill;
    if (fill < this.segMin) this.segMin = fill;
    this.segLeft -= n;
    if (this.segLeft > 0) return;
    this.segMins.push(this.segMin);
    if (this.segMins.length > 4) this.segMins.shift();
    this.segMin = Infinity;
    this.segLeft = this.segFrames;
    if (this.segMins.length < 4) return; // a full window first
    const low = Math.min(...this.segMins);
    const err = low - this.target;
    const step = this.o.rateStep;
    if (this.rate === 1) {
      if (err > this.band) this.rate = 1 + step;
      else if (err < -this.band) this.rate = 1 - step;
    } else if (this.rate > 1 ? err < this.release : err > -this.release) {
      this.rate = 1;
    }
  }

  /** The 2 s minimum fill in ms (NaN before a full window). */
  get lowMs() {
    return this.segMins.length < 4 ? NaN : (Math.min(...this.segMins) * 1000) / this.sampleRate;
  }
}

const Base = globalThis.AudioWorkletProcessor ?? class {};

/**
 * Messages on `port` (from the page): {type:'source', port, epoch} (a MessagePort on which the decode
 * worker posts {type:'pcm', epoch, pts, control, channels}), {type:'reset', epoch}, {type:'pause'},
 * {type:'resume'}, {type:'stats-now'}. PCM of another epoch than the last reset's (an old connection's
 * audio still in flight) is dropped. The processor posts {type:'stats', ...} every statsMs.
 */
class JitterProcessor extends Base {
  constructor(options) {
    super();
    const opts = options?.processorOptions ?? {};
    this.jb = new JitterBuffer(sampleRate, opts);
    this.source = null;
    this.epoch = 0;
    this.framesRendered = 0;
    this.sumSq = 0;
    this.sumN = 0;
    this.peak = 0;
    this.statsEvery = Math.round((this.jb.o.statsMs / 1000) * sampleRate);
    this.statsLeft = this.statsEvery;
    this.port.onmessage = (e) => this.onControl(e.data);
  }

  onControl(m) {
    switch (m?.type) {
      case 'source':
        if (this.source) this.source.close();
        this.source = m.port;
        this.source.onmessage = (e) => {
          const d = e.data;
          if (d?.type === 'pcm' && d.epoch === this.epoch) this.jb.push(d.channels, d.pts, d.control);
        };
        break;
      case 'reset':
        if (typeof m.epoch === 'number') this.epoch = m.epoch;
        this.jb.reset();
        break;
      case 'reset-counters':
        this.jb.resetCounters();
        break;
      case 'pause':
        this.jb.pause();
        break;
      case 'resume':
        this.jb.resume();
        break;
      case 'stats-now':
        this.postStats();
        break;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const l = out?.[0];
    if (!l) return true;
    const r = out[1] ?? l;
    const n = l.length;
    this.jb.pull(l, r, n);
    this.framesRendered += n;
    for (let i = 0; i < n; i++) {
      const v = l[i];
      const w = r[i];
      this.sumSq += v * v + w * w;
      const a = Math.max(Math.abs(v), Math.abs(w));
      if (a > this.peak) this.peak = a;
    }
    this.sumN += 2 * n;
    this.statsLeft -= n;
    if (this.statsLeft <= 0) {
      this.statsLeft += this.statsEvery;
      this.postStats();
    }
    return true;
  }

  postStats() {
    const jb = this.jb;
    const ms = sampleRate / 1000;
    this.port.postMessage({
      type: 'stats',
      sampleRate,
      currentFrame,
      currentTime,
      framesRendered: this.framesRendered,
      state: jb.state,
      fillMs: jb.fill / ms,
      lowMs: jb.lowMs,
      targetMs: jb.target / ms,
      rate: jb.rate,
      underruns: jb.underruns,
      skippedMs: jb.skippedFrames / ms,
      driftMs: jb.driftFrames / ms,
      receivedMs: jb.receivedFrames / ms,
      playedMs: jb.playedFrames / ms,
      bufferingMs: jb.bufferingFrames / ms,
      playingPts: jb.playingPts,
      playingControl: jb.playingControl,
      rms: this.sumN > 0 ? Math.sqrt(this.sumSq / this.sumN) : 0,
      peak: this.peak,
    });
    this.sumSq = 0;
    this.sumN = 0;
    this.peak = 0;
  }
}

if (typeof registerProcessor === 'function') registerProcessor('riverrun-jitter', JitterProcessor);
