// One protocol v1 connection at a time: setup (a channel or a personal session), the server's messages,
// pings for the round trip, and reconnection with the protocol's backoff policy. A personal session on
// a cluster is resumed after a drop (setup.resume with the handle its setup_complete gave); if the server
// says it is gone (no_session), a new session is started at once.
import { backoffDelay, CLOSE_CODES, DEFAULT_RECONNECT, decodeMessage, encodeMessage, isRetryable, PROTOCOL_PATH } from '/protocol.js';
import { ensureAudio } from './audio.js';
import { describePrompts, IDLE_NOTE, log, setConn, showModel, ui } from './dom.js';
import { DEFAULT_PROMPTS, fillConfig, fillPrompts, readConfig, readPrompts } from './forms.js';
import { renderNowPlaying } from './now-playing.js';
import { state } from './state.js';

/** `applied` messages kept: audio in the buffer can only be stamped with recent controls. */
const MAX_CONTROLS = 64;
const PING_INTERVAL_MS = 2000;

/** The protocol URL; a resuming connection names its session, for a front that routes on it. */
function wsUrl(resume) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${PROTOCOL_PATH}`;
  return resume ? `${url}?session=${encodeURIComponent(resume.session)}` : url;
}

/** Sends one message; false (and a log line) when not connected. */
export function send(msg) {
  if (state.ws?.readyState !== WebSocket.OPEN) {
    log('Not connected.', 'warn');
    return false;
  }
  state.ws.send(encodeMessage(msg));
  return true;
}

/** Listens to a channel ({kind:'channel', id, name}) or starts a personal session ({kind:'session'}). */
export async function connect(target) {
  await ensureAudio();
  disconnect(false);
  state.target = target;
  state.resume = null;
  state.userClosed = false;
  state.timeline = { connectAt: performance.now(), setupAt: null, firstAudioAt: null, playingAt: null };
  open();
}

function open() {
  const target = state.target;
  const token = ui.token.value.trim();
  state.setup = null;
  state.fatalError = null;
  state.controls.clear();
  state.populated = target.kind === 'session';
  state.lastReceivedControl = -1;
  state.change = null;
  state.epoch++;
  state.audio.node.port.postMessage({ type: 'reset', epoch: state.epoch });
  const resume = target.kind === 'session' ? state.resume : null;
  state.resuming = resume !== null;
  setConn(target.kind === 'channel' ? `connecting to ${target.name}…` : resume ? 'resuming your stream…' : 'starting your stream…');
  const ws = new WebSocket(wsUrl(resume));
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  ws.onopen = () => {
    const setup = { type: 'setup' };
    if (token) setup.token = token;
    if (target.kind === 'channel') setup.listen = target.id;
    else if (resume) setup.resume = resume;
    else setup.session = { prompts: readPrompts() ?? DEFAULT_PROMPTS, config: readConfig() };
    ws.send(encodeMessage(setup));
  };
  ws.onmessage = (e) => {
    if (ws !== state.ws) return;
    let msg;
    try {
      msg = decodeMessage(e.data);
    } catch {
      return;
    }
    if (msg) onMessage(msg);
  };
  ws.onclose = (e) => {
    if (ws !== state.ws) return;
    onClosed(e.code, e.reason);
  };
  ui.disconnect.disabled = false;
}

function onMessage(msg) {
  switch (msg.type) {
    case 'setup_complete':
      onSetupComplete(msg);
      break;
    case 'audio':
      state.timeline.firstAudioAt ??= performance.now();
      state.lastReceivedControl = msg.control;
      state.worker?.postMessage({ type: 'audio', seq: msg.seq, pts: msg.pts, control: msg.control, packets: msg.packets });
      break;
    case 'applied':
      onApplied(msg);
      break;
    case 'status':
      state.serverStatus = msg;
      break;
    case 'pong': {
      const t = state.pings.get(msg.id);
      if (t !== undefined) {
        state.rttMs = performance.now() - t;
        state.pings.delete(msg.id);
      }
      break;
    }
    case 'error':
      onError(msg);
      break;
    default:
      break; // v1 grows by adding message types: ignore the unknown
  }
}

function onSetupComplete(msg) {
  state.setup = msg;
  state.resume = msg.resume ?? null;
  state.attempts = 0;
  state.timeline.setupAt ??= performance.now();
  const t = state.target;
  setConn(t.kind === 'channel' ? `listening to ${t.name}` : msg.resumed ? 'your stream (resumed)' : 'your stream', 'ok');
  showModel(msg.model);
  // A fresh decoder for every connection; it posts PCM straight to the worklet through a MessagePort.
  const channel = new MessageChannel();
  state.audio.node.port.postMessage({ type: 'source', port: channel.port2 }, [channel.port2]);
  state.worker.postMessage(
    { type: 'init', channels: msg.audio.channels, preSkip: msg.audio.preSkip, port: channel.port1, epoch: state.epoch },
    [channel.port1],
  );
  ui.steerNote.textContent =
    t.kind === 'session'
      ? 'Your own stream: changes apply to what you hear only.'
      : ui.token.value.trim() !== ''
        ? `Steering ${t.name} changes it for every listener.`
        : `Listening to ${t.name}: steering a channel needs an operator token (Access token, above).`;
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(ping, PING_INTERVAL_MS);
  ping();
  log(
    `Connected (${msg.channel ? `channel ${msg.channel}` : 'personal session'}, ${msg.audio.channels} ch, pre-skip ${msg.audio.preSkip}).`,
  );
  renderNowPlaying();
}

/** A control in effect: the server sends the stream's current one right after setup_complete, then each change. */
function onApplied(msg) {
  state.controls.set(msg.control, { control: msg.control, prompts: msg.prompts, config: msg.config, pts: msg.pts, at: performance.now() });
  if (state.controls.size > MAX_CONTROLS) state.controls.delete(state.controls.keys().next().value);
  if (!state.populated) {
    state.populated = true;
    fillPrompts(msg.prompts);
    fillConfig(msg.config);
  }
  const c = state.change;
  if (c && c.appliedControl === null && msg.control > c.baseControl) {
    c.appliedControl = msg.control;
    c.appliedAfterMs = performance.now() - c.at;
  }
  log(`Applied control ${msg.control}: ${describePrompts(msg.prompts)}.`);
  renderNowPlaying();
}

function onError(msg) {
  state.errors.push(msg);
  if (msg.fatal) state.fatalError = msg;
  let text = `${msg.code}: ${msg.message}`;
  if (msg.code === 'forbidden' && state.target?.kind === 'channel') text += ' (steering a channel needs an operator token)';
  if (msg.code === 'rate_limited' && !msg.fatal) text += ' (slow down: the change was dropped)';
  log(text, msg.fatal ? 'error' : 'warn');
}

function onClosed(code, reason) {
  clearInterval(state.pingTimer);
  state.ws = null;
  state.worker?.postMessage({ type: 'stop' });
  if (state.userClosed) return;
  // The session could not be taken up (it ended or expired): the next attempt starts a new one.
  const sessionGone = state.resuming && state.fatalError?.code === 'no_session';
  if (sessionGone) state.resume = null;
  const retry = (sessionGone || isRetryable(code, reason, state.fatalError?.code)) && state.attempts < DEFAULT_RECONNECT.maxAttempts;
  log(`Connection closed (${code}${reason ? ` ${reason}` : ''}).`, retry ? 'warn' : 'error');
  if (retry) {
    const delay = backoffDelay(++state.attempts, DEFAULT_RECONNECT);
    setConn(`reconnecting in ${(delay / 1000).toFixed(1)} s…`, 'warn');
    state.reconnectTimer = setTimeout(open, delay);
  } else {
    setConn(`disconnected${reason ? `: ${reason}` : ''}`, 'error');
    ui.disconnect.disabled = true;
  }
}

/** Closes the connection; `byUser` also lets the audio thread sleep and resets the page's notes. */
export function disconnect(byUser = true) {
  clearTimeout(state.reconnectTimer);
  clearInterval(state.pingTimer);
  state.userClosed = true;
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.close(CLOSE_CODES.NORMAL, 'bye');
  }
  state.worker?.postMessage({ type: 'stop' });
  state.audio?.node.port.postMessage({ type: 'reset', epoch: ++state.epoch });
  if (byUser) {
    // Nothing to play: let the audio thread sleep (the next Listen/Start resumes it, from a gesture).
    void state.audio?.ctx.suspend();
    setConn('not connected');
    ui.disconnect.disabled = true;
    ui.steerNote.textContent = IDLE_NOTE;
  }
}

let pingId = 0;
function ping() {
  const id = ++pingId;
  state.pings.set(id, performance.now());
  if (state.pings.size > 8) state.pings.delete(state.pings.keys().next().value);
  send({ type: 'ping', id });
}
