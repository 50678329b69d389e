// Riverrun web client: lists channels, listens to one or opens a personal stream, steers it (prompts,
// config, playback), and plays the audio without glitches:
//   WebSocket (connection.js) -> decode-worker.js (Opus -> PCM, off the audio thread)
//   -> MessagePort -> jitter-processor.js (AudioWorklet jitter buffer) -> analyser -> gain -> speakers.
// The protocol (codec, codes, ranges, reconnect policy) is the server's own, served as /protocol.js.
// Protocol: docs/protocol.md. Design and numbers: docs/web-client.md. This file wires the page up.
import { DEFAULT_CONFIG } from '/protocol.js';
import { loadChannels } from './channels.js';
import { connect, disconnect } from './connection.js';
import { $, fail, IDLE_NOTE, log, ui } from './dom.js';
import { addPromptRow, applyProtocolRanges, DEFAULT_PROMPTS, fillConfig, fillPrompts, randomSeed } from './forms.js';
import { renderStats } from './now-playing.js';
import { state } from './state.js';
import { applyConfig, applyPrompts, playback } from './steering.js';
import { installTestHook } from './test-hook.js';

const listen = (target) => connect(target).catch(fail);

installTestHook();
ui.startSession.addEventListener('click', () => listen({ kind: 'session' }));
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  loadChannels(listen);
});
ui.refresh.addEventListener('click', () => loadChannels(listen));
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
$('random-seed').addEventListener('click', () => (ui.seed.value = String(randomSeed())));
$('defaults').addEventListener('click', () => fillConfig(DEFAULT_CONFIG));
for (const b of document.querySelectorAll('[data-action]')) b.addEventListener('click', () => playback(b.dataset.action));
setInterval(renderStats, 500);

ui.steerNote.textContent = IDLE_NOTE;
applyProtocolRanges();
fillPrompts(DEFAULT_PROMPTS);
fillConfig(DEFAULT_CONFIG);
loadChannels(listen);
