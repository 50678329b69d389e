// The steering forms: the prompt mixer (rows of text + weight) and the sampling config. Their ranges
// come from the protocol module, so the page accepts what the server accepts.
import { CONFIG_RANGES, DEFAULT_CONFIG, DEFAULT_PROTOCOL_LIMITS, TRANSITION_MS_RANGE } from '/protocol.js';
import { $, clampNum, fmtWeight, ui } from './dom.js';

/** The prompt the forms start with (the page's own choice, not a protocol default). */
export const DEFAULT_PROMPTS = [{ text: 'calm ambient piano with soft pads', weight: 1 }];
const MAX_PROMPTS = DEFAULT_PROTOCOL_LIMITS.maxPrompts;
/** Form input id -> config field. */
const CONFIG_INPUTS = { temperature: 'temperature', topk: 'topK', topp: 'topP', guidance: 'guidance' };

/** Sets the inputs' limits from protocol v1's ranges; call once, before filling the forms. */
export function applyProtocolRanges() {
  for (const [id, field] of Object.entries(CONFIG_INPUTS)) {
    $(id).min = String(CONFIG_RANGES[field].min);
    $(id).max = String(CONFIG_RANGES[field].max);
  }
  ui.seed.min = String(CONFIG_RANGES.seed.min);
  ui.seed.max = String(CONFIG_RANGES.seed.max);
  ui.transition.max = String(TRANSITION_MS_RANGE.max / 1000);
  ui.rowTemplate.content.querySelector('.p-text').maxLength = DEFAULT_PROTOCOL_LIMITS.maxPromptChars;
}

export function addPromptRow(prompt = { text: '', weight: 1 }) {
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

export function fillPrompts(prompts) {
  ui.promptRows.replaceChildren();
  for (const p of prompts.slice(0, MAX_PROMPTS)) addPromptRow(p);
  if (prompts.length === 0) addPromptRow();
}

export function fillConfig(config) {
  const c = { ...DEFAULT_CONFIG, ...config };
  for (const [id, field] of Object.entries(CONFIG_INPUTS)) setRange(id, c[field]);
  ui.seed.value = String(c.seed);
}

function setRange(id, v) {
  $(id).value = String(v);
  $(`${id}-out`).textContent = String(Number($(id).value));
}

/** The prompt rows with a text, or null when there is none. */
export function readPrompts() {
  const prompts = [];
  for (const row of ui.promptRows.querySelectorAll('.prompt-row')) {
    const text = row.querySelector('.p-text').value.trim();
    const weight = Number(row.querySelector('.p-weight').value);
    if (text) prompts.push({ text, weight });
  }
  return prompts.length > 0 ? prompts : null;
}

/** The whole config in the sampling form. */
export function readConfig() {
  const num = (id) => Number($(id).value);
  const seed = CONFIG_RANGES.seed;
  return {
    temperature: num('temperature'),
    topK: Math.round(num('topk')),
    topP: num('topp'),
    guidance: num('guidance'),
    seed: clampNum(Math.round(num('seed')), seed.min, seed.max, DEFAULT_CONFIG.seed),
  };
}

/** A random seed in the protocol's range. */
export function randomSeed() {
  return Math.floor(Math.random() * (CONFIG_RANGES.seed.max + 1));
}
