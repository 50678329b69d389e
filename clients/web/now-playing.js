// What the page shows about the audio playing: "now playing" (the control heard now, matched with the
// `applied` messages) and the playback statistics.
import { $, fmtWeight, ui } from './dom.js';
import { state } from './state.js';

/** The control of the audio playing now, with its prompts and config when an `applied` announced them. */
export function nowPlaying() {
  const control = state.stats?.playingControl ?? -1;
  if (control < 0) return null;
  const c = state.controls.get(control);
  return { control, prompts: c?.prompts ?? null, config: c?.config ?? null };
}

let shownControl = null;
export function renderNowPlaying() {
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
export function renderStatsThrottled() {
  const now = performance.now();
  if (now - lastStatsRender < 250) return;
  lastStatsRender = now;
  renderStats();
}

export function renderStats() {
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
