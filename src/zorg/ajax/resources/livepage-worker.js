/*
 * zorg.live browser client: the one live connection of a browser and site,
 * shared by all its tabs.
 *
 * A browser keeps about six HTTP/1.1 connections per site. When every tab
 * holds its own event stream, tab seven never loads. So one owner per
 * browser and site (the key is the page's data-live-url) holds one
 * connection for all the tabs: a WebSocket, else one shared SSE stream that
 * lists every page. The owner runs
 *
 *   - in a SharedWorker made from this file (livepage.js does that where
 *     the browser has SharedWorker), or
 *   - in the one tab elected with the Web Locks API: livepage.js loads this
 *     file into that tab as a classic script, and the owner talks to the
 *     tabs over a BroadcastChannel.
 *
 * Theory of operation
 * -------------------
 * Each tab's page is named to the owner by a key the tab chose (the page id
 * itself may change when the tab registers again). The owner keeps one
 * record per page: page id, client URL and the id of the last event it
 * handed to the tab (a message to a living tab is never lost, so that id is
 * the tab's own once the tab has read its messages). On the connection each
 * page has a small number, the lowest one free; frames are routed by it.
 *
 * The owner attaches every recorded page on every new connection (a
 * reconnect), starting after its last event. When the owner itself changes
 * (the elected tab closed), the new owner knows nothing: it says hello and
 * each tab attaches again with its own last event id. Tabs drop events they
 * applied already, so overlaps are harmless; gaps cannot happen.
 *
 * Input goes over the WebSocket; the TAB keeps it until its ack arrives and
 * sends it again (same id) after its page is attached on a new connection,
 * and the server answers a repeated id from its record without running the
 * handler again. Over the shared SSE stream the tabs post input themselves.
 *
 * Messages between the tabs and the owner (structured clones):
 *   tab -> owner  {op: "attach", key, uuid, lastEventId, url, config}
 *                 {op: "detach", key}
 *                 {op: "input", key, id, handler, arguments}
 *                 {op: "debug", key, what}   (tests: "close", "lose-next-ack")
 *   owner -> tab  {op: "state", owner, state, transport}
 *                     state: "connecting" | "open" | "fallback" (neither WS
 *                     nor SSE gets through: the tabs connect on their own)
 *                 {op: "attached", key, connection, transport}
 *                 {op: "events", key, events}
 *                 {op: "ack", key, id, status, reply}
 *                 {op: "error", key, error, message}
 */
