/*
 * zorg.live browser client: keeps one LivePage up to date.
 *
 * LivePage.render() puts this file into the page's <head> as a classic
 * script tag carrying the page's settings, after the tag of what it shares
 * with livepage-worker.js:
 *
 *   <script src=".../++resource++zorgajax/livepage-common.js"></script>
 *   <script src=".../++resource++zorgajax/livepage.js"
 *           data-uuid="..." data-client-url="..." data-last-event-id="..."
 *           data-transport="auto"></script>
 *
 * optionally with data-presence-target="<id of a list of who is online>"
 * and data-autostart="false". The script creates window.LivePage (the one
 * client of this page) and starts it when the document has been parsed.
 * It speaks the wire protocol of zorg/live/PROTOCOL.txt and nothing else;
 * README.txt next to this file is the site developer's guide.
 *
 * Theory of operation
 * -------------------
 * One loop (run) owns the connection. Each turn makes exactly one output
 * request - an SSE stream or one long-poll - and waits for its outcome, so
 * there is never more than one outstanding output request per page. The
 * outcome decides the next turn: go on at once, wait (backoff with full
 * jitter, or the server's Retry-After), register the page again, or switch
 * from SSE to long-poll. Stopping bumps a generation counter and aborts the
 * request; a turn that wakes up under an old generation does nothing.
 *
 * Every event goes through deliver(): an event with an id not above the last
 * applied id is dropped, so an event is applied once and in order whatever
 * the transports repeat. Long-poll counts its requests in outputNum and moves
 * to the next number only after the response has been applied.
 *
 * The SSE stream is read with fetch() rather than EventSource: EventSource
 * hides comments (so a proxy that buffers the stream cannot be noticed) and
 * HTTP statuses (so "unknown page" and "busy" cannot be told from a broken
 * connection).
 *
 * The shared connection
 * ---------------------
 * A browser keeps about six HTTP/1.1 connections per site; a stream per tab
 * leaves tab seven without any. Where the server offers a WebSocket
 * (data-live-url) and the page does not ask for its own connection
 * (data-connection="tab"), the tab does not run the loop above: it hands
 * its page to the owner of the browser's one connection for the site
 * (livepage-worker.js, in a SharedWorker, or in the tab elected with Web
 * Locks) and receives its events from there. The tab still applies every
 * event through deliver(), with its own lastEventId, and keeps every input
 * until its ack arrives, sending it again (same id) whenever its page is
 * attached on a new connection. When neither WebSocket nor the shared SSE
 * stream gets through, the tab falls back to the loop above (long-poll).
 */
