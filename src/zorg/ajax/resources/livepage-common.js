/*
 * zorg.live browser client: what the page and the owner of the shared
 * connection have in common, written once.
 *
 *   - compareEventIds, laterEventId: the order of event ids;
 *   - EventStreamParser: text/event-stream into messages;
 *   - backoffDelay: the wait before a reconnect (full jitter);
 *   - randomId: names that nobody else picks (a tab's key, an owner's id).
 *
 * Loaded twice, from the same file:
 *
 *   - by the page, with a script tag before livepage.js (LivePage.render
 *     writes both tags): livepage.js reads window.ZorgLiveCommon;
 *   - by livepage-worker.js, with importScripts() in a SharedWorker; in a
 *     tab elected with Web Locks, the worker's file finds it in the tab
 *     already.
 *
 * It defines self.ZorgLiveCommon (frozen) and nothing else; loaded again,
 * it keeps the first.
 */
(function (scope) {
  'use strict';

  if (scope.ZorgLiveCommon) return;

  /*
   * Event ids only grow: decimal integers ("42") from the memory broker,
   * Redis stream ids ("1700000000000-3") from the Redis broker. Compare them
   * as sequences of integers split on "-", of any length.
   */
  function compareEventIds(a, b) {
    const left = String(a).split('-');
    const right = String(b).split('-');
    for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
      if (i >= left.length) return -1;
      if (i >= right.length) return 1;
      const order = compareIntegers(left[i], right[i]);
      if (order !== 0) return order;
    }
    return 0;
  }

  function compareIntegers(x, y) {
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) {
      x = x.replace(/^0+(?=\d)/, '');
      y = y.replace(/^0+(?=\d)/, '');
      if (x.length !== y.length) return x.length < y.length ? -1 : 1;
    }
    return x < y ? -1 : x > y ? 1 : 0;
  }

  // The later of two event ids; none ("", null) is before any.
  function laterEventId(a, b) {
    if (a === null || a === undefined || a === '') return b ?? null;
    if (b === null || b === undefined || b === '') return String(a);
    return compareEventIds(a, b) >= 0 ? String(a) : String(b);
  }

  /*
   * Splits a text/event-stream into messages, following the HTML standard's
   * "parsing an event stream". Only messages are handed on ({type, data,
   * id}); comments and retry: lines matter only as proof of life and
   * reconnect advice (onRetry, optional).
   */
  class EventStreamParser {
    constructor(onMessage, onRetry) {
      this.onMessage = onMessage;
      this.onRetry = onRetry || (() => {});
      this.buffer = '';
      this.data = [];
      this.type = '';
      this.lastId = null;
    }

    feed(text) {
      this.buffer += text;
      const lineEnd = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = lineEnd.exec(this.buffer)) !== null) {
        // A trailing "\r" may be the first half of a "\r\n" split between chunks.
        if (match[0] === '\r' && lineEnd.lastIndex === this.buffer.length) break;
        this.line(this.buffer.slice(start, match.index));
        start = lineEnd.lastIndex;
      }
      this.buffer = this.buffer.slice(start);
    }

    line(line) {
      if (line === '') {
        this.dispatch();
        return;
      }
      if (line[0] === ':') return;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.type = value;
      else if (field === 'id' && !value.includes('\0')) this.lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.onRetry(Number(value));
    }

    dispatch() {
      const data = this.data;
      const type = this.type || 'message';
      this.data = [];
      this.type = '';
      if (data.length) this.onMessage({ type, data: data.join('\n'), id: this.lastId });
    }
  }

  /*
   * Milliseconds to wait before attempt number `attempt` (0, 1, ...) after
   * failures: random(0, min(cap, base * 2^attempt)), "full jitter", so that
   * browsers that lost the server at the same moment come back spread out.
   */
  function backoffDelay(base, cap, attempt) {
    return Math.random() * Math.min(cap, base * 2 ** attempt);
  }

  // 96 random bits as 24 characters of [0-9a-z].
  function randomId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('');
  }

  scope.ZorgLiveCommon = Object.freeze({
    compareEventIds, laterEventId, EventStreamParser, backoffDelay, randomId,
  });
}(typeof self !== 'undefined' ? self : this));
