// Riverrun web client: lists channels, listens to one or opens a personal stream, steers it (prompts,
// config, playback), and plays the audio without glitches:
//   WebSocket (this thread) -> decode-worker.js (Opus -> PCM, off the audio thread)
//   -> MessagePort -> jitter-processor.js (AudioWorklet jitter buffer) -> analyser -> gain -> speakers.
// Protocol: docs/protocol.md. Design and numbers: docs/web-client.md.

if (!globalThis.msgpackr) {
  document.getElementById('conn').textContent = 'could not load /vendor/msgpackr.min.js';
  throw new Error('msgpackr is missing: the server must serve /vendor/msgpackr.min.js');
}
const { Packr, unpack } = globalThis.msgpackr;
// Plain msgpack only (the server refuses records and extension types).
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

const params = new URLSearchParams(location.search);
const TARGET_MS = clampNum(Number(params.get('target') ?? 300), 60, 3000, 300);
const MAX_PROMPTS = 4;
const DEFAULT_CONFIG = { temperature: 1, topK: 250, topP: 0, guidance: 3, seed: 0 };
const DEFAULT_PROMPTS = [{ text: 'calm ambient piano with soft pads', weight: 1 }];
const IDLE_NOTE = 'These prompts and settings start your own stream; while you listen, Apply changes it.';
const RECONNECT_CODES = new Set([1001, 1006, 1011, 1013]);

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $('conn'),
  notice: $('random-notice'),
  channels: $('channels'),
  startSession: $('start-session'),
  refresh: $('refresh'),
  token: $('token'),
  modelName: $('model-name'),
  now: $('now-playing'),
  canvas: $('spectrogram'),
  meter: $('meter-bar'),
  disconnect: $('disconnect'),
  volume: $('volume'),
  steer: $('steer'),
  steerNote: $('steer-note'),
  promptsForm: $('prompts-form'),
  promptRows: $('prompt-rows'),
  addPrompt: $('add-prompt'),
  transition: $('transition'),
  configForm: $('config-form'),
  seed: $('seed'),
  log: $('log'),
  rowTemplate: $('prompt-row'),
};

/** Everything the page knows; `window.riverrun` exposes a read-only view for tests and debugging. */
const state = {
  ws: null,
  /** {kind:'channel', id, name} | {kind:'session'} */
  target: null,
  userClosed: false,
  attempts: 0,
  reconnectTimer: 0,
  setup: null,
  /** control -> {control, prompts, config, pts, at} */
  controls: new Map(),
  populated: false,
  /** the session spec sent in setup (personal streams) */
  sentSession: null,
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

// ---------------------------------------------------------------------------------------------- audio

/** Creates the audio graph once, from a user gesture (browsers refuse to start audio otherwise). */
async function ensureAudio() {
  if (state.audio) {
    if (state.audio.ctx.state !== 'running') await state.audio.ctx.resume();
    return state.audio;
  }
  state.audioStarting ??= createAudio();
  return state.audioStarting;
}

async function createAudio() {
  const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  const resumed = ctx.resume();
  // The decoder worker lives as long as the page; it compiles its WASM while the first connection opens.
  const worker = new Worker('/decode-worker.js');
  worker.onmessage = (e) => {
    const d = e.data;
    if (d?.type === 'decoded') state.decoder = d;
    else if (d?.type === 'error') log(`Decoder: ${d.message}`, 'error');
  };
  worker.onerror = (e) => log(`Decoder failed: ${e.message}`, 'error');
  state.worker = worker;
  await ctx.audioWorklet.addModule('/jitter-processor.js');
  const node = new AudioWorkletNode(ctx, 'riverrun-jitter', {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [2],
    processorOptions: { targetMs: TARGET_MS },
  });
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  analyser.smoothingTimeConstant = 0.5;
  analyser.minDecibels = -100;
  analyser.maxDecibels = -20;
  const gain = ctx.createGain();
  gain.gain.value = Number(ui.volume.value);
  node.connect(analyser).connect(gain).connect(ctx.destination);
  node.port.onmessage = (e) => {
    if (e.data?.type === 'stats') onStats(e.data);
  };
  await resumed;
  state.audio = { ctx, node, analyser, gain, freq: new Uint8Array(analyser.frequencyBinCount), time: new Float32Array(analyser.fftSize) };
  if (ctx.sampleRate !== 48000) log(`The browser runs audio at ${ctx.sampleRate} Hz instead of 48000 Hz.`, 'warn');
  requestAnimationFrame(draw);
  return state.audio;
}

function onStats(s) {
  s.receivedAt = performance.now();
  state.stats = s;
  if (s.state === 'playing' && state.timeline.firstAudioAt !== null) state.timeline.playingAt ??= s.receivedAt;
  state.statsHistory.push(s);
  if (state.statsHistory.length > 600) state.statsHistory.shift();
  const c = state.change;
  if (c && c.heardAfterMs === null && c.appliedControl !== null && s.playingControl >= c.appliedControl) {
    c.heardAfterMs = s.receivedAt - c.at;
  }
  renderStatsThrottled();
}

// ------------------------------------------------------------------------------------------ connection

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
}

