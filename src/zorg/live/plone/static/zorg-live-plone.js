/* zorg.live for Plone: draws "Here now" as avatars.
 *
 * livepage.js keeps the list #zorg-live-online (a join adds or renames
 * <li data-principal="ann">Ann Arbor</li>, a leave removes it); this
 * script turns each such plain entry into the avatar the server renders
 * (browser.py's avatar(): initials on the person's colour, their portrait
 * where they have one, the name on hover and for screen readers).
 */
(function () {
  'use strict';

  // The same rules as browser.py's initials() and hue() (zlib.crc32).
  function initials(name) {
    const words = name.trim().split(/\s+/).filter(Boolean);
    if (!words.length) return '?';
    const first = Array.from(words[0])[0];
    const last = words.length > 1 ? Array.from(words[words.length - 1])[0] : '';
    return (first + last).toUpperCase();
  }

  const CRC = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n += 1) {
      let c = n;
      for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function hue(text) {
    let crc = 0xffffffff;
    for (const byte of new TextEncoder().encode(text)) crc = CRC[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    return ((crc ^ 0xffffffff) >>> 0) % 360;
  }

  function draw(item, portraits) {
    if (item.querySelector('.zorg-live-avatar')) return;
    const principal = item.dataset.principal || '';
    const name = item.textContent.trim() || principal;
    item.textContent = '';
    item.title = name;
    const picture = document.createElement('span');
    picture.className = 'zorg-live-avatar';
    picture.setAttribute('aria-hidden', 'true');
    picture.style.setProperty('--zorg-live-hue', String(hue(principal)));
    picture.textContent = initials(name);
    if (portraits) {
      // A member without a portrait has none there (404): the initials stay.
      const img = document.createElement('img');
      img.alt = '';
      img.loading = 'lazy';
      img.addEventListener('error', () => img.remove());
      img.src = portraits + encodeURIComponent(principal);
      picture.appendChild(img);
    }
    const label = document.createElement('span');
    label.className = 'visually-hidden';
    label.textContent = name;
    item.append(picture, label);
  }

  // The parts that "Refresh the content in place" updates get the ids
  // the server's update events name (refresh.py's PARTS).
  function nameParts() {
    const parts = [['zorg-live-title', '#content > header > h1'],
      ['zorg-live-description', '#content > header > p.lead']];
    for (const [id, selector] of parts) {
      const element = document.querySelector(selector);
      if (element && !element.id) element.id = id;
    }
  }

  function watch() {
    nameParts();
    const root = document.getElementById('zorg-live');
    const list = document.getElementById('zorg-live-online');
    if (!root || !list) return;
    const portraits = root.dataset.portraits || '';
    const drawAll = () => {
      for (const item of list.children) draw(item, portraits);
    };
    drawAll();
    new MutationObserver(drawAll).observe(list, { childList: true, subtree: true, characterData: true });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', watch);
  } else {
    watch();
  }
})();
