// The page's elements and the small helpers that write to them: the connection pill, the message log,
// the model line, number formatting.

export const $ = (id) => document.getElementById(id);

export const ui = {
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

export const IDLE_NOTE = 'These prompts and settings start your own stream; while you listen, Apply changes it.';

export function setConn(text, kind = '') {
  ui.conn.textContent = text;
  ui.conn.dataset.kind = kind;
}

/** A line in the message log (newest first, 50 kept); errors also go to the console. */
export function log(text, level = 'info') {
  const li = document.createElement('li');
  li.dataset.level = level;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, ` ${text}`);
  ui.log.prepend(li);
  while (ui.log.children.length > 50) ui.log.lastElementChild.remove();
  if (level === 'error') console.warn(text);
}

export function fail(err) {
  log(String(err?.message ?? err), 'error');
}

/** The model line and, for random weights, the banner saying the audio is noise. */
export function showModel(model) {
  if (!model) return;
  ui.notice.hidden = model.random !== true;
  ui.modelName.textContent = `Model: ${model.name}${model.random ? ' (random weights)' : ''}`;
}

export function describePrompts(prompts) {
  return prompts.map((p) => `“${p.text}” ×${fmtWeight(p.weight)}`).join(', ');
}

export function fmtWeight(w) {
  return Number(w.toFixed(2)).toString();
}

export function clampNum(v, lo, hi, fallback) {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
}