function send(msg) {
  if (state.ws?.readyState !== WebSocket.OPEN) {
    log('Not connected.', 'warn');
    return false;
  }
  state.ws.send(packr.pack(msg));
  return true;
}

async function connect(target) {
  await ensureAudio();
  disconnect(false);
  state.target = target;
  state.userClosed = false;
  state.timeline = { connectAt: performance.now(), setupAt: null, firstAudioAt: null, playingAt: null };
  open();
}

function open() {
  const target = state.target;
  const token = ui.token.value.trim();
  state.setup = null;
  state.controls.clear();
  state.populated = false;
  state.lastReceivedControl = -1;
  state.change = null;
  state.epoch++;
  state.audio.node.port.postMessage({ type: 'reset', epoch: state.epoch });
  setConn(target.kind === 'channel' ? `connecting to ${target.name}…` : 'starting your stream…');
  const ws = new WebSocket(wsUrl());
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  ws.onopen = () => {
    const setup = { type: 'setup' };
    if (token) setup.token = token;
    if (target.kind === 'channel') setup.listen = target.id;
    else setup.session = { prompts: readPrompts() ?? DEFAULT_PROMPTS, config: readConfig() };
    state.sentSession = setup.session ?? null;
    ws.send(packr.pack(setup));
  };
  ws.onmessage = (e) => {
    if (ws !== state.ws) return;
    let msg;
    try {
      msg = unpack(new Uint8Array(e.data));
    } catch {
      return;
    }
    if (msg && typeof msg.type === 'string') onMessage(msg);
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
  state.attempts = 0;
  state.timeline.setupAt ??= performance.now();
  const t = state.target;
  setConn(t.kind === 'channel' ? `listening to ${t.name}` : 'your stream', 'ok');
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
  // The server announces `applied` for changes only: a new session's control 0 is what setup asked for.
  if (state.sentSession && !state.controls.has(0)) {
    const { prompts, config } = state.sentSession;
    state.controls.set(0, {
      control: 0,
      prompts: prompts.map((p) => ({ text: p.text.trim(), weight: p.weight })),
      config: { ...DEFAULT_CONFIG, ...config },
      pts: 0,
      at: performance.now(),
      fromSetup: true,
    });
    state.populated = true;
  }
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(ping, 2000);
  ping();
  log(
    `Connected (${msg.channel ? `channel ${msg.channel}` : 'personal session'}, ${msg.audio.channels} ch, pre-skip ${msg.audio.preSkip}).`,
  );
  renderNowPlaying();
}

function onApplied(msg) {
  state.controls.set(msg.control, { control: msg.control, prompts: msg.prompts, config: msg.config, pts: msg.pts, at: performance.now() });
  // Keep the last few dozen controls (audio in the buffer can only be stamped with recent ones).
  if (state.controls.size > 64) state.controls.delete(state.controls.keys().next().value);
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
  let text = `${msg.code}: ${msg.message}`;
  if (msg.code === 'forbidden' && state.target?.kind === 'channel') text += ' (steering a channel needs an operator token)';
  if (msg.code === 'rate_limited') text += ' (slow down: the change was dropped)';
  log(text, msg.fatal ? 'error' : 'warn');
}

function onClosed(code, reason) {
  clearInterval(state.pingTimer);
  state.ws = null;
  state.worker?.postMessage({ type: 'stop' });
  if (state.userClosed) return;
  const retry = RECONNECT_CODES.has(code) || reason === 'slow_consumer';
  log(`Connection closed (${code}${reason ? ` ${reason}` : ''}).`, retry ? 'warn' : 'error');
  if (retry && state.attempts < 8) {
    const delay = Math.min(30_000, 1000 * 2 ** state.attempts++) * (0.75 + Math.random() * 0.5);
    setConn(`reconnecting in ${Math.round(delay / 1000)} s…`, 'warn');
    state.reconnectTimer = setTimeout(open, delay);
  } else {
    setConn(`disconnected${reason ? `: ${reason}` : ''}`, 'error');
    ui.disconnect.disabled = true;
  }
}

function disconnect(byUser = true) {
  clearTimeout(state.reconnectTimer);
  clearInterval(state.pingTimer);
  state.userClosed = true;
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.close(1000, 'bye');
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

// ------------------------------------------------------------------------------------------- steering

function markChange(kind) {
  const base = Math.max(-1, ...state.controls.keys());
  state.change = { kind, at: performance.now(), baseControl: base, appliedControl: null, appliedAfterMs: null, heardAfterMs: null };
}

function readPrompts() {
  const prompts = [];
  for (const row of ui.promptRows.querySelectorAll('.prompt-row')) {
    const text = row.querySelector('.p-text').value.trim();
    const weight = Number(row.querySelector('.p-weight').value);
    if (text) prompts.push({ text, weight });
  }
  return prompts.length > 0 ? prompts : null;
}

function readConfig() {
  const num = (id) => Number($(id).value);
  return {
    temperature: num('temperature'),
    topK: Math.round(num('topk')),
    topP: num('topp'),
    guidance: num('guidance'),
    seed: clampNum(Math.round(num('seed')), 0, 4294967295, 0),
  };
}

function applyPrompts(e) {
  e.preventDefault();
  const prompts = readPrompts();
  if (!prompts) return log('Write at least one prompt.', 'warn');
  if (!prompts.some((p) => p.weight > 0)) return log('At least one prompt needs a weight above 0.', 'warn');
  if (new Set(prompts.map((p) => p.text)).size !== prompts.length) return log('Each prompt text may appear once.', 'warn');
  const transitionMs = Math.round(Number(ui.transition.value) * 1000);
  if (send({ type: 'prompts', prompts, transitionMs })) {
    markChange('prompts');
    log(`Sent prompts: ${describePrompts(prompts)}${transitionMs ? `, over ${transitionMs / 1000} s` : ''}.`);
  }
}

function applyConfig(e) {
  e.preventDefault();
  const config = readConfig();
  if (send({ type: 'config', config })) {
    markChange('config');
    log(
      `Sent config: ${Object.entries(config)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    );
  }
}

function playback(action) {
  if (!send({ type: 'playback', action })) return;
  const port = state.audio?.node.port;
  if (action === 'pause') port?.postMessage({ type: 'pause' });
  else if (action === 'play') port?.postMessage({ type: 'resume' });
  else if (action === 'stop') port?.postMessage({ type: 'reset' });
  log(`Playback: ${action.replace('_', ' ')}.`);
}

// --------------------------------------------------------------------------------------------- forms

function addPromptRow(prompt = { text: '', weight: 1 }) {
  const rows = ui.promptRows.querySelectorAll('.prompt-row');
  if (rows.length >= MAX_PROMPTS) return;
  const row = ui.rowTemplate.content.firstElementChild.cloneNode(true);
  const text = row.querySelector('.p-text');
  const weight = row.querySelector('.p-weight');
  const out = row.querySelector('.p-weight-out');
  text.value = prompt.text;
  weight.max = String(Math.max(2, prompt.weight));
  weight.value = String(prompt.weight);
  out.textContent = fmtWeight(prompt.weight);
  weight.addEventListener('input', () => (out.textContent = fmtWeight(Number(weight.value))));
  row.querySelector('.p-remove').addEventListener('click', () => {
    row.remove();
    if (ui.promptRows.children.length === 0) addPromptRow();
    labelRows();
  });
  ui.promptRows.append(row);
  labelRows();
}

function labelRows() {
  const rows = [...ui.promptRows.querySelectorAll('.prompt-row')];
  rows.forEach((row, i) => {
    row.querySelector('.p-text').setAttribute('aria-label', `Prompt ${i + 1} text`);
    row.querySelector('.p-weight').setAttribute('aria-label', `Prompt ${i + 1} weight`);
    row.querySelector('.p-remove').setAttribute('aria-label', `Remove prompt ${i + 1}`);
  });
  ui.addPrompt.disabled = rows.length >= MAX_PROMPTS;
}

function fillPrompts(prompts) {
  ui.promptRows.replaceChildren();
  for (const p of prompts.slice(0, MAX_PROMPTS)) addPromptRow(p);
  if (prompts.length === 0) addPromptRow();
}

function fillConfig(config) {
  const c = { ...DEFAULT_CONFIG, ...config };
  setRange('temperature', c.temperature);
  setRange('topk', c.topK);
  setRange('topp', c.topP);
  setRange('guidance', c.guidance);
  ui.seed.value = String(c.seed);
}

function setRange(id, v) {
  $(id).value = String(v);
  $(`${id}-out`).textContent = String(Number($(id).value));
}

// ------------------------------------------------------------------------------------------ channels

async function loadChannels() {
  try {
    const res = await fetch('/v1/channels', { cache: 'no-store' });
    const data = await res.json();
    showModel(data.model);
    ui.channels.replaceChildren(
      ...data.channels.map((c) => {
        const li = document.createElement('li');
        const info = document.createElement('div');
        const name = document.createElement('strong');
        name.textContent = c.name;
        const meta = document.createElement('span');
        meta.className = 'muted small';
        meta.textContent = ` ${c.id} · ${c.listeners} listening · `;
        const ogg = document.createElement('a');
        ogg.href = c.ogg;
        ogg.textContent = 'Ogg';
        ogg.title = `Ogg Opus stream of ${c.name}, for media players`;
        meta.append(ogg);
        info.append(name, meta);
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'primary listen';
        btn.textContent = 'Listen';
        btn.setAttribute('aria-label', `Listen to ${c.name}`);
        btn.dataset.channel = c.id;
        btn.addEventListener('click', () => connect({ kind: 'channel', id: c.id, name: c.name }).catch(fail));
        li.append(info, btn);
        return li;
      }),
    );
    if (data.channels.length === 0) ui.channels.innerHTML = '<li class="muted">No channels on this server.</li>';
  } catch (err) {
    ui.channels.innerHTML = '<li class="muted">Could not load the channel list.</li>';
    log(`Channel list: ${err.message}`, 'error');
  }
}

function showModel(model) {
  if (!model) return;
  ui.notice.hidden = model.random !== true;
  ui.modelName.textContent = `Model: ${model.name}${model.random ? ' (random weights)' : ''}`;
}

// ------------------------------------------------------------------------------------------ rendering

function setConn(text, kind = '') {
  ui.conn.textContent = text;
  ui.conn.dataset.kind = kind;
}

function log(text, level = 'info') {
  const li = document.createElement('li');
  li.dataset.level = level;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, ` ${text}`);
  ui.log.prepend(li);
  while (ui.log.children.length > 50) ui.log.lastElementChild.remove();
  if (level === 'error') console.warn(text);
}

function fail(err) {
  log(String(err?.message ?? err), 'error');
}

function describePrompts(prompts) {
  return prompts.map((p) => `“${p.text}” ×${fmtWeight(p.weight)}`).join(', ');
}

function fmtWeight(w) {
  return Number(w.toFixed(2)).toString();
}

function clampNum(v, lo, hi, fallback) {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
}

function nowPlaying() {
  const control = state.stats?.playingControl ?? -1;
  if (control < 0) return null;
  const c = state.controls.get(control);
  return { control, prompts: c?.prompts ?? null, config: c?.config ?? null };
}

let shownControl = null;
function renderNowPlaying() {
  const np = nowPlaying();
  const key = np ? `${np.control}:${np.prompts ? 'p' : ''}` : state.setup ? 'wait' : 'none';
  if (key === shownControl) return;
  shownControl = key;
  if (!np) {
    ui.now.innerHTML = state.setup
      ? '<p class="muted">Buffering…</p>'
      : '<p class="muted">Press <strong>Listen</strong> on a channel, or <strong>Start my own stream</strong>.</p>';
    return;
  }
  const head = document.createElement('p');
  head.className = 'now-head';
  head.innerHTML = '<span class="muted">now playing:</span> ';
  const ctl = document.createElement('span');
  ctl.className = 'control';
  ctl.textContent = `control ${np.control}`;
  head.append(ctl);
  const list = document.createElement('ul');
  list.className = 'now-prompts';
  list.id = 'now-prompts';
  for (const p of np.prompts ?? []) {
    const li = document.createElement('li');
    const t = document.createElement('span');
    t.className = 'np-text';
    t.textContent = p.text;
    const w = document.createElement('span');
    w.className = 'np-weight';
    w.textContent = `×${fmtWeight(p.weight)}`;
    li.append(t, ' ', w);
    list.append(li);
  }
  if (!np.prompts) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent =
      state.target?.kind === 'channel' ? 'the channel’s starting prompts (no change announced yet)' : 'prompts not known yet';
    list.append(li);
  }
  const cfg = document.createElement('p');
  cfg.className = 'muted small';
  if (np.config)
    cfg.textContent = `temperature ${np.config.temperature} · top-k ${np.config.topK} · top-p ${np.config.topP} · guidance ${np.config.guidance} · seed ${np.config.seed}`;
  ui.now.replaceChildren(head, list, cfg);
}

let lastStatsRender = 0;
function renderStatsThrottled() {
  const now = performance.now();
  if (now - lastStatsRender < 250) return;
  lastStatsRender = now;
  renderStats();
}

function renderStats() {
  const s = state.stats;
  const a = state.audio;
  if (s && a) {
    const deviceMs = ((a.ctx.baseLatency || 0) + (a.ctx.outputLatency || 0)) * 1000;
    const stateText = s.state === 'playing' ? '' : ` (${s.state})`;
    $('st-buffer').textContent = `${Math.round(s.fillMs)} ms${stateText}`;
    $('st-target').textContent = `(target ${Math.round(s.targetMs)})`;
    $('st-latency').textContent = `${Math.round(s.fillMs + deviceMs)} ms`;
    $('st-underruns').textContent = String(s.underruns);
    $('st-rate').textContent = s.rate === 1 ? 'off' : `${s.rate > 1 ? '+' : '−'}${(Math.abs(s.rate - 1) * 100).toFixed(2)} %`;
    const db = s.rms > 0 ? 20 * Math.log10(s.rms) : -100;
    ui.meter.style.width = `${Math.max(0, Math.min(100, (db + 60) * (100 / 60)))}%`;
  }
  $('st-rtt').textContent = state.rttMs === null ? '–' : `${Math.round(state.rttMs)} ms`;
  const st = state.serverStatus;
  $('st-lead').textContent = st ? `${Math.round(st.leadMs)} ms` : '–';
  $('st-rtf').textContent = st ? `${st.rtf}×` : '–';
  const c = state.change;
  $('st-heard').textContent = !c
    ? '–'
    : c.heardAfterMs !== null
      ? `${(c.heardAfterMs / 1000).toFixed(1)} s`
      : c.appliedAfterMs !== null
        ? `applied in ${(c.appliedAfterMs / 1000).toFixed(1)} s…`
        : 'waiting…';
  renderNowPlaying();
}

// Spectrogram: one column per animation frame, log frequency axis (30 Hz at the bottom to 16 kHz).
const palette = (() => {
  const p = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    p[i * 3] = 255 * Math.min(1, Math.max(0, 1.6 * t - 0.3));
    p[i * 3 + 1] = 255 * Math.min(1, Math.max(0, 1.8 * t * t));
    p[i * 3 + 2] = 255 * Math.min(1, Math.max(0, 0.25 + t * 1.4 - 1.5 * t * t));
  }
  return p;
})();
let binForRow = null;
let column = null;
const ctx2d = ui.canvas.getContext('2d', { alpha: false });

function draw() {
  requestAnimationFrame(draw);
  const a = state.audio;
  if (!a) return;
  const c = ui.canvas;
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
    ctx2d.fillStyle = '#000';
    ctx2d.fillRect(0, 0, w, h);
    binForRow = null;
  }
  if (!binForRow) {
    const nyquist = a.ctx.sampleRate / 2;
    const bins = a.analyser.frequencyBinCount;
    binForRow = new Uint16Array(h);
    for (let y = 0; y < h; y++) {
      const f = 30 * (16000 / 30) ** (1 - y / (h - 1 || 1));
      binForRow[y] = Math.min(bins - 1, Math.round((f / nyquist) * bins));
    }
    column = ctx2d.createImageData(2, h);
  }
  a.analyser.getByteFrequencyData(a.freq);
  ctx2d.drawImage(c, -2, 0);
  const d = column.data;
  for (let y = 0; y < h; y++) {
    const v = a.freq[binForRow[y]];
    for (let x = 0; x < 2; x++) {
      const o = (y * 2 + x) * 4;
      d[o] = palette[v * 3];
      d[o + 1] = palette[v * 3 + 1];
      d[o + 2] = palette[v * 3 + 2];
      d[o + 3] = 255;
    }
  }
  ctx2d.putImageData(column, w - 2, 0);
}

// ----------------------------------------------------------------------------------------- test hook

function analyserRms() {
  const a = state.audio;
  if (!a) return 0;
  a.analyser.getFloatTimeDomainData(a.time);
  let s = 0;
  for (const v of a.time) s += v * v;
  return Math.sqrt(s / a.time.length);
}

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

// -------------------------------------------------------------------------------------------- wiring

ui.startSession.addEventListener('click', () => connect({ kind: 'session' }).catch(fail));
$('token-form').addEventListener('submit', (e) => e.preventDefault());
ui.refresh.addEventListener('click', () => loadChannels());
ui.disconnect.addEventListener('click', () => {
  disconnect(true);
  log('Disconnected.');
});
ui.volume.addEventListener('input', () => {
  if (state.audio) state.audio.gain.gain.setTargetAtTime(Number(ui.volume.value), state.audio.ctx.currentTime, 0.02);
});
ui.promptsForm.addEventListener('submit', applyPrompts);
ui.configForm.addEventListener('submit', applyConfig);
ui.addPrompt.addEventListener('click', () => addPromptRow());
ui.transition.addEventListener('input', () => ($('transition-out').textContent = `${ui.transition.value} s`));
for (const id of ['temperature', 'topk', 'topp', 'guidance']) {
  $(id).addEventListener('input', () => ($(`${id}-out`).textContent = $(id).value));
}
$('random-seed').addEventListener('click', () => (ui.seed.value = String(Math.floor(Math.random() * 2 ** 32))));
$('defaults').addEventListener('click', () => fillConfig(DEFAULT_CONFIG));
for (const b of document.querySelectorAll('[data-action]')) b.addEventListener('click', () => playback(b.dataset.action));
setInterval(renderStats, 500);

ui.steerNote.textContent = IDLE_NOTE;
fillPrompts(DEFAULT_PROMPTS);
fillConfig(DEFAULT_CONFIG);
loadChannels();
