"""Load generator: worker processes holding thousands of pages each.

One worker = one process running a uvloop event loop with raw asyncio
protocols (one per page), httptools for HTTP framing and an adapter
(adapters.py) for the system's protocol. Workers raise RLIMIT_NOFILE to the
hard limit (one process holds at most ~19,000 connections), so 15,000 pages
are spread over several workers. A server may have several endpoints
(processes); page i of the whole pool connects to endpoint i mod k, so the
pages are spread evenly over them. The coordinator (Pool) talks to each
worker over a multiprocessing Pipe, one request/answer at a time.

Receive times are taken with time.time() when the bytes arrive and turned
into latencies against the publisher's time.time() carried in the event.
"""
import array
import asyncio
import collections
import multiprocessing
import os
import random
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httptools

from adapters import ADAPTERS, record


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Page(asyncio.Protocol):
    """One page: one connection at a time, re-opened when reconnecting."""

    def __init__(self, worker, index, endpoint):
        self.w = worker
        self.index = index
        self.endpoint = endpoint             # index into worker.endpoints
        self.host, self.port = worker.endpoints[endpoint]
        self.hosthdr = '%s:%d' % (self.host, self.port)
        self.transport = None
        self.live = False
        self.dead = False
        self.seen = bytearray()
        self.nrecv = 0
        self.last_id = None
        self.sbuf = b''
        self.backoff = 0.0
        self.live_at = 0.0
        # adapter state
        self.lp_lastmod = self.lp_etag = None
        self.client_url = None
        self.num = 0
        self.zstate = None
        self.registrations = 0
        self.hold_after_render = False   # cmd_register: stop after render
        self.registered = False
        self.registered_at = 0.0

    # --- bookkeeping used by adapters --------------------------------------
    def deliver(self, seq, t):
        record(self.w, self, seq, t, self.now)

    def reset(self):
        self.nrecv = 0
        self.seen = bytearray()

    @property
    def nrecvs(self):
        return [self.nrecv]

    def mark_live(self):
        if not self.live:
            self.live = True
            self.live_at = time.time()
            self.backoff = 0.0
            self.w.nlive += 1

    def error(self, reason):
        self.w.errors[reason] += 1

    def fail(self, reason):
        self.error(reason)
        self.drop(reconnect=self.w.reconnect)

    def retry_later(self):
        self.drop(reconnect=True)

    def hold(self):
        """Registered (rendered), stream not opened yet: close the
        connection without giving the page up (cmd_stream opens it)."""
        self.hold_after_render = False
        self.registered = True
        self.registered_at = time.time()
        if self.transport is not None:
            t, self.transport = self.transport, None
            t.close()

    # --- connection ----------------------------------------------------------
    def prepare(self):
        """Before connecting: the first request."""
        self.request, self.streaming = self.w.adapter.first(self)

    async def connect(self, sem=None):
        if self.dead:       # a reconnect scheduled before the pages closed
            return
        self.prepare()
        try:
            if sem is not None:
                async with sem:
                    await self.w.loop.create_connection(
                        lambda: self, self.host, self.port)
            else:
                await self.w.loop.create_connection(
                    lambda: self, self.host, self.port)
        except OSError as e:
            self.error('connect-%s' % (e.errno or type(e).__name__))
            self.drop(reconnect=self.w.reconnect)

    def connection_made(self, transport):
        if self.dead:       # connected after the pages were closed
            transport.close()
            return
        self.transport = transport
        self.send(self.request, self.streaming)

    def send(self, request, streaming):
        self.request, self.streaming = request, streaming
        self.parser = httptools.HttpResponseParser(self)
        self.body = []
        self.headers = {}
        self.stream_body = False
        self.transport.write(request)
        if self.w.adapter.live_on_send and self.zstate != 'render' and \
                self.zstate != 'register':
            self.mark_live()

    def data_received(self, data):
        self.now = time.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            self.fail('http-parse')

    def on_header(self, name, value):
        if not self.stream_body:
            self.headers[name.lower()] = value

    def on_headers_complete(self):
        self.status = self.parser.get_status_code()
        if self.streaming and self.status == 200:
            self.stream_body = True
            self.sbuf = b''
            self.mark_live()

    def on_body(self, body):
        if self.stream_body:
            self.w.adapter.on_stream(self, body)
        else:
            self.body.append(body)

    def on_message_complete(self):
        if self.stream_body:        # the server ended the stream
            self.w.loop.call_soon(self.drop, self.w.reconnect)
            return
        keep = self.parser.should_keep_alive()
        nxt = self.w.adapter.on_response(
            self, self.status, self.headers, b''.join(self.body))
        if nxt is None or self.transport is None:
            return
        if keep:
            self.w.loop.call_soon(self._send_next, nxt)
        else:
            self.request, self.streaming = nxt
            self.w.loop.call_soon(self._reopen)

    def _send_next(self, nxt):
        if self.transport is not None:
            self.send(*nxt)

    def _reopen(self):
        if self.transport is not None:
            t, self.transport = self.transport, None
            self._set_down()
            t.close()
        self.w.loop.create_task(self._connect_keep())

    async def _connect_keep(self):
        try:
            await self.w.loop.create_connection(
                lambda: self, self.host, self.port)
        except OSError:
            self.drop(self.w.reconnect)

    def connection_lost(self, exc):
        if self.transport is None:
            return
        self.transport = None
        self.drop(self.w.reconnect)

    def _set_down(self):
        if self.live:
            self.live = False
            self.w.nlive -= 1

    def drop(self, reconnect):
        self._set_down()
        if self.transport is not None:
            t, self.transport = self.transport, None
            t.close()
        if reconnect and not self.w.closing:
            self.backoff = min(max(self.backoff * 2, self.w.retry_min),
                               self.w.retry_max)
            self.w.reconnects += 1
            self.w.loop.call_later(self.backoff * random.uniform(0.5, 1.0),
                                   lambda: self.w.loop.create_task(
                                       self.connect()))
        else:
            self.dead = True


