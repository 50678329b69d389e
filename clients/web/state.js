// Everything the page knows, in one object; test-hook.js exposes a read-only view of it.
import { clampNum } from './dom.js';

const params = new URLSearchParams(location.search);
/** The jitter buffer's target fill, in ms (`?target=`). */
export const TARGET_MS = clampNum(Number(params.get('target') ?? 300), 60, 3000, 300);

export const state = {
  ws: null,
  /** {kind:'channel', id, name} | {kind:'session'} */
  target: null,
  userClosed: false,
  /** reconnection attempts since the last setup_complete */
  attempts: 0,
  /** a personal session's resume handle on a cluster (setup_complete.resume), for the next reconnection */
  resume: null,
  /** whether the current connection's setup resumes a session */
  resuming: false,
  reconnectTimer: 0,
  setup: null,
  /** the fatal `error` of the current connection, if one came (it decides whether to reconnect) */
  fatalError: null,
  /** control -> {control, prompts, config, pts, at}, from the server's `applied` messages */
  controls: new Map(),
  /** whether the forms hold what the stream plays (a session's forms are what its setup sent) */
  populated: false,
  lastReceivedControl: -1,
  /** latest worklet stats, with receivedAt (performance.now()) */
  stats: null,
  statsHistory: [],
  decoder: null,
  serverStatus: null,
  rttMs: null,
  pings: new Map(),
  pingTimer: 0,
  /** the last steering change sent: {kind, at, baseControl, appliedControl, appliedAfterMs, heardAfterMs} */
  change: null,
  errors: [],
  audio: null,
  audioStarting: null,
  worker: null,
  /** when the current connection was asked for, set up, got audio, started playing (performance.now()) */
  timeline: { connectAt: null, setupAt: null, firstAudioAt: null, playingAt: null },
  /** connection number: the worklet drops PCM of an older one */
  epoch: 0,
};
