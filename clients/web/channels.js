// The channel list: each channel with its listener count, its Ogg stream and a Listen button.
import { log, showModel, ui } from './dom.js';

/**
 * Fills the channel list from /v1/channels, with the access token of the form if one is given (a server
 * without anonymous access lists its channels only then); a Listen button calls `onListen({kind, id, name})`.
 */
export async function loadChannels(onListen) {
  const token = ui.token.value.trim();
  try {
    const res = await fetch('/v1/channels', { cache: 'no-store', headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (res.status === 401 || res.status === 429) {
      const why =
        res.status === 401
          ? token
            ? 'the access token is not valid here'
            : 'this server needs an access token'
          : (await res.text()).trim();
      ui.channels.innerHTML = '';
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = `Channels: ${why}. Enter one under Access token, then press Enter.`;
      ui.channels.append(li);
      ui.token.closest('details').open = true;
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
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
        // Media players cannot send a header: the token goes in the URL.
        ogg.href = token ? `${c.ogg}?token=${encodeURIComponent(token)}` : c.ogg;
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