class Worker:
    def __init__(self, conn):
        self.conn = conn
        self.loop = asyncio.get_event_loop()
        self.pages = []
        self.nlive = 0
        self.recs = {}
        self.dups = 0
        self.reconnects = 0
        self.errors = collections.Counter()
        self.reconnect = False
        self.closing = False
        self.retry_min, self.retry_max = 0.05, 0.25
        self.done = asyncio.Event()

    def read_commands(self):
        # a thread: the loop's add_reader would make the pipe non-blocking
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = ('exit',)
            self.loop.call_soon_threadsafe(
                lambda m=msg: self.loop.create_task(self.run(m)))
            if msg[0] == 'exit':
                return

    async def run(self, msg):
        cmd, args = msg[0], msg[1:]
        try:
            answer = await getattr(self, 'cmd_' + cmd)(*args)
        except Exception as e:          # report, don't hang the coordinator
            answer = {'error': repr(e)}
        self.conn.send(answer)

    async def cmd_config(self, adapter, endpoints, options):
        if adapter.endswith('-ws'):     # WebSocket pages: wsclient.WsConn
            from wsclient import ADAPTERS as WS
            self.adapter = WS[adapter](options)
        else:
            self.adapter = ADAPTERS[adapter](options)
        self.endpoints = [tuple(e) for e in endpoints]
        return {'pid': os.getpid(), 'nofile': raise_nofile()}

    def _new_pages(self, n, first):
        k = len(self.endpoints)
        # WebSocket adapters bring their own (wsclient.WsConn)
        cls = getattr(self.adapter, 'page_class', Page)
        new = [cls(self, len(self.pages) + i, (first + i) % k)
               for i in range(n)]
        self.pages.extend(new)
        return new

    async def _connect(self, pages, concurrency, timeout, done):
        """Connect pages (at most `concurrency` at once) and wait until
        done(page) holds for each of them, or the timeout."""
        sem = asyncio.Semaphore(concurrency)
        t0 = time.time()
        for page in pages:
            self.loop.create_task(page.connect(sem))
        deadline = t0 + timeout
        while time.time() < deadline:
            if all(done(p) or p.dead for p in pages):
                break
            await asyncio.sleep(0.02)
        return t0

    async def cmd_open(self, n, timeout, reconnect, first=0,
                       concurrency=256):
        """Open n pages, numbered first.. in the whole pool."""
        self.reconnect = reconnect
        self.closing = False
        new = self._new_pages(n, first)
        t0 = await self._connect(new, concurrency, timeout,
                                 lambda p: p.live)
        return self.status_dict(t0=t0, last_live=max(
            (p.live_at for p in new if p.live), default=0.0))

    async def cmd_register(self, n, timeout, first=0, concurrency=256):
        """Register n pages (render them: zorg.live only) without opening
        their streams; each render's connection is closed once answered.
        cmd_stream opens the streams later (capacity: the memory of a
        registered page and of an open stream, apart)."""
        self.reconnect = False
        self.closing = False
        new = self._new_pages(n, first)
        for page in new:
            page.hold_after_render = True
        t0 = await self._connect(new, concurrency, timeout,
                                 lambda p: p.registered)
        return self.status_dict(t0=t0, registered=sum(
            p.registered for p in new), last_registered=max(
            (p.registered_at for p in new), default=0.0))

    async def cmd_stream(self, timeout, concurrency=256):
        """Open the streams of the pages cmd_register registered."""
        todo = [p for p in self.pages
                if p.registered and not p.live and not p.dead]
        t0 = await self._connect(todo, concurrency, timeout,
                                 lambda p: p.live)
        return self.status_dict(t0=t0, last_live=max(
            (p.live_at for p in todo if p.live), default=0.0))

    def npages(self):
        """Pages held (a WebSocket connection may carry several)."""
        return sum(getattr(p, 'npages', 1) for p in self.pages)

    async def cmd_attach(self, k, timeout):
        """WebSocket connections (wsclient.WsConn): attach their pages
        up to the k-th and wait until every live one has them (or the
        timeout)."""
        conns = [p for p in self.pages if p.live and not p.dead]
        t0 = time.time()
        for c in conns:
            c.attach_upto(k)
        deadline = t0 + timeout
        while time.time() < deadline and not all(c.live or c.dead
                                                 for c in conns):
            await asyncio.sleep(0.02)
        return self.status_dict(t0=t0, last_live=max(
            (c.live_at for c in conns if c.live), default=0.0))

    def status_dict(self, **extra):
        by_endpoint = [0] * len(self.endpoints)
        for p in self.pages:
            if p.live:
                by_endpoint[p.endpoint] += 1
        d = {'pages': len(self.pages), 'live': self.nlive,
             'live_conns': sum(1 for p in self.pages if p.live),
             'live_by_endpoint': by_endpoint,
             'dead': sum(p.dead for p in self.pages),
             'errors': dict(self.errors), 'dups': self.dups,
             'reconnects': self.reconnects, 'cpu': time.process_time(),
             'registrations': sum(p.registrations for p in self.pages),
             'not_live': self.not_live()}
        d.update(extra)
        return d

    def not_live(self):
        """{step: pages} of the WebSocket pages not attached, by where
        they wait (wsclient.WsConn.waiting; 'dead:' gave up)."""
        steps = collections.Counter()
        for p in self.pages:
            waiting = getattr(p, 'waiting', None)
            if waiting is not None and not p.live:
                for step, count in waiting().items():
                    steps[('dead:' if p.dead else '') + step] += count
        return dict(steps)

    async def cmd_status(self):
        return self.status_dict()

    async def cmd_reset(self):
        self.recs.clear()
        self.dups = 0
        self.reconnects = 0
        self.errors.clear()
        for p in self.pages:
            p.reset()
        return self.status_dict()

    async def cmd_await(self, seq, timeout):
        """Wait until every live page has event seq (or timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.recs.get(seq)
            if got is not None and len(got) >= self.nlive:
                break
            await asyncio.sleep(0.005)
        return {'count': len((self.recs.get(seq) or ())), 'live': self.nlive,
                'cpu': time.process_time()}

    async def cmd_collect(self, lo, hi):
        """Latencies of events lo..hi (then forgotten) and page counts."""
        out = {}
        for seq in range(lo, hi + 1):
            recs = self.recs.pop(seq, None)
            out[seq] = recs.tobytes() if recs else b''
        return {'lat': out,
                'nrecv': [c for p in self.pages for c in p.nrecvs],
                'cpu': time.process_time(), 'live': self.nlive}

    async def cmd_wait_live(self, timeout, since):
        """Wait until every page is live again; when was the last one?"""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.nlive >= self.npages():
                break
            await asyncio.sleep(0.01)
        return self.status_dict(last_live=max(
            (p.live_at for p in self.pages if p.live_at >= since),
            default=0.0))

    async def cmd_close(self):
        self.closing = True
        for p in self.pages:
            p.drop(False)
        self.pages = []
        self.nlive = 0
        self.recs.clear()
        self.errors.clear()
        self.dups = self.reconnects = 0
        await asyncio.sleep(0.05)
        return {}

    async def cmd_exit(self):
        self.closing = True
        for p in self.pages:
            p.drop(False)
        self.loop.call_later(0.05, self.done.set)
        return {}


def worker_main(conn):
    raise_nofile()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main():
        w = Worker(conn)
        threading.Thread(target=w.read_commands, daemon=True).start()
        await w.done.wait()
    asyncio.run(main())


class Pool:
    """Coordinator side: W worker processes, pages spread evenly."""

    def __init__(self, nworkers):
        ctx = multiprocessing.get_context('spawn')
        self.conns, self.procs = [], []
        for _ in range(nworkers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(child,), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.lock = [asyncio.Lock() for _ in self.conns]
        self.executor = ThreadPoolExecutor(nworkers)

    async def call(self, i, *msg):
        async with self.lock[i]:
            self.conns[i].send(msg)
            answer = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.conns[i].recv)
        if isinstance(answer, dict) and 'error' in answer and \
                len(answer) == 1:
            raise RuntimeError('worker %d: %s' % (i, answer['error']))
        return answer

    async def all(self, *msg):
        return await asyncio.gather(*(self.call(i, *msg)
                                      for i in range(len(self.conns))))

    async def each(self, msgs):
        return await asyncio.gather(*(self.call(i, *m)
                                      for i, m in enumerate(msgs)))

    async def configure(self, adapter, endpoints, options=None):
        """endpoints: [(host, port), ...], the server's processes."""
        return await self.all('config', adapter, list(endpoints),
                              options or {})

    def shares(self, n):
        """[(pages, number of the first)] of each worker."""
        k = len(self.conns)
        shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
        return [(s, sum(shares[:i])) for i, s in enumerate(shares)]

    async def open(self, n, timeout=60.0, reconnect=False, concurrency=256):
        return await self.each([('open', s, timeout, reconnect, f,
                                 concurrency) for s, f in self.shares(n)])

    async def register(self, n, timeout=60.0, concurrency=256):
        return await self.each([('register', s, timeout, f, concurrency)
                                for s, f in self.shares(n)])

    async def live(self):
        return sum(s['live'] for s in await self.all('status'))

    async def close_pages(self):
        await self.all('close')

    async def shutdown(self):
        try:
            await asyncio.wait_for(self.all('exit'), 5)
        except Exception:
            pass
        for p in self.procs:
            p.join(2)
            if p.is_alive():
                p.kill()
        self.executor.shutdown(wait=False)


def latencies(answers, seq):
    out = array.array('d')
    for a in answers:
        b = a['lat'].get(seq)
        if b:
            out.frombytes(b)
    return out
