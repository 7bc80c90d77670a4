/**
 * The wire protocol of a page attached to the site's @@live socket
 * (zorg.live's PROTOCOL.txt, "The shared connection"), without React:
 * attach one page, apply its events to a small state, detach on close.
 */

export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '?';
  const first = Array.from(words[0])[0];
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] : '';
  return (first + last).toUpperCase();
}

// The colour of someone's initials, as the Classic UI draws it (crc32 of
// the user id, mod 360).
const CRC = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function hue(text) {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(String(text))) {
    crc = CRC[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return ((crc ^ 0xffffffff) >>> 0) % 360;
}

/** The state after one event: {online, notice, editing, closed}. */
export function apply(state, event) {
  switch (event.event) {
    case 'join':
      return {
        ...state,
        online: [
          ...state.online.filter((p) => p.id !== event.principal),
          { id: event.principal, title: event.title || event.principal },
        ].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      };
    case 'leave':
      return { ...state, online: state.online.filter((p) => p.id !== event.principal) };
    case 'update':
      if (event.target === 'zorg-live-notice') return { ...state, notice: event.html || '' };
      if (event.target === 'zorg-live-editing') return { ...state, editing: event.html || '' };
      return state;
    case 'multi':
      return (event.events || []).reduce(apply, state);
    case 'close':
      return { ...state, closed: true };
    default:
      return state;
  }
}

/**
 * Attach `page` (the @live answer) on a WebSocket to `url`; `onState`
 * gets each new state. Returns a function that detaches and closes.
 */
export function attach(url, page, initial, onState) {
  let state = initial;
  let stopped = false;
  // The ticket of the @live answer tells the server who this is without
  // asking the site (the token cookie is the fallback).
  const ws = new WebSocket(page.ticket
    ? `${url}${url.includes('?') ? '&' : '?'}ticket=${encodeURIComponent(page.ticket)}`
    : url);
  ws.addEventListener('open', () => {
    ws.send(JSON.stringify({
      type: 'attach', page: 1, uuid: page.uuid, url: page.clientURL,
      lastEventId: page.lastEventId,
    }));
  });
  ws.addEventListener('message', (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (data.type === 'events' && data.page === 1) {
      state = (data.events || []).reduce(apply, state);
      onState(state);
    } else if (data.type === 'error') {
      state = { ...state, error: data.error };
      onState(state);
    }
  });
  return () => {
    if (stopped) return;
    stopped = true;
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'detach', page: 1 }));
    }
    ws.close();
  };
}
