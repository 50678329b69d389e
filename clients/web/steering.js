// Steering from the forms: prompts, the whole config, playback; each change is timed until it is
// applied and heard (state.change, shown as "Change heard").
import { send } from './connection.js';
import { describePrompts, log, ui } from './dom.js';
import { readConfig, readPrompts } from './forms.js';
import { state } from './state.js';

function markChange(kind) {
  const base = Math.max(-1, ...state.controls.keys());
  state.change = { kind, at: performance.now(), baseControl: base, appliedControl: null, appliedAfterMs: null, heardAfterMs: null };
}

export function applyPrompts(e) {
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

export function applyConfig(e) {
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

/** play / pause / stop / reset_context, mirrored on the local jitter buffer. */
export function playback(action) {
  if (!send({ type: 'playback', action })) return;
  const port = state.audio?.node.port;
  if (action === 'pause') port?.postMessage({ type: 'pause' });
  else if (action === 'play') port?.postMessage({ type: 'resume' });
  else if (action === 'stop') port?.postMessage({ type: 'reset' });
  log(`Playback: ${action.replace('_', ' ')}.`);
}