(() => {
  'use strict';

  const DEFAULTS = {
    transport: 'auto',      // "auto" (WS, else SSE, else long-poll) | "ws" | "sse" | "longpoll"
    connection: 'shared',   // "shared" (one connection per browser and site) | "tab"
    heartbeatInterval: 15000, // ms: the server's heartbeat; the shared connection pings after it
    sharedTimeout: 10000,   // ms within which the shared connection's owner must answer
    inputRetries: 10,       // network failures after which a posted input is given up
    inputsInFlight: 16,     // inputs of a tab sent over the WebSocket and not answered yet, at most
    backoffBase: 500,       // ms; a reconnect waits random(0, min(cap, base * 2^attempt))
    backoffCap: 30000,      // ms
    headersTimeout: 10000,  // ms an SSE request may take to answer with headers
    firstByteTimeout: 5000, // ms after the SSE headers within which a first byte must come
    streamIdleTimeout: 60000, // ms of SSE silence (no heartbeat either) after which the stream is dead
    pollTimeout: 120000,    // ms after which a held long-poll request is taken for lost
  };

  // The attribute event sets only attributes of these allow-lists, and URLs
  // only of these schemes (a relative URL resolves to the page's own):
  // anything else is refused unless the page declares it
  // (data-allow-attributes, data-allow-schemes on the script tag, or the
  // options allowAttributes, allowSchemes).
  const ALLOWED_ATTRIBUTES = new Set([
    'id', 'class', 'title', 'lang', 'dir', 'hidden', 'tabindex', 'role', 'alt',
    'name', 'value', 'type', 'placeholder', 'disabled', 'checked', 'selected',
    'readonly', 'required', 'multiple', 'min', 'max', 'step', 'minlength',
    'maxlength', 'pattern', 'size', 'rows', 'cols', 'for', 'label', 'open',
    'width', 'height', 'colspan', 'rowspan', 'headers', 'scope', 'span',
    'start', 'reversed', 'datetime', 'cite', 'download', 'target', 'rel',
    'href', 'src', 'action', 'method', 'poster', 'loading', 'decoding',
  ]);
  // Attributes whose value is a URL: checked against the allowed schemes.
  const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'poster', 'data', 'cite', 'background', 'ping', 'srcset']);
  const ALLOWED_SCHEMES = new Set(['http:', 'https:']);
  // Elements that no attribute event may change: <base href> redirects every
  // relative URL of the page, <script>, <meta> and <iframe srcdoc> run code.
  const GUARDED_ELEMENTS = new Set(['BASE', 'SCRIPT', 'META', 'LINK', 'OBJECT', 'EMBED', 'IFRAME', 'FRAME', 'STYLE']);

  // What the page shares with livepage-worker.js (the order of event ids,
  // the event-stream parser, the backoff, random ids): livepage-common.js,
  // which LivePage.render loads with a script tag of its own before this one.
  const common = window.ZorgLiveCommon;
  if (!common) {
    throw new Error('zorg.live: livepage-common.js must be loaded before livepage.js '
      + '(a script tag of its own, next to livepage.js)');
  }
  const { compareEventIds, EventStreamParser, backoffDelay, randomId } = common;

  // Outcomes of one turn of the loop.
  const APPLIED = 'applied';           // go on at once
  const FAILED = 'failed';             // wait (backoff), then try again
  const BUSY = 'busy';                 // wait (Retry-After), then try again
  const UNKNOWN_PAGE = 'unknown-page'; // register again, then go on
  const FALLBACK = 'fallback';         // SSE does not get through: long-poll from now on
  const STOPPED = 'stopped';           // the client was stopped meanwhile
  const REGISTERED = 'registered';     // registered again: go on at once

  function httpError(status, body, fallbackMessage) {
    const error = new Error((body && body.message) || fallbackMessage || `HTTP ${status}`);
    error.status = status;
    error.code = (body && body.error) || null;
    return error;
  }

  // A JSON answer; an empty body is {}.
  async function readJSONBody(response) {
    const text = await response.text();
    if (!text) return {};
    try {
      return JSON.parse(text);
    } catch (error) {
      if (response.ok) throw error;
      return null;
    }
  }

  async function readErrorBody(response) {
    try {
      return await response.json();
    } catch (_) {
      return null;
    }
  }

  // 503 "input-running": the input's id is being run by another request.
  function inputRunning(status, reply) {
    return status === 503 && !!reply && reply.error === 'input-running';
  }

  function retryAfterMs(response) {
    const value = response.headers.get('Retry-After');
    if (!value) return null;
    if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : null;
  }

  function streamingSupported() {
    return typeof fetch === 'function' && typeof ReadableStream === 'function' &&
      typeof TextDecoder === 'function' && typeof AbortController === 'function';
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Where this browser can run the one owner of a shared connection.
  function sharingSupported() {
    return typeof WebSocket === 'function' && typeof crypto === 'object' &&
      (typeof SharedWorker === 'function' ||
       (typeof navigator === 'object' && !!navigator.locks && typeof BroadcastChannel === 'function'));
  }

  /*
   * The tab's end of the shared connection: a MessagePort to the
   * SharedWorker, or else a BroadcastChannel to whichever tab holds the
   * owner's lock (this one, maybe). Returns {kind, post(message)} or null.
   */
  // The version of the messages between the tabs and the owner: tabs of a
  // newer livepage.js do not talk to an owner of an older one still running.
  const OWNER_PROTOCOL = 1;

  function openLink(client, onMessage) {
    const name = `zorg-live/${OWNER_PROTOCOL} ${client.mode} ${client.liveURL}`;
    if (typeof SharedWorker === 'function' && client.workerURL) {
      try {
        const worker = new SharedWorker(client.workerURL, { name });
        worker.port.onmessage = (event) => onMessage(event.data);
        worker.port.start();
        return { kind: 'worker', post: (message) => worker.port.postMessage(message) };
      } catch (error) {
        // A script of another origin, say: elect a tab instead.
      }
    }
    if (!(navigator.locks && typeof BroadcastChannel === 'function' && client.workerURL)) return null;
    const channel = new BroadcastChannel(name);
    channel.onmessage = (event) => {
      const message = event.data;
      if (message && (message.to === client._key || message.to === '*')) onMessage(message);
    };
    electOwner(name, client);
    return { kind: 'lock', post: (message) => channel.postMessage(message) };
  }

  /*
   * Every tab asks for the owner's lock and keeps it for its life once it
   * has it: the first tab owns the connection, and when it goes away the
   * Web Locks API hands the lock to the next tab in line by itself.
   */
  const elections = new Set();

  function electOwner(name, client) {
    if (elections.has(name)) return;
    elections.add(name);
    navigator.locks.request(`${name} owner`, () => new Promise(() => {
      loadOwnerClass(client.workerURL).then((Owner) => {
        const channel = new BroadcastChannel(name);
        const tabs = {
          post: (key, message) => channel.postMessage(Object.assign({ to: key }, message)),
          broadcast: (message) => channel.postMessage(Object.assign({ to: '*' }, message)),
        };
        const owner = new Owner(client.liveURL, client._ownerConfig(), tabs);
        channel.onmessage = (event) => {
          const message = event.data;
          if (message && typeof message.key === 'string' && message.to === undefined) owner.receive(message.key, message);
        };
        owner.hello();
      }, (error) => console.warn('LivePage: the shared connection cannot start here:', error));
    }));
  }

  // The owner's code is livepage-worker.js: loaded into this tab as a script.
  function loadOwnerClass(url) {
    if (window.ZorgLiveConnectionOwner) return Promise.resolve(window.ZorgLiveConnectionOwner);
    return new Promise((resolve, reject) => {
      const element = document.createElement('script');
      element.src = url;
      element.onload = () => (window.ZorgLiveConnectionOwner ? resolve(window.ZorgLiveConnectionOwner) : reject(new Error(`${url} defines no owner`)));
      element.onerror = () => reject(new Error(`${url} did not load`));
      document.head.appendChild(element);
    });
  }

  /*
   * A tab holds a lock named after its key for its life, so that the owner
   * learns when the tab is gone without a word. Resolves once it is held.
   */
  function holdTabLock(key) {
    if (!(typeof navigator === 'object' && navigator.locks)) return Promise.resolve(false);
    return new Promise((held) => {
      navigator.locks.request(`zorg-live-tab ${key}`, () => {
        held(true);
        return new Promise(() => {});
      }).catch(() => held(false));
    });
  }

  class LivePageClient {
    /*
     * options: uuid, clientURL, lastEventId, transport, presenceTarget, and
     * the timings of DEFAULTS (milliseconds).
     */
    constructor(options = {}) {
      this.options = Object.assign({}, DEFAULTS, options);
      this.uuid = options.uuid || null;
      this.clientURL = options.clientURL || null;
      this.lastEventId = options.lastEventId ? String(options.lastEventId) : null;
      this.presenceTarget = options.presenceTarget || null;
      // What the page declares beyond the allow-lists of the attribute event.
      this.allowAttributes = words(options.allowAttributes).map((name) => name.toLowerCase());
      this.allowSchemes = words(options.allowSchemes).map((scheme) => `${scheme.toLowerCase().replace(/:$/, '')}:`);
      this.mode = ['auto', 'ws', 'sse', 'longpoll'].includes(this.options.transport) ? this.options.transport : 'auto';
      this.liveURL = options.liveURL || null;
      this.workerURL = options.workerURL || null;
      // "shared": the page's events come over the browser's one connection
      // for the site; "tab": over this tab's own requests (as it falls back to).
      this.connection = this.options.connection !== 'tab' && this.liveURL && this.mode !== 'longpoll' &&
        streamingSupported() && sharingSupported() ? 'shared' : 'tab';
      // A WebSocket of its own is not made for one tab: "ws" means "auto" there.
      if (this.connection === 'tab' && this.mode === 'ws') this.mode = 'auto';
      if (this.connection === 'shared') this.transport = this.mode === 'sse' ? 'sse' : 'ws';
      else this.transport = this.mode !== 'longpoll' && streamingSupported() ? 'sse' : 'longpoll';
      this.sharedBy = null;       // "worker" | "lock": where the shared connection's owner runs
      this.status = 'closed';
      this.outputNum = 0;
      this.appliedCount = 0;

      this.onopen = null;
      this.onclose = null;
      this.onerror = null;
      this.onmessage = null;
      this.onconnected = null;

      this._listeners = new Map();
      this._running = false;
      this._generation = 0;
      this._abort = null;         // AbortController of the outstanding request
      this._timer = null;         // pending wait between turns
      this._wake = null;          // ends that wait early
      this._attempt = 0;          // failures since the last success (backoff exponent)
      this._registeredSinceOpen = false; // registered since output last worked
      this._everOpened = false;
      this._sseWorked = false;    // an SSE stream of this page delivered data once
      this._sseFailures = 0;      // SSE failures in a row
      this._sseRetry = 0;         // the server's "retry:" advice, ms
      this._closedByPagehide = false;
      this._key = randomId();    // names this page to the shared connection's owner
      this._link = null;          // to that owner
      this._tabLock = null;       // resolves when this tab holds its lock
      this._attachedTo = null;    // the connection the page is attached on now
      this._heardOwner = false;
      this._registering = null;   // the generation that registers the page anew
      this._inputs = new Map();   // input id -> input not answered yet, in the order sent
      this._inputCount = 0;

      if (typeof window !== 'undefined') {
        window.addEventListener('pagehide', () => this._pageHidden());
        window.addEventListener('pageshow', (event) => this._pageShown(event));
        window.addEventListener('online', () => this._wake && this._wake());
      }
    }

    // ---------------------------------------------------------------- API

    start() {
      if (this._running) return this;
      if (!this.clientURL) throw new Error('LivePage: no client URL (data-client-url)');
      this._running = true;
      this._closedByPagehide = false;
      this._attempt = 0;
      this._setStatus('connecting');
      const generation = ++this._generation;
      if (this.connection === 'shared') this._startShared(generation);
      else this._run(generation);
      return this;
    }

    close() {
      if (!this._running) return;
      this._tellServerClosed(false);
      this._stop('client', '');
    }

    /*
     * Calls a handler the page declares. Resolves with the events the
     * handler replied with (already applied); rejects with an Error carrying
     * status, code and the server's message. The input carries an id of its
     * own and is sent again under it until an answer comes, so the server
     * runs it once (over the shared WebSocket, or posted).
     */
    send(handler, args = []) {
      let wireArgs;
      try {
        // As JSON, whichever way it goes (a cycle cannot be sent at all).
        wireArgs = JSON.parse(JSON.stringify(args) ?? 'null');
      } catch (error) {
        return Promise.reject(error);
      }
      const input = { id: `${this._key}-${++this._inputCount}`, handler, args: wireArgs, sentOn: null, posting: false };
      const answered = new Promise((resolve, reject) => {
        input.resolve = resolve;
        input.reject = reject;
      });
      this._inputs.set(input.id, input);
      this._dispatchInput(input);
      return answered;
    }

    /*
     * Over the shared WebSocket once the page is attached on it (again, after
     * every new connection); otherwise posted.
     */
    _dispatchInput(input) {
      if (this._inputOverSocket()) this._sendInputs();
      else this._postInput(input);
    }

    _dispatchInputs() {
      if (this._inputOverSocket()) this._sendInputs();
      else for (const input of Array.from(this._inputs.values())) this._postInput(input);
    }

    _inputOverSocket() {
      return this.connection === 'shared' && this.transport === 'ws' && this._running;
    }

    /*
     * Sends the unanswered inputs not yet sent on the page's attachment, in
     * order, a few at a time: the server keeps the answers to a page's last
     * max-input-ids inputs, and one sent again must still find its answer
     * there (and the server lets only so many wait on a connection).
     */
    _sendInputs() {
      if (this._attachedTo === null) return;
      let inFlight = 0;
      for (const input of this._inputs.values()) {
        if (input.sentOn !== this._attachedTo) {
          if (inFlight >= this.options.inputsInFlight) return;
          input.sentOn = this._attachedTo;
          this._link.post({ op: 'input', key: this._key, id: input.id, handler: input.handler, arguments: input.args });
        }
        inFlight += 1;
      }
    }

    async _postInput(input) {
      if (input.posting) return;
      input.posting = true;
      const headers = {
        'Content-Type': 'application/json', Accept: 'application/json', 'X-Live-Input-Id': input.id,
      };
      const token = csrfToken();
      if (token) headers['X-CSRF-Token'] = token;
      for (let failures = 0; this._inputs.has(input.id); failures += 1) {
        let response;
        let body;
        try {
          response = await fetch(`${this.clientURL}/input`, {
            method: 'POST', headers, credentials: 'same-origin',
            body: JSON.stringify({ handler: input.handler, arguments: input.args }),
          });
          body = await readJSONBody(response);
        } catch (error) {
          // No answer: the input may have run or not; its id makes sending it again safe.
          if (failures + 1 >= this.options.inputRetries) {
            this._inputs.delete(input.id);
            input.reject(error);
            return;
          }
          await sleep(this._jitter(failures));
          continue;
        }
        if (inputRunning(response.status, body) && failures + 1 < this.options.inputRetries) {
          // Running elsewhere: sent again, it gets that run's answer.
          await sleep(retryAfterMs(response) || this._jitter(failures));
          continue;
        }
        this._settleInput(input.id, response.status, body);
        return;
      }
    }

    // The answer to an input, applied once: a repeat's answer finds it gone.
    _settleInput(id, status, reply) {
      const input = this._inputs.get(id);
      if (!input) return;
      this._inputs.delete(id);
      if (this._inputOverSocket()) this._sendInputs();
      if (status < 200 || status >= 300) {
        input.reject(httpError(status, reply));
        return;
      }
      const events = reply && Array.isArray(reply.events) ? reply.events : [];
      // Replies to this page alone: not part of the group log, so their ids
      // (if any) do not move lastEventId.
      for (const event of events) this._apply(event);
      input.resolve(events);
    }

    on(name, fn) {
      if (!this._listeners.has(name)) this._listeners.set(name, new Set());
      this._listeners.get(name).add(fn);
      return this;
    }

    off(name, fn) {
      const listeners = this._listeners.get(name);
      if (listeners) listeners.delete(fn);
      return this;
    }

    // -------------------------------------------------- shared connection

    _startShared(generation) {
      if (!this._link) {
        this._link = openLink(this, (message) => this._fromOwner(message));
        if (!this._link) {
          this._leaveShared(null);
          return;
        }
        this.sharedBy = this._link.kind;
        this._tabLock = holdTabLock(this._key);
      }
      this._heardOwner = false;
      this._tabLock.then(() => {
        if (this._generation === generation) this._attach();
      });
      // An owner that never answers (its script did not load, say) must not
      // leave the page dead: it connects on its own then.
      setTimeout(() => {
        if (this._generation === generation && !this._heardOwner) {
          this._report(new Error('the shared connection did not answer: connecting on its own'));
          this._leaveShared(null);
        }
      }, this.options.sharedTimeout);
    }

    _ownerConfig() {
      const { heartbeatInterval, backoffBase, backoffCap, headersTimeout } = this.options;
      return {
        mode: this.mode, heartbeat: heartbeatInterval, backoffBase, backoffCap, headersTimeout,
        ticket: this.options.ticket || null,
      };
    }

    // Hands the page to the owner, from the last event this tab applied.
    async _attach() {
      this._attachedTo = null;
      this._link.post({
        op: 'attach', key: this._key, uuid: this.uuid, lastEventId: this.lastEventId,
        url: this.clientURL, liveURL: this.liveURL, config: this._ownerConfig(),
        locked: await this._tabLock,
      });
    }

    _fromOwner(message) {
      if (!message || typeof message !== 'object' || this.connection !== 'shared') return;
      this._heardOwner = true;
      switch (message.op) {
        case 'hello':
          // A new owner (the tab that held the connection went away): it
          // knows nothing of this page yet.
          if (this._running) this._attach();
          this._ownerState(message);
          break;
        case 'state': this._ownerState(message); break;
        case 'attached': this._attached(message); break;
        case 'events': this._deliverAll(message.events); break;
        case 'ack':
          // The same input id is running (maybe in another process): it
          // goes again later and then gets that run's recorded answer.
          if (inputRunning(message.status, message.reply)) this._inputRefused({ id: message.id, error: 'busy' });
          else this._settleInput(message.id, message.status, message.reply);
          break;
        case 'error': this._attachRefused(message); break;
        case 'busy': this._sendInputsLater(); break;
        case 'refused': this._inputRefused(message); break;
        default: break;
      }
    }

    _ownerState(message) {
      if (message.transport === 'ws' || message.transport === 'sse') this.transport = message.transport;
      if (message.state === 'fallback') {
        // Neither the WebSocket nor the shared stream gets through.
        this._leaveShared('longpoll');
      } else if (message.state !== 'open') {
        this._attachedTo = null;
        if (this._running) this._setStatus('connecting');
      }
    }

    _attached(message) {
      if (!this._running) return;
      this.transport = message.transport;
      this._attachedTo = message.connection;
      this._opened();
      // A new connection: what it has not answered goes again.
      this._dispatchInputs();
    }

    /*
     * The server had too many inputs of this connection waiting and refused
     * some (it does not say which): after a while every unanswered one goes
     * again, and the server answers those it has run from its record.
     */
    // The server refused an input it names: "busy" goes again later.
    async _inputRefused(message) {
      const input = this._inputs.get(message.id);
      if (!input) return;
      if (message.error !== 'busy') {
        const status = { 'too-large': 413, forbidden: 403, 'unknown-page': 404 }[message.error] || 400;
        this._settleInput(message.id, status, { error: message.error, message: message.message });
        return;
      }
      const attachment = this._attachedTo;
      await sleep(this._jitter(3));
      if (input.sentOn === attachment && this._inputs.has(input.id)) {
        input.sentOn = null;
        this._dispatchInputs();
      }
    }

    async _sendInputsLater() {
      const generation = this._generation;
      await sleep(this._jitter(3));
      if (this._generation !== generation) return;
      for (const input of this._inputs.values()) input.sentOn = null;
      this._dispatchInputs();
    }

    _deliverAll(events) {
      if (!this._running || !Array.isArray(events)) return;
      const generation = this._generation;
      for (const event of events) {
        // The server shuts down: the owner reconnects.
        if (event && event.event === 'reconnect') continue;
        this._deliver(event, null);
        if (this._generation !== generation) return;
      }
    }

    // The connection would not take the page (or refused its input).
    _attachRefused(message) {
      if (!this._running) return;
      if (this._attachedTo !== null) {
        this._report(httpError(400, { error: message.error, message: message.message }));
        return;
      }
      if (message.error === 'not-found' || message.error === 'unknown-page') {
        // The server forgot the page (it expired, or the server restarted).
        this._registerAgain(this._generation);
        return;
      }
      this._report(httpError(message.error === 'forbidden' ? 403 : 400,
        { error: message.error, message: message.message }, 'the shared connection refused the page'));
      this._leaveShared(null);
    }

    async _registerAgain(generation) {
      // One new page id at a time, however many refusals come.
      if (this._registering === generation) return;
      this._registering = generation;
      try {
        for (;;) {
          this._setStatus('connecting');
          const outcome = await this._register(generation);
          if (this._generation !== generation || outcome.type === STOPPED) return;
          if (outcome.type === APPLIED) {
            this._attach();
            return;
          }
          await this._sleep(outcome.delay ?? this._backoff(), generation);
          if (this._generation !== generation) return;
        }
      } finally {
        if (this._registering === generation) this._registering = null;
      }
    }

    /*
     * From now on the tab connects on its own: long-poll when the shared
     * connection does not get through at all, else as without one.
     */
    _leaveShared(transport) {
      if (this.connection !== 'shared') return;
      if (this._link) this._link.post({ op: 'detach', key: this._key });
      this.connection = 'tab';
      this._attachedTo = null;
      if (this.mode === 'ws') this.mode = 'auto';
      this.transport = transport || (this.mode !== 'longpoll' && streamingSupported() ? 'sse' : 'longpoll');
      this._dispatchInputs();
      if (this._running) this._run(++this._generation);
    }

    /*
     * For tests: "close" drops the shared connection as a network would;
     * "lose-next-ack" loses the next answer to this page's input together
     * with the connection (after the server ran the input);
     * "lose-next-ack-and-halt" also stops the owner from connecting again.
     */
    _debugConnection(what) {
      if (this._link) this._link.post({ op: 'debug', key: this._key, what });
    }

    // --------------------------------------------------------------- loop

    async _run(generation) {
      while (this._generation === generation) {
        let outcome;
        if (this.transport === 'sse') outcome = await this._streamOnce(generation);
        else outcome = await this._pollOnce(generation);
        if (this._generation !== generation || outcome.type === STOPPED) return;

        if (outcome.type === UNKNOWN_PAGE) {
          // Registered already, and the new page id is unknown again before
          // anything got through (processes that do not share page records
          // behind a round-robin proxy, say): back off like any failure, so
          // a misconfigured deployment cannot make the page loop at full speed.
          if (this._registeredSinceOpen) {
            this._setStatus('connecting');
            await this._sleep(this._backoff(), generation);
            if (this._generation !== generation) return;
          }
          outcome = await this._register(generation);
          if (outcome.type === APPLIED) {
            this._registeredSinceOpen = true;
            outcome = { type: REGISTERED };
          }
        }
        if (this._generation !== generation || outcome.type === STOPPED) return;

        switch (outcome.type) {
          case APPLIED:
            this._attempt = 0;
            break;
          case REGISTERED:   // go on at once, but keep the backoff exponent
            break;
          case FALLBACK:
            this.transport = 'longpoll';
            this._setStatus('connecting');
            break;
          case BUSY:
            this._setStatus('connecting');
            await this._sleep((outcome.delay ?? this._backoff()) + this._jitter(0), generation);
            break;
          case FAILED:
            this._setStatus('connecting');
            if (outcome.error) this._report(outcome.error);
            await this._sleep((outcome.delay || 0) + this._backoff(), generation);
            break;
        }
      }
    }

    _jitter(attempt) {
      const { backoffBase, backoffCap } = this.options;
      return backoffDelay(backoffBase, backoffCap, attempt);
    }

    _backoff() {
      const delay = this._jitter(this._attempt);
      this._attempt += 1;
      return delay;
    }

    _sleep(ms, generation) {
      if (this._generation !== generation) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(this._timer);
          this._timer = null;
          this._wake = null;
          resolve();
        };
        this._timer = setTimeout(done, ms);
        this._wake = done;
      });
    }

    _newRequest() {
      this._abort = new AbortController();
      return this._abort;
    }

    // ---------------------------------------------------------- long-poll

    async _pollOnce(generation) {
      const requestNum = this.outputNum;
      let url = `${this.clientURL}/output?outputNum=${requestNum}`;
      if (this.lastEventId !== null) url += `&lastEventId=${encodeURIComponent(this.lastEventId)}`;
      const controller = this._newRequest();
      const timeout = setTimeout(() => controller.abort(new Error('output request timed out')), this.options.pollTimeout);
      let response;
      let body;
      try {
        response = await fetch(url, {
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { Accept: 'application/json' },
          signal: controller.signal,
        });
        body = response.ok ? await response.json() : await readErrorBody(response);
      } catch (error) {
        if (this._generation !== generation) return { type: STOPPED };
        return { type: FAILED, error };
      } finally {
        clearTimeout(timeout);
      }
      if (this._generation !== generation) return { type: STOPPED };

      if (!response.ok) return this._classify(response, body);
      this._opened();
      for (const event of (body && Array.isArray(body.events)) ? body.events : []) {
        // The server is shutting down: this answer was not recorded, so ask
        // again (with backoff) with the same outputNum.
        if (event && event.event === 'reconnect') return { type: FAILED, error: new Error('the server asked to reconnect') };
        this._deliver(event, null);
        if (this._generation !== generation) return { type: STOPPED };
      }
      // Applied: the next request acknowledges this response.
      this.outputNum = requestNum + 1;
      return { type: APPLIED };
    }

    _classify(response, body) {
      const code = body && body.error;
      if (response.status === 404 && code === 'unknown-page') return { type: UNKNOWN_PAGE };
      // Out of the outputNum window: the server cannot say which response
      // this page has seen, so start over as a new page from lastEventId.
      if (response.status === 400 && code === 'bad-request') return { type: UNKNOWN_PAGE };
      if (response.status === 503) return { type: BUSY, delay: retryAfterMs(response) };
      return { type: FAILED, error: httpError(response.status, body) };
    }

    // ---------------------------------------------------------------- SSE

    async _streamOnce(generation) {
      let url = `${this.clientURL}/events`;
      if (this.lastEventId !== null) url += `?lastEventId=${encodeURIComponent(this.lastEventId)}`;
      const controller = this._newRequest();
      let timedOut = false;
      let timer = setTimeout(() => { timedOut = true; controller.abort(); }, this.options.headersTimeout);
      let gotByte = false;
      try {
        const response = await fetch(url, {
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { Accept: 'text/event-stream' },
          signal: controller.signal,
        });
        clearTimeout(timer);
        if (!response.ok) {
          const outcome = this._classify(response, await readErrorBody(response));
          return outcome.type === FAILED ? this._sseFailed(outcome.error, false) : outcome;
        }
        const contentType = response.headers.get('Content-Type') || '';
        if (!contentType.startsWith('text/event-stream') || !response.body) {
          return this._sseFailed(new Error(`not an event stream: ${contentType}`), false);
        }

        // Headers came; a proxy that buffers the body would keep the rest back.
        timer = setTimeout(() => { timedOut = true; controller.abort(); }, this.options.firstByteTimeout);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = new EventStreamParser(
          (message) => this._streamMessage(message, generation),
          (ms) => { this._sseRetry = ms; });
        for (;;) {
          const { done, value } = await reader.read();
          if (this._generation !== generation) return { type: STOPPED };
          if (done) break;
          if (!value.length) continue;
          clearTimeout(timer);
          // A half-open connection (e.g. after the computer slept) never ends by itself.
          timer = setTimeout(() => controller.abort(new Error('event stream went silent')), this.options.streamIdleTimeout);
          if (!gotByte) {
            gotByte = true;
            this._sseWorked = true;
            this._sseFailures = 0;
            this._attempt = 0;
            this._opened();
          }
          parser.feed(decoder.decode(value, { stream: true }));
          if (this._generation !== generation) return { type: STOPPED };
        }
        if (!gotByte) return this._sseFailed(new Error('event stream ended before any data'), false);
        return this._sseFailed(new Error('event stream ended'), true);
      } catch (error) {
        if (this._generation !== generation) return { type: STOPPED };
        const reason = timedOut && !gotByte ? new Error('event stream sent nothing in time') : error;
        return this._sseFailed(reason, gotByte, timedOut);
      } finally {
        clearTimeout(timer);
      }
    }

    _streamMessage(message, generation) {
      if (message.type !== 'message' || this._generation !== generation) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        this._report(error);
        return;
      }
      // Shutting down: the stream ends next and is reopened with backoff.
      if (event && event.event === 'reconnect') return;
      this._deliver(event, message.id);
    }

    /*
     * An SSE stream that delivered data and then broke is simply reopened.
     * In "auto" mode the client falls back to long-poll when SSE has never
     * delivered data on this page, when two attempts in a row failed, or when
     * a stream opened but stayed silent (a buffering proxy).
     */
    _sseFailed(error, gotByte, silent = false) {
      if (gotByte) {
        this._sseFailures = 1;
        return { type: FAILED, error, delay: this._sseRetry };
      }
      this._sseFailures += 1;
      if (this.mode === 'auto' && (silent || !this._sseWorked || this._sseFailures >= 2)) {
        return { type: FALLBACK };
      }
      return { type: FAILED, error, delay: this._sseRetry };
    }

    // ------------------------------------------------------- registration

    pageURL() {
      const at = this.clientURL.lastIndexOf('/@@client/');
      return at < 0 ? this.clientURL : this.clientURL.slice(0, at);
    }

    async _register(generation) {
      let url = `${this.pageURL()}/@@client/register`;
      if (this.lastEventId !== null) url += `?lastEventId=${encodeURIComponent(this.lastEventId)}`;
      const headers = { Accept: 'application/json' };
      const token = csrfToken();
      if (token) headers['X-CSRF-Token'] = token;
      const controller = this._newRequest();
      let response;
      let body;
      try {
        response = await fetch(url, { method: 'POST', headers, credentials: 'same-origin', signal: controller.signal });
        body = response.ok ? await response.json() : await readErrorBody(response);
      } catch (error) {
        if (this._generation !== generation) return { type: STOPPED };
        return { type: FAILED, error };
      }
      if (this._generation !== generation) return { type: STOPPED };
      if (response.status === 503) return { type: BUSY, delay: retryAfterMs(response) };
      if (!response.ok && response.status < 500) {
        // The page cannot be continued (gone, or no longer ours): show it anew.
        this._reloadPage('register-refused', body && body.message);
        return { type: STOPPED };
      }
      if (!response.ok) return { type: FAILED, error: httpError(response.status, body) };

      this.uuid = body.uuid;
      this.clientURL = body.clientURL || `${this.pageURL()}/@@client/${body.uuid}`;
      this.outputNum = 0;
      if (body.recovered !== true) {
        // The group's history no longer covers what this page missed.
        this._reloadPage('not-recovered', '');
        return { type: STOPPED };
      }
      // A new page on the server: SSE may get through again if it did before.
      if (this.mode !== 'longpoll' && this._sseWorked) {
        this.transport = 'sse';
        this._sseFailures = 0;
      }
      return { type: APPLIED };
    }

    // ----------------------------------------------------------- delivery

    /*
     * Applies an event from output unless its id is not above the last
     * applied one. Returns whether it was applied.
     */
    _deliver(event, streamId) {
      if (!event || typeof event !== 'object') return false;
      let id = event.id ?? streamId;
      if (id !== null && id !== undefined && id !== '') {
        id = String(id);
        if (this.lastEventId !== null && compareEventIds(id, this.lastEventId) <= 0) return false;
        this.lastEventId = id;
      }
      this._apply(event);
      return true;
    }

    _apply(event) {
      if (event.event !== 'idle') {
        this.appliedCount += 1;
        this._call('onmessage', event);
      }
      this._applyOne(event);
    }

    _applyOne(event) {
      const type = event.event;
      const action = ACTIONS[type];
      if (action) {
        try {
          action.call(this, event);
        } catch (error) {
          this._report(error);
        }
      }
      this._dispatch(type === 'custom' ? event.name : type, event);
    }

    _dispatch(name, event) {
      if (typeof name !== 'string' || !name) return;
      for (const fn of Array.from(this._listeners.get(name) || [])) {
        try {
          fn.call(this, event);
        } catch (error) {
          this._report(error);
        }
      }
      document.dispatchEvent(new CustomEvent(`livepage:${name}`, { detail: event }));
    }

    // ------------------------------------------------------ state changes

    _setStatus(status) {
      if (this.status === status) return;
      this.status = status;
      document.dispatchEvent(new CustomEvent('livepage:status', {
        detail: { status, transport: this.transport },
      }));
    }

    _opened() {
      this._registeredSinceOpen = false;
      if (this.status === 'open') return;
      this._setStatus('open');
      this._call('onopen');
      if (!this._everOpened) {
        this._everOpened = true;
        this._call('onconnected');
      }
    }

    _stop(code, reason) {
      if (this.connection === 'shared' && this._link && this._running) {
        this._link.post({ op: 'detach', key: this._key });
        this._attachedTo = null;
        // Nothing will answer these over the connection any more.
        for (const input of Array.from(this._inputs.values())) {
          if (input.posting) continue;
          this._inputs.delete(input.id);
          input.reject(new Error('the page was closed'));
        }
      }
      this._running = false;
      this._generation += 1;
      if (this._abort) this._abort.abort();
      this._abort = null;
      if (this._wake) this._wake();
      this._setStatus('closed');
      this._call('onclose', code, reason);
    }

    _tellServerClosed(beacon) {
      const url = `${this.clientURL}/close`;
      if (beacon && navigator.sendBeacon && navigator.sendBeacon(url)) return;
      fetch(url, { method: 'POST', credentials: 'same-origin', keepalive: true }).catch(() => {});
    }

    _reloadPage(code, reason) {
      this._tellServerClosed(true);
      this._stop(code, reason);
      location.reload();
    }

    _pageHidden() {
      if (!this._running) return;
      this._tellServerClosed(true);
      this._stop('pagehide', '');
      this._closedByPagehide = true;
    }

    _pageShown(event) {
      // Back from the back/forward cache: the server forgot this page, and the
      // first request will register it again from lastEventId.
      if (event.persisted && this._closedByPagehide) this.start();
    }

    _call(name, ...args) {
      const fn = this[name];
      if (typeof fn !== 'function') return;
      try {
        fn.apply(this, args);
      } catch (error) {
        console.error(error);
      }
    }

    _report(error) {
      if (typeof this.onerror === 'function') this._call('onerror', error);
      else console.warn('LivePage:', error);
    }
  }

  // ------------------------------------------------------- built-in events
  //
  // Only the html field of append/prepend/update/replace is parsed as HTML
  // (server-rendered; the server escapes user text in it). Every other field
  // is set as text. Nothing is ever evaluated as script.

  function target(event) {
    return typeof event.target === 'string' ? document.getElementById(event.target) : null;
  }

  function html(event) {
    return event.html == null ? '' : String(event.html);
  }

  function words(value) {
    if (Array.isArray(value)) return value.map(String).filter(Boolean);
    return String(value || '').split(/\s+/).filter(Boolean);
  }

  // Why the attribute event may not set `name` to `value` on `el`, or null.
  function refusedAttribute(client, el, name, value) {
    const lower = name.toLowerCase();
    if (GUARDED_ELEMENTS.has(el.tagName)) return `no attribute of <${el.tagName.toLowerCase()}> may be set`;
    const declared = client.allowAttributes.includes(lower);
    if (lower.startsWith('on')) return 'event handler attributes are never set';
    if (!declared && !ALLOWED_ATTRIBUTES.has(lower) && !lower.startsWith('data-') && !lower.startsWith('aria-')) {
      return 'the attribute is not in the allow-list (the page may declare it)';
    }
    if (!URL_ATTRIBUTES.has(lower)) return null;
    // The URL as the browser will take it: resolved against the page, so
    // that spaces and control characters cannot hide a scheme.
    let url;
    try {
      url = new URL(String(value).trim(), document.baseURI);
    } catch (error) {
      return 'the value is not a URL';
    }
    if (ALLOWED_SCHEMES.has(url.protocol) || client.allowSchemes.includes(url.protocol)) return null;
    return `URLs of the scheme ${url.protocol} are not allowed (the page may declare it)`;
  }

  function presenceList(client) {
    return client.presenceTarget ? document.getElementById(client.presenceTarget) : null;
  }

  function presenceItem(list, principal) {
    return Array.from(list.children).find((item) => item.dataset.principal === principal) || null;
  }

  function setProgress(element, event) {
    const value = Math.min(1, Math.max(0, Number(event.value) || 0));
    if (element instanceof HTMLProgressElement) element.value = value * element.max;
    else element.style.width = `${value * 100}%`;
    if (event.text != null) element.textContent = String(event.text);
  }

  // An appended fragment with a key is added once: the page's HTML may
  // hold it already (rendered from a snapshot that saw the change whose
  // event comes after the page's cursor; see delivery.txt).
  function keyed(el, event) {
    if (event.key == null) return false;
    const key = String(event.key);
    return Array.from(el.querySelectorAll('[data-live-key]')).some((child) => child.dataset.liveKey === key);
  }

  const ACTIONS = {
    append(event) { const el = target(event); if (el && !keyed(el, event)) el.insertAdjacentHTML('beforeend', html(event)); },
    prepend(event) { const el = target(event); if (el && !keyed(el, event)) el.insertAdjacentHTML('afterbegin', html(event)); },
    update(event) { const el = target(event); if (el) el.innerHTML = html(event); },
    replace(event) { const el = target(event); if (el) el.outerHTML = html(event); },
    remove(event) { const el = target(event); if (el) el.remove(); },

    attribute(event) {
      const el = target(event);
      const name = String(event.name || '');
      if (!el || !name) return;
      const refused = refusedAttribute(this, el, name, event.value === null ? '' : event.value);
      if (refused && (event.value !== null || GUARDED_ELEMENTS.has(el.tagName))) {
        throw new Error(`LivePage refused attribute ${name}: ${refused}`);
      } else if (event.value === null) {
        el.removeAttribute(name);
      } else {
        el.setAttribute(name, String(event.value));
      }
    },

    addclass(event) {
      const el = target(event);
      if (el) el.classList.add(...String(event.name || '').split(/\s+/).filter(Boolean));
    },

    removeclass(event) {
      const el = target(event);
      if (el) el.classList.remove(...String(event.name || '').split(/\s+/).filter(Boolean));
    },

    progress(event) { const el = target(event); if (el) setProgress(el, event); },

    reload() { this._reloadPage('reload', ''); },

    close(event) { this._stop('server', event.reason == null ? '' : String(event.reason)); },

    error(event) {
      const error = new Error(event.message == null ? 'error' : String(event.message));
      error.event = event;
      this._report(error);
    },

    multi(event) {
      for (const inner of Array.isArray(event.events) ? event.events : []) {
        if (inner && typeof inner === 'object') this._applyOne(inner);
      }
    },

    join(event) {
      const list = presenceList(this);
      const principal = String(event.principal ?? '');
      if (!list || !principal) return;
      let item = presenceItem(list, principal);
      if (!item) {
        item = document.createElement('li');
        item.dataset.principal = principal;
        // Keep the list in the order of principal ids, like whoIsOnline().
        const next = Array.from(list.children).find((other) => (other.dataset.principal || '') > principal);
        list.insertBefore(item, next || null);
      }
      item.textContent = String(event.title ?? principal);
    },

    leave(event) {
      const list = presenceList(this);
      const item = list && presenceItem(list, String(event.principal ?? ''));
      if (item) item.remove();
    },
  };

  // ------------------------------------------------------------ bootstrap

  LivePageClient.compareEventIds = compareEventIds;
  LivePageClient.EventStreamParser = EventStreamParser;
  window.LivePageClient = LivePageClient;

  const script = document.currentScript || document.querySelector('script[data-client-url]');
  if (!script || !script.dataset.clientUrl || window.LivePage) return;

  // The server says how long it holds a long-poll and how often an idle
  // stream hears a heartbeat: the client's deadlines follow from them, so
  // the two cannot disagree. A server that offers no SSE (WSGI-HTTP) is
  // long-polled from the start.
  const seconds = (value) => (/^\d+(\.\d+)?$/.test(value || '') ? Number(value) : null);
  const refresh = seconds(script.dataset.refreshInterval);
  const heartbeat = seconds(script.dataset.heartbeatInterval);
  const offered = (script.dataset.transports || 'sse longpoll').split(/\s+/);
  const options = {
    uuid: script.dataset.uuid,
    clientURL: script.dataset.clientUrl,
    lastEventId: script.dataset.lastEventId,
    transport: offered.includes('sse') ? script.dataset.transport : 'longpoll',
    // No WebSocket offered (WSGI-HTTP): no shared connection either.
    liveURL: offered.includes('ws') ? script.dataset.liveUrl : null,
    // Who this page's principal is, signed by the server for a short
    // while: the connection's handshake need not ask the site.
    ticket: script.dataset.liveTicket || null,
    connection: script.dataset.connection,
    workerURL: script.src ? new URL('livepage-worker.js', script.src).href : null,
    presenceTarget: script.dataset.presenceTarget,
    allowAttributes: script.dataset.allowAttributes,
    allowSchemes: script.dataset.allowSchemes,
  };
  if (refresh !== null) options.pollTimeout = (refresh + 30) * 1000;
  if (heartbeat !== null) {
    options.streamIdleTimeout = (3 * heartbeat + 15) * 1000;
    options.heartbeatInterval = heartbeat * 1000;
  }
  const client = new LivePageClient(options);
  window.LivePage = client;

  // The original zorg.live page glue.
  window.sendLivePage = (handler, ...args) => client.send(handler, args);
  window.startClient = () => client.start();

  if (script.dataset.autostart !== 'false') {
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', () => client.start(), { once: true });
    } else {
      client.start();
    }
  }
})();
