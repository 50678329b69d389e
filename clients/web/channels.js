// The channel list: each channel with its listener count, its Ogg stream and a Listen button.
import { log, showModel, ui } from './dom.js';

/** Fills the channel list from /v1/channels; a Listen button calls `onListen({kind, id, name})`. */
export async function loadChannels(onListen) {
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
        btn.addEventListener('click', () => onListen({ kind: 'channel', id: c.id, name: c.name }));
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
