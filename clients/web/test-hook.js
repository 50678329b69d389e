// window.riverrun: a read-only view of the page's state, for tests and for debugging from the console
// (docs/web-client.md lists the members).
import { analyserRms } from './audio.js';
import { nowPlaying } from './now-playing.js';
import { state, TARGET_MS } from './state.js';

export function installTestHook() {
  window.riverrun = Object.freeze({
    /** latest worklet stats (framesRendered, fillMs, underruns, rms, sampleRate, playingControl, ...) */
    stats: () => (state.stats ? { ...state.stats } : null),
    statsHistory: () => state.statsHistory.map((s) => ({ ...s })),
    get lastControl() {
      return state.stats?.playingControl ?? -1;
    },
    get lastReceivedControl() {
      return state.lastReceivedControl;
    },
    nowPlaying,
    controls: () => [...state.controls.values()],
    setup: () => state.setup,
    serverStatus: () => state.serverStatus,
    decoder: () => state.decoder,
    change: () => (state.change ? { ...state.change } : null),
    timeline: () => ({ ...state.timeline }),
    errors: () => state.errors.slice(),
    audioInfo: () =>
      state.audio
        ? {
            sampleRate: state.audio.ctx.sampleRate,
            state: state.audio.ctx.state,
            baseLatency: state.audio.ctx.baseLatency,
            outputLatency: state.audio.ctx.outputLatency,
          }
        : null,
    analyserRms,
    targetMs: TARGET_MS,
  });
}