(function (scope) {
  'use strict';

  // What the owner shares with livepage.js: livepage-common.js, next to
  // this file. A SharedWorker imports it; a tab elected owner has it from
  // its page (the script tag before livepage.js).
  if (!scope.ZorgLiveCommon && typeof importScripts === 'function') importScripts('livepage-common.js');
  const { laterEventId, EventStreamParser, backoffDelay, randomId } = scope.ZorgLiveCommon;

  function webSocketURL(liveURL, ticket) {
    const url = new URL(liveURL);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (ticket) url.searchParams.set('ticket', ticket);
    return url.href;
  }

  const DEFAULT_CONFIG = {
    mode: 'auto',          // "auto" (WS, else SSE) | "ws" | "sse"
    heartbeat: 15000,      // ms: the server's heartbeat-interval
    backoffBase: 500,      // ms; a reconnect waits random(0, min(cap, base * 2^attempt))
    backoffCap: 30000,     // ms
    headersTimeout: 10000, // ms an SSE request may take to answer with headers
    inputsInFlight: 50,    // inputs sent on the WebSocket and not answered yet, at most
                           // (the server lets 100 wait on a connection)
  };

  class ConnectionOwner {
    /*
     * tabs: {post(key, message), broadcast(message)}: how messages reach
     * the tab of a page, or every tab.
     */
    constructor(liveURL, config, tabs) {
      this.liveURL = liveURL;
      this.config = Object.assign({}, DEFAULT_CONFIG, config);
      // The newest connection ticket a tab brought (see attach): the
      // handshake then needs no request to the site; an expired one only
      // means that the site is asked.
      this.ticket = this.config.ticket || null;
      this.tabs = tabs;
      this.id = randomId();      // tells the tabs a new owner from the old
      this.pages = new Map();    // key -> record {key, uuid, lastEventId, url, number, attached}
      this.numbers = new Map();  // page number -> key, or null while detaching
      this.transport = this.config.mode === 'sse' ? 'sse' : 'ws';
      this.state = 'connecting';
      this.serial = 0;           // connections made; a stale callback compares it
      this.attempt = 0;          // failures since the last success (backoff exponent)
      this.wsWorked = false;
      this.sseWorked = false;
      this.failures = 0;         // attempts in a row with the transport that never worked
      this.attachments = 0;      // names each attachment of a page
      this.socket = null;
      this.stream = null;        // {controller, numbers} of the SSE stream that works
      this.timer = null;         // liveness of the WebSocket
      this.retryTimer = null;    // the wait before a reconnect
      this.streamPending = false;
      this.streamLatest = null;  // AbortController of the newest stream asked for
      this.watched = new Set();  // keys of the tabs whose end the owner waits for
      this.inFlight = [];        // {key, id} of the inputs sent on this socket, unanswered, in order
      this.held = [];            // {key, message} of inputs that wait for room in inFlight
      this.connect();
    }

    // ------------------------------------------------------------- tabs

    receive(key, message) {
      switch (message.op) {
        case 'attach': this.attach(key, message); break;
        case 'detach': this.detach(key); break;
        case 'input': this.input(key, message); break;
        case 'debug': this.debug(key, message.what); break;
        default: break;
      }
    }

    // A new owner: every tab attaches its page (again).
    hello() {
      this.tabs.broadcast(Object.assign(this.stateMessage(), { op: 'hello' }));
    }

    announce() {
      this.tabs.broadcast(this.stateMessage());
    }

    stateMessage() {
      return { op: 'state', owner: this.id, state: this.state, transport: this.transport };
    }

    attach(key, message) {
      if (message.config && message.config.ticket) this.ticket = String(message.config.ticket);
      if (message.locked) this.watchTab(key);
      this.tabs.post(key, this.stateMessage());
      const known = this.pages.get(key);
      if (known && known.uuid === message.uuid) {
        known.lastEventId = laterEventId(known.lastEventId, message.lastEventId);
        if (known.attached) this.tellAttached(known);
        else if (this.transport === 'sse' && known.number === null) this.scheduleStream();
        return;
      }
      if (known) this.forget(known);
      const record = {
        key, uuid: String(message.uuid), url: message.url || null,
        lastEventId: message.lastEventId ? String(message.lastEventId) : null,
        number: null, attached: false, attachment: null, loseAck: false,
      };
      this.pages.set(key, record);
      if (this.state === 'open') this.attachOnServer(record);
      else if (this.transport === 'sse' && this.state !== 'fallback') this.scheduleStream();
    }

    detach(key) {
      const record = this.pages.get(key);
      if (record) this.forget(record);
    }

    input(key, message) {
      this.held.push({ key, message });
      this.sendInputs();
    }

    /*
     * Inputs go out in the order they came, a bounded number at a time, so
     * that the server never has to refuse one for want of room (it would
     * not say which). One whose page is not attached (any more) is dropped:
     * its tab sends it again once the page is attached anew.
     */
    sendInputs() {
      while (this.held.length && this.inFlight.length < this.config.inputsInFlight) {
        const { key, message } = this.held.shift();
        const record = this.pages.get(key);
        if (!record || !record.attached || this.transport !== 'ws' || this.state !== 'open') continue;
        this.inFlight.push({ key, id: message.id });
        this.sendFrame({
          type: 'input', page: record.number, id: message.id,
          handler: message.handler, arguments: message.arguments,
        });
      }
    }

    /*
     * Inputs run one after another in the order sent, and a refusal is
     * immediate: an answer to one means every input sent before it was
     * answered or refused already.
     */
    answered(key, id) {
      const at = this.inFlight.findIndex((input) => input.key === key && input.id === id);
      if (at >= 0) this.inFlight.splice(0, at + 1);
      this.sendInputs();
    }

    /*
     * For tests. "close": the connection breaks. "lose-next-ack": the next
     * answer to this page's input is lost with the connection;
     * "lose-next-ack-and-halt": the same, and this owner connects no more
     * (as if its tab hung), so that only a new owner can send it again.
     */
    debug(key, what) {
      const record = this.pages.get(key);
      if (what === 'close') this.lost();
      else if (record && (what === 'lose-next-ack' || what === 'lose-next-ack-and-halt')) record.loseAck = what;
    }

    /*
     * A tab that dies says nothing; but it holds a lock named after its key
     * for its life, and the owner waits for that lock (the Web Locks API
     * releases a lock when its holder's document goes away).
     */
    watchTab(key) {
      if (this.watched.has(key) || typeof navigator === 'undefined' || !navigator.locks) return;
      this.watched.add(key);
      navigator.locks.request(`zorg-live-tab ${key}`, () => {
        this.watched.delete(key);
        this.detach(key);
        if (this.tabs.gone) this.tabs.gone(key);
      });
    }

    // Drops a page: its tab closed, or it attaches under a new page id.
    forget(record) {
      this.pages.delete(record.key);
      if (record.number === null) return;
      if (this.transport === 'ws' && this.state === 'open') {
        // The number is free again when the server says "detached".
        this.numbers.set(record.number, null);
        this.sendFrame({ type: 'detach', page: record.number });
      } else {
        this.numbers.delete(record.number);
        if (this.transport === 'sse') this.scheduleStream();
      }
      record.number = null;
    }

    /*
     * Each attachment has a name of its own: a tab sends its unanswered
     * input again on a new one (the server may have lost the old one's).
     */
    tellAttached(record) {
      this.tabs.post(record.key, {
        op: 'attached', key: record.key, connection: record.attachment,
        transport: this.transport,
      });
    }

    lowestFreeNumber() {
      let number = 1;
      while (this.numbers.has(number)) number += 1;
      return number;
    }

    attachOnServer(record) {
      record.number = this.lowestFreeNumber();
      record.attached = false;
      this.numbers.set(record.number, record.key);
      if (this.transport === 'ws') {
        this.sendFrame({
          type: 'attach', page: record.number, uuid: record.uuid,
          lastEventId: record.lastEventId, url: record.url,
        });
      } else {
        this.scheduleStream();
      }
    }

    // ------------------------------------------------------ connections

    connect() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      if (this.transport === 'ws') this.openSocket();
      else this.scheduleStream();
    }

    setState(state) {
      if (this.state === state) return;
      this.state = state;
      this.announce();
    }

    // A connection works: attach every page on it, after its last event.
    opened() {
      this.attempt = 0;
      this.setState('open');
      if (this.transport === 'ws') {
        this.numbers.clear();
        for (const record of this.pages.values()) this.attachOnServer(record);
      }
    }

    // The connection is gone (or taken for gone): reconnect after a backoff.
    lost() {
      this.serial += 1;
      this.closeConnection();
      for (const record of this.pages.values()) {
        record.attached = false;
        record.number = null;
      }
      this.numbers.clear();
      this.setState('connecting');
      this.retryLater();
    }

    // A new connection at once: every page attaches again on it.
    renew() {
      this.lost();
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    }

    closeConnection() {
      clearTimeout(this.timer);
      this.timer = null;
      // The tabs send their unanswered inputs again on the next attachment.
      this.inFlight = [];
      this.held = [];
      if (this.socket) {
        const socket = this.socket;
        this.socket = null;
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        try { socket.close(); } catch (_) { /* closed already */ }
      }
      if (this.stream) this.stream.controller.abort();
      if (this.streamLatest) this.streamLatest.abort();
      this.stream = null;
      this.streamLatest = null;
    }

    retryLater() {
      const { backoffBase, backoffCap } = this.config;
      const delay = backoffDelay(backoffBase, backoffCap, this.attempt);
      this.attempt += 1;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    // Neither the WebSocket nor the shared stream gets through.
    fallBack() {
      this.serial += 1;
      this.closeConnection();
      this.pages.clear();
      this.numbers.clear();
      this.setState('fallback');
    }

    // -------------------------------------------------------- WebSocket

    openSocket() {
      const serial = ++this.serial;
      let socket;
      try {
        socket = new WebSocket(webSocketURL(this.liveURL, this.ticket));
      } catch (error) {
        this.socketFailed(false);
        return;
      }
      this.socket = socket;
      let opened = false;
      socket.onopen = () => {
        if (serial !== this.serial) return;
        opened = true;
        this.wsWorked = true;
        this.heard();
        this.opened();
      };
      socket.onmessage = (event) => {
        if (serial !== this.serial) return;
        this.heard();
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        this.handleFrame(frame, this.numbers);
      };
      // An error is always followed by close.
      socket.onclose = () => {
        if (serial !== this.serial) return;
        this.socket = null;
        this.socketFailed(opened);
      };
    }

    /*
     * A socket that never opened twice in a row, on a browser where no
     * socket of this owner ever did (a proxy that does not pass Upgrade,
     * say), is given up for the shared SSE stream; any other loss is
     * reconnected. (Twice: the server may have been restarting just then.)
     */
    socketFailed(opened) {
      if (!opened && !this.wsWorked && this.config.mode === 'auto' && ++this.failures >= 2) {
        this.failures = 0;
        this.serial += 1;
        this.closeConnection();
        this.transport = 'sse';
        this.state = 'connecting';
        this.announce();
        this.connect();
        return;
      }
      this.lost();
    }

    sendFrame(frame) {
      if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(frame));
    }

    /*
     * Browsers answer the server's WebSocket pings by themselves, unseen.
     * The owner asks with a ping frame after a heartbeat of silence and
     * takes the connection for lost after two.
     */
    heard() {
      clearTimeout(this.timer);
      const serial = this.serial;
      this.timer = setTimeout(() => {
        if (serial !== this.serial) return;
        this.sendFrame({ type: 'ping' });
        this.timer = setTimeout(() => {
          if (serial === this.serial) this.lost();
        }, this.config.heartbeat);
      }, this.config.heartbeat);
    }

    // ---------------------------------------------------------- frames

    handleFrame(frame, numbers) {
      if (!frame || typeof frame !== 'object') return;
      const key = numbers.get(frame.page);
      const record = key === undefined || key === null ? null : this.pages.get(key);
      switch (frame.type) {
        case 'attached':
          if (record) {
            record.attached = true;
            record.attachment = `${this.id}-${++this.attachments}`;
            this.tellAttached(record);
          }
          break;
        case 'events':
          if (record) this.handEvents(record, frame.events);
          break;
        case 'ack':
          if (!record) {
            if (typeof key === 'string') this.answered(key, frame.id);
            break;
          }
          if (record.loseAck) {
            // Tests: the server ran the input; its answer is lost with the connection.
            const halt = record.loseAck === 'lose-next-ack-and-halt';
            record.loseAck = false;
            this.lost();
            if (halt) {
              clearTimeout(this.retryTimer);
              this.connect = () => {};
            }
            break;
          }
          this.tabs.post(record.key, {
            op: 'ack', key: record.key, id: frame.id, status: frame.status, reply: frame.reply,
          });
          this.answered(record.key, frame.id);
          break;
        case 'detached':
          if (numbers.get(frame.page) === null) numbers.delete(frame.page);
          break;
        case 'error':
          this.refused(record, frame);
          break;
        default:
          // pong: proof of life only; reconnect: the server closes next.
          break;
      }
    }

    handEvents(record, events) {
      if (!Array.isArray(events)) return;
      for (const event of events) {
        if (event && event.id !== undefined && event.id !== null && event.id !== '') {
          record.lastEventId = laterEventId(record.lastEventId, String(event.id));
        }
      }
      this.tabs.post(record.key, { op: 'events', key: record.key, events });
    }

    /*
     * An error frame: a page whose attach was refused, or an attached page
     * that the server let go (its broker failed: attach it again later), or
     * a refused input (told to the tab; "busy": too many inputs wait on the
     * connection, so the tab sends its unanswered ones again later).
     */
    refused(record, frame) {
      if (!record) {
        if (typeof console !== 'undefined') console.warn('LivePage connection:', frame.error, frame.message);
        return;
      }
      if (typeof frame.id === 'string' && record.attached) {
        // A refused input that the server names: its tab settles it.
        const at = this.inFlight.findIndex((input) => input.key === record.key && input.id === frame.id);
        if (at >= 0) this.inFlight.splice(at, 1);
        this.tabs.post(record.key, {
          op: 'refused', key: record.key, id: frame.id, error: frame.error, message: frame.message,
        });
        this.sendInputs();
        return;
      }
      if (frame.error === 'busy' && record.attached) {
        this.tabs.post(record.key, { op: 'busy', key: record.key });
        return;
      }
      if (frame.error === 'broker-unavailable' || frame.error === 'busy') {
        this.attachLater(record);
        return;
      }
      if (frame.error === 'forbidden' && !record.attached && !record.renewed) {
        // The connection belongs to whoever was logged in when it was made
        // (anonymous, say, before this page's user logged in): a new one
        // carries the browser's credentials of now. A page still refused
        // on it is told so (its tab connects on its own).
        record.renewed = true;
        this.renew();
        return;
      }
      if (!record.attached) {
        this.pages.delete(record.key);
        this.numbers.delete(record.number);
        record.number = null;
        if (this.transport === 'sse') this.scheduleStream();
      }
      this.tabs.post(record.key, { op: 'error', key: record.key, error: frame.error, message: frame.message });
    }

    attachLater(record) {
      const serial = this.serial;
      record.attached = false;
      if (this.transport === 'ws') this.numbers.delete(record.number);
      record.number = null;
      const { backoffBase, backoffCap } = this.config;
      setTimeout(() => {
        if (serial !== this.serial || this.pages.get(record.key) !== record || record.number !== null) return;
        if (this.transport === 'ws') this.attachOnServer(record);
        else this.scheduleStream();
      }, backoffDelay(backoffBase, backoffCap, 3));
    }

    // ------------------------------------------------------- shared SSE

    /* Pages attach and detach in bursts (a reconnect): one new stream for a burst. */
    scheduleStream() {
      if (this.streamPending || this.state === 'fallback') return;
      this.streamPending = true;
      setTimeout(() => {
        this.streamPending = false;
        // While a reconnect waits, connect() opens the stream.
        if (this.transport === 'sse' && this.state !== 'fallback' && !this.retryTimer) this.openStream();
      }, 0);
    }

    /*
     * GET <live URL>/events?page=N,<uuid>,<last>&...: one stream for every
     * page. A changed set of pages opens a new stream; the old one is closed
     * after the new one's first byte, so nothing falls between the two.
     */
    async openStream() {
      const records = Array.from(this.pages.values());
      if (!records.length) {
        this.closeConnection();
        return;
      }
      const numbers = new Map();
      for (const record of records) {
        if (record.number === null) record.number = this.lowestFreeNumber();
        this.numbers.set(record.number, record.key);
        numbers.set(record.number, record.key);
      }
      let query = records.map((record) => `page=${encodeURIComponent(
        `${record.number},${record.uuid},${record.lastEventId ?? ''}`)}`).join('&');
      if (this.ticket) query += `&ticket=${encodeURIComponent(this.ticket)}`;
      const serial = this.serial;
      const controller = new AbortController();
      if (this.streamLatest && this.streamLatest !== (this.stream && this.stream.controller)) {
        this.streamLatest.abort();  // superseded before it started
      }
      this.streamLatest = controller;
      const silence = this.config.heartbeat * 3 + 15000;
      let timer = setTimeout(() => controller.abort(), this.config.headersTimeout);
      let gotByte = false;
      const stale = () => serial !== this.serial || (gotByte && (!this.stream || this.stream.controller !== controller));
      try {
        const response = await fetch(`${this.liveURL}/events?${query}`, {
          credentials: 'same-origin', cache: 'no-store',
          headers: { Accept: 'text/event-stream' }, signal: controller.signal,
        });
        if (!response.ok || !(response.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
          throw new Error(`shared event stream: HTTP ${response.status}`);
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const lines = new EventStreamParser((message) => {
          let frame;
          try {
            frame = JSON.parse(message.data);
          } catch (error) {
            return;
          }
          if (!stale()) this.handleFrame(frame, numbers);
        });
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (serial !== this.serial) return;
          clearTimeout(timer);
          // A half-open connection never ends by itself.
          timer = setTimeout(() => controller.abort(), silence);
          if (!gotByte && value.length) {
            gotByte = true;
            this.streamStarted(controller, numbers);
          }
          lines.feed(decoder.decode(value, { stream: true }));
        }
      } catch (error) {
        // Aborted, refused or broken: told below.
      } finally {
        clearTimeout(timer);
      }
      const working = this.stream && this.stream.controller === controller;
      // A stream superseded by a newer one ends quietly.
      if (serial !== this.serial || (!working && this.streamLatest !== controller)) return;
      this.stream = null;
      // Twice in a row without a byte, and never a stream that worked.
      if (!gotByte && !this.sseWorked && this.config.mode === 'auto' && ++this.failures >= 2) this.fallBack();
      else this.lost();
    }

    streamStarted(controller, numbers) {
      const previous = this.stream;
      this.stream = { controller, numbers };
      if (previous) previous.controller.abort();
      this.sseWorked = true;
      this.attempt = 0;
      // Each page is confirmed by its own "attached" frame.
      this.setState('open');
    }
  }

  scope.ZorgLiveConnectionOwner = ConnectionOwner;

  // ------------------------------------------------------- SharedWorker

  if (typeof SharedWorkerGlobalScope === 'undefined' || !(scope instanceof SharedWorkerGlobalScope)) return;

  /*
   * One worker per live URL and mode (livepage.js names it so). Each tab
   * connects with a MessagePort and names its page with a key.
   */
  let owner = null;
  const ports = new Map(); // key -> MessagePort
  const everyPort = new Set();
  const tabs = {
    post(key, message) {
      const port = ports.get(key);
      if (port) port.postMessage(message);
    },
    broadcast(message) {
      for (const port of everyPort) port.postMessage(message);
    },
    gone(key) {
      const port = ports.get(key);
      ports.delete(key);
      if (port) everyPort.delete(port);
    },
  };

  scope.onconnect = (event) => {
    const port = event.ports[0];
    everyPort.add(port);
    port.onmessage = (message) => {
      const data = message.data;
      if (!data || typeof data !== 'object' || typeof data.key !== 'string') return;
      if (data.op === 'attach') {
        if (!owner) owner = new ConnectionOwner(data.liveURL, data.config, tabs);
        ports.set(data.key, port);
      }
      if (owner) owner.receive(data.key, data);
    };
    port.start();
  };
}(typeof self !== 'undefined' ? self : this));
