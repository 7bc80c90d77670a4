"""LiveApp: the ASGI application of LiveServerHTTP.

Output requests (long-poll ``.../@@client/<uuid>/output``, SSE
``.../events``) and ``.../close`` are answered here, in the event loop: no
worker thread, no database connection. Every other request goes to the
site's WSGI application (zope.app.wsgi's publisher) in a bounded pool of
worker threads (a2wsgi).

Waking: the broker calls `_onPublish` once per publish, from whatever thread
published; that schedules one `_wake` in the loop (publishes that arrive
before it runs share it), which resolves the futures of the long-polls
waiting on those groups and has `Fanout` write the news to their idle SSE
streams. Nothing polls.

The loop never waits on the broker. The core's steps are called with
``local=True`` first (`step`): the memory broker, and the Redis broker's
cache of what its reader thread saw, answer from memory. A step that would
need a round trip raises WouldBlock before it changes anything and runs
again in a small executor of its own (`io`), as does everything that always
needs the broker (closing a page, the reaper, upload progress, the health
probe). A broker that hangs then delays only the requests that need it;
heartbeats, health and every page the cache serves keep going. A queue of
calls waiting on the broker is bounded (`MAX_WAITING_IO`): more get 503
broker-unavailable at once.

This module is the asyncio driver of the core (page/manager.py,
page/delivery.py): it runs the same long-poll loop (`holdOutput`) as the
threaded driver, and every byte it sends comes from page/wire.py.
"""

import asyncio
import collections
import functools
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import zope.component
from a2wsgi import WSGIMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from zorg.live.interfaces import (
    BadRequest, BrokerUnavailable, ILivePageManager, LiveError,
    MethodNotAllowed, TooLarge)
from zorg.live.page import delivery as rules
from zorg.live.page.client import LivePageClient
from zorg.live.page.guard import headerGetter, refusal, siteApplication
from zorg.live.page.manager import WouldBlock
from zorg.live.page.wire import (
    SSE_HEARTBEAT, SSE_PREAMBLE, SSE_RECONNECT, FrameCache, errorBody)
from zorg.live.page import strangers
from zorg.live.server import health
from zorg.live.server.clients import Clients, TrustedProxies, trustedProxySpec
from zorg.live.server.fanout import Fanout, Parked, resolve
from zorg.live.server.progress import progressReceive
from zorg.live.server.shared import KEEP
from zorg.live.server.sharedsse import sharedStream
from zorg.live.server.tickets import (
    offerTickets, principalByTicket, ticketsFor)

log = logging.getLogger('zorg.live.server')

LIVE_PATH = re.compile(r'/@@client/([A-Za-z0-9_-]{1,64})/(output|events|close)$')
SHARED_EVENTS = '/@@live/events'   # a browser's shared SSE stream
JSON_HEADERS = [(b'content-type', b'application/json'),
                (b'cache-control', b'no-cache, no-store')]
SSE_HEADERS = [(b'content-type', b'text/event-stream; charset=utf-8'),
               (b'cache-control', b'no-cache'),
               (b'x-accel-buffering', b'no')]
# Calls that may wait on the broker at once; more get 503 at once (a hung
# broker must not collect an unbounded queue of requests).
MAX_WAITING_IO = 1000


async def respond(send, status, body, extra=()):
    if isinstance(body, str):
        body = body.encode('utf-8')
    headers = JSON_HEADERS + [(b'content-length', b'%d' % len(body))]
    headers.extend(extra)
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body', 'body': body})


async def respondError(send, error, extra=()):
    await respond(send, error.status, errorBody(error), extra)


def tooLarge(limit):
    return TooLarge('the request body is larger than the limit of %d bytes '
                    '(setting max-body-size)' % limit)


def _replay(body, receive):
    """A receive that gives the already read `body` first."""
    first = [{'type': 'http.request', 'body': body, 'more_body': False}]

    async def replay():
        return first.pop() if first else await receive()
    return replay


class LiveApp:
    """ASGI app: live requests in the loop, the rest in worker threads."""

    def __init__(self, wsgi_app, settings, manager=None):
        self.settings = settings
        self._manager = manager
        # Connection tickets: the pages rendered here get one, and the
        # handshake of their browser's connection checks it in the loop
        # (server/tickets.py).
        self.tickets = ticketsFor(settings)
        wsgi_app = offerTickets(wsgi_app, self.tickets)
        # Each request of the site is marked with the broker's position
        # before the publisher opens the database (delivery.py, rule 10).
        # X-Forwarded-For/-Proto from a trusted proxy (uvicorn's rule and
        # its FORWARDED_ALLOW_IPS variable) for the site's requests.
        # Cross-site state changes and oversized input are refused first
        # (page/guard.py).
        self.wsgi = ProxyHeadersMiddleware(
            WSGIMiddleware(siteApplication(
                wsgi_app, lambda: self.manager, settings,
                ('ws', 'sse', 'longpoll')),
                workers=settings.threads),
            trusted_hosts=trustedProxySpec())
        self.crossSite = refusal(settings.trusted_origins)
        # Who asks (after a trusted proxy), and how many connections each
        # address and network prefix holds (server/clients.py).
        self.proxies = TrustedProxies(trustedProxySpec())
        self.clients = Clients.fromSettings(settings, self.proxies)
        # Connections slowed, closed or refused, by reason (@@live-health).
        self.counted = collections.Counter()
        self.loop = None
        self.waiters = {}     # group id -> set of futures
        self.parked = {}      # page id -> Parked
        self.frames = None    # FrameCache (set at startup)
        self.fanout = None    # the idle SSE streams (set at startup)
        self.probe = None     # health.Probe (set at startup)
        self.draining = False
        self._tasks = []
        self._woken = set()   # groups published to since the last _wake
        self._wokenLock = threading.Lock()
        self._executor = None
        self.waitingIO = 0    # calls waiting on the broker now
        self.sockets = set()  # the open WebSockets (livesocket.py)
        self.streams = set()  # the shared SSE streams (StreamConnection)

    @property
    def manager(self):
        if self._manager is None:
            self._manager = zope.component.getUtility(ILivePageManager)
        return self._manager

    # -- lifecycle -------------------------------------------------------

    async def startup(self):
        if self.loop is not None:
            return
        self.loop = asyncio.get_running_loop()
        broker = self.manager.broker
        if broker.blocking:
            self._executor = ThreadPoolExecutor(
                self.settings.broker_threads,
                thread_name_prefix='zorg.live broker')
        self.frames = FrameCache(broker.formatPosition)
        self.fanout = Fanout(self.manager, self.frames.frames,
                             self.loop.time, self.loop.call_soon)
        self.probe = health.Probe(self.settings.health_timeout)
        broker.addListener(self._onPublish)
        self._tasks = [self.loop.create_task(coro) for coro in (
            self._reap(), self._beat(), self._probe())]

    async def shutdown(self):
        self.manager.broker.removeListener(self._onPublish)
        for task in self._tasks:
            task.cancel()
        if self._executor is not None:
            # Calls hung on the broker must not hold up the exit.
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the broker, off the loop ----------------------------------------

    async def io(self, func, *args):
        """`func(*args)`, which may wait on the broker, in the broker
        executor (the memory broker never waits: called here)."""
        if self._executor is None:
            return func(*args)
        if self.waitingIO >= MAX_WAITING_IO:
            raise BrokerUnavailable(
                'the broker is not answering: %d calls wait for it; try '
                'again shortly' % self.waitingIO)
        self.waitingIO += 1
        try:
            return await self.loop.run_in_executor(
                self._executor, functools.partial(func, *args))
        finally:
            self.waitingIO -= 1

    async def step(self, func, *args):
        """A step of the core: from memory when it can be (local=True),
        else in the broker executor."""
        try:
            return func(*args, local=True)
        except WouldBlock:
            return await self.io(func, *args)

    def drain(self):
        """Shutting down: every waiting page is told to reconnect now."""
        self.draining = True
        for parked in list(self.parked.values()):
            parked.wake(rules.DRAIN)
        for connection in list(self.sockets) + list(self.streams):
            getattr(connection, 'connection', connection).drain()

    # -- the site, asked from the loop ------------------------------------

    async def siteRequest(self, method, path, headers, body=b'',
                          client=None, server=None, scheme='http'):
        """``(status, body)`` of a request to the site (the publisher in
        a worker thread, through everything a browser's request passes:
        proxy headers, the cross-site guard, the mark)."""
        scope = {'type': 'http', 'asgi': {'version': '3.0'},
                 'http_version': '1.1', 'method': method, 'scheme': scheme,
                 'path': path, 'raw_path': path.encode('utf-8'),
                 'query_string': b'', 'root_path': '',
                 'headers': list(headers) + [
                     (b'content-length', b'%d' % len(body))],
                 'client': client, 'server': server}
        first = [{'type': 'http.request', 'body': body, 'more_body': False}]
        answer = {'status': 500, 'body': []}

        async def receive():
            if first:
                return first.pop()
            return {'type': 'http.disconnect'}

        async def send(message):
            if message['type'] == 'http.response.start':
                answer['status'] = message['status']
            elif message['type'] == 'http.response.body':
                answer['body'].append(message.get('body', b''))
        await self.wsgi(scope, receive, send)
        return answer['status'], b''.join(answer['body'])

    async def principalOf(self, path, headers, client=None, server=None,
                          scheme='http', ticket=None):
        """``(principal, kept headers)``: whom a valid connection
        `ticket` names (checked here, no thread), else whom the
        credentials in the request `headers` belong to, as the site's
        ``@@live`` view at `path` says (LiveError: the site's refusal,
        e.g. 401), and the headers that the connection's input requests
        carry on (KEEP)."""
        headers = [(name, value) for name, value in headers if name in KEEP]
        principal = principalByTicket(self.tickets, ticket, path, headers)
        if principal is not None:
            return principal, headers
        status, body = await self.siteRequest('GET', path, headers,
                                              client=client, server=server,
                                              scheme=scheme)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status == 200 and isinstance(answer, dict) and isinstance(
                answer.get('principal'), str):
            return answer['principal'], headers
        error = LiveError(answer.get('message') if isinstance(answer, dict)
                          and answer.get('message') else
                          'the site did not say who you are (%d from %s): '
                          'is zorg.live configured for it?' % (status, path))
        error.status = status if status >= 400 else 500
        error.code = (answer.get('error') if isinstance(answer, dict)
                      and answer.get('error') else 'not-authenticated')
        raise error

    def schemeOf(self, scope):
        """The site's scheme for request `scope`: its own, or a trusted
        proxy's X-Forwarded-Proto (the cross-site check compares it)."""
        return self.proxies.client(scope.get('client'), scope['headers'],
                                   scope.get('scheme', 'http'))[1]

    def count(self, reason):
        """A connection was slowed, closed or refused for `reason`."""
        self.counted[reason] += 1

    def counts(self):
        """Every reason counted in this process, for @@live-health."""
        found = dict(self.counted)
        found.update((k, v) for k, v in strangers.counted.items() if v)
        return found

    def parkPage(self, uuid, parked):
        """`parked` waits for page `uuid` (an output request, a stream, a
        page of a shared connection): it supersedes whatever waited for the
        same page id."""
        old = self.parked.pop(uuid, None)
        if old is not None and old is not parked:
            old.wake(rules.SUPERSEDED)
        self.parked[uuid] = parked

    async def _reap(self):
        interval = self.manager.reapInterval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.io(self.manager.reapExpired)
            except Exception:
                log.exception('dropping silent pages failed')

    async def _beat(self):
        """Heartbeats of the idle SSE streams, the shared ones and the
        WebSockets (pings), all from this one task (rather than a timer
        per stream). A failure is logged and the task goes on: it serves
        every stream."""
        interval = LivePageClient.heartbeatInterval
        tick = min(1.0, interval / 2)
        while True:
            await asyncio.sleep(tick)
            try:
                self.fanout.beat()
                now = self.loop.time()
                for socket in list(self.sockets):
                    socket.ping(now, interval)
                for stream in list(self.streams):
                    stream.beat(now, interval)
            except Exception:
                log.exception('writing SSE heartbeats failed')

    async def _probe(self):
        """The health probe: publish through the broker and see it come
        back to this process's listener, again and again (health.py)."""
        probe = self.probe
        while True:
            future = self.loop.create_future()
            self.waiters.setdefault(probe.group, set()).add(future)
            try:
                await asyncio.wait_for(self._probeOnce(future),
                                       probe.timeout)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                probe.failed(self.loop.time(), e)
            else:
                probe.passed(self.loop.time())
            finally:
                self.waiters.get(probe.group, set()).discard(future)
            await asyncio.sleep(probe.interval)

    async def _probeOnce(self, future):
        if self.probe.pending is None or self.probe.pending.done():
            # One publish at a time: a hung one is not piled upon.
            self.probe.pending = asyncio.ensure_future(
                self.io(self.probe.send, self.manager.broker))
        await asyncio.shield(self.probe.pending)
        await future

    def _onPublish(self, group_ids):
        with self._wokenLock:
            scheduled = bool(self._woken)
            self._woken.update(group_ids)
        if scheduled:
            return  # the _wake already on its way reads this publish too
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _wake(self):
        with self._wokenLock:
            group_ids, self._woken = self._woken, set()
        for group_id in group_ids:
            for future in self.waiters.pop(group_id, ()):
                resolve(future, rules.PUBLISH)
            self.fanout.push(group_id)

    async def _sleep(self, parked, group_id, timeout):
        """Wait for a publish to the group (None: only for a poke, as
        Fanout pushes instead), `timeout`, or a parked.wake()."""
        if parked.reason is not None:
            return parked.reason
        future = self.loop.create_future()
        parked.future = future
        if group_id is not None:
            waiting = self.waiters.setdefault(group_id, set())
            waiting.add(future)
        timer = self.loop.call_later(timeout, resolve, future, rules.TIMEOUT)
        try:
            reason = await future
        finally:
            timer.cancel()
            parked.future = None
            if group_id is not None:
                waiting.discard(future)
        return parked.reason or reason

    def _watchDisconnect(self, scope, receive, parked):
        """Have `parked` woken when its client goes away: by our protocol
        (no task), or else by a task waiting in receive(). Returns the
        task to cancel, if any."""
        callbacks = scope.get('zorg.live.disconnected')
        if callbacks is not None:
            callbacks.append(parked.wake)
            return None
        return self.loop.create_task(self._watch(receive, parked))

    async def _watch(self, receive, parked):
        """Tell a parked request that its client went away."""
        while True:
            message = await receive()
            if message['type'] == 'http.disconnect':
                parked.wake(rules.DISCONNECT)
                return

    def _park(self, uuid, client=None, transport=None):
        parked = Parked(client, transport)
        self.parkPage(uuid, parked)
        if self.draining:
            parked.wake(rules.DRAIN)
        return parked

    def unparkPage(self, uuid, parked):
        if self.parked.get(uuid) is parked:
            del self.parked[uuid]

    # -- ASGI ------------------------------------------------------------

    def __call__(self, scope, receive, send):
        """Dispatch: a plain function returning the handler's coroutine
        (uvicorn runs it as ``interface='asgi3'``), so that a held stream
        keeps no frame of this dispatch alive (memory per open page)."""
        kind = scope['type']
        if kind == 'http':
            match = LIVE_PATH.search(scope['path'])
            if match is None:
                if scope['path'].endswith('/@@live-health'):
                    return health.respond(
                        self.manager, scope, send, self.probe,
                        (len(self.sockets), len(self.streams)),
                        self.counts())
                if scope['path'].endswith(SHARED_EVENTS):
                    return sharedStream(self, scope, receive, send)
                return self.passOn(scope, receive, send)
            uuid, step = match.groups()
            method = scope['method']
            if step == 'close':
                return self.close(scope, send, uuid)
            if method not in ('GET', 'HEAD'):
                return respond(send, 405, json.dumps({
                    'error': 'bad-request',
                    'message': 'use GET for %s' % step}),
                    [(b'allow', b'GET, HEAD')])
            if step == 'output':
                return self.output(scope, receive, send, uuid)
            return self.events(scope, receive, send, uuid)
        if kind == 'lifespan':
            return self.lifespan(receive, send)
        raise RuntimeError('LiveApp does not serve %r' % kind)

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                await self.startup()
                await send({'type': 'lifespan.startup.complete'})
            elif message['type'] == 'lifespan.shutdown':
                await self.shutdown()
                await send({'type': 'lifespan.shutdown.complete'})
                return

    async def passOn(self, scope, receive, send):
        """Any other request: the Zope publisher in a worker thread."""
        limit = self.settings.max_body_size
        chunked = False
        for name, value in scope['headers']:
            if name == b'content-length':
                if not value.isdigit():
                    return await respondError(send, BadRequest(
                        'Content-Length is not a number'))
                if int(value) > limit:
                    return await respondError(send, tooLarge(limit))
            elif name == b'transfer-encoding':
                chunked = True
        if chunked:
            # No length up front: read the body here, up to the limit,
            # before a worker thread sees any of it.
            body = bytearray()
            while True:
                message = await receive()
                if message['type'] != 'http.request':
                    return  # the client went away
                body += message.get('body', b'')
                if len(body) > limit:
                    return await respondError(send, tooLarge(limit))
                if not message.get('more_body', False):
                    break
            receive = _replay(bytes(body), receive)
        receive = await progressReceive(receive, self, scope['headers'])
        await self.wsgi(scope, receive, send)

    async def close(self, scope, send, uuid):
        # Closing changes state: POST only (sendBeacon and fetch send it),
        # and never from a page of another origin (page/guard.py).
        if scope['method'] != 'POST':
            return await respondError(send, MethodNotAllowed(
                'use POST for close'), [(b'allow', b'POST')])
        error = self.crossSite(headerGetter(scope['headers']),
                               self.schemeOf(scope))
        if error is not None:
            return await respondError(send, error)
        try:
            await self.step(self.manager.getClient, uuid)
            await self.io(self.manager.unregister, uuid)
        except LiveError as e:
            return await respondError(send, e)
        parked = self.parked.get(uuid)
        if parked is not None:
            parked.wake(rules.SUPERSEDED)
        await respond(send, 200, '{}')

    # -- long-poll -------------------------------------------------------

    async def output(self, scope, receive, send, uuid):
        query = parse_qs(scope['query_string'].decode('latin-1'))
        num = query.get('outputNum', [''])[0]
        last = query.get('lastEventId', [None])[0]
        try:
            client, num, body, generation = await self.step(
                self.manager.beginOutput, uuid, num, last)
            if body is None:
                body = await self.hold(scope, client, num, generation,
                                       receive)
        except LiveError as e:
            return await respondError(send, e)
        if body is not None:
            await respond(send, 200, body)
        # else the client went away; nothing was recorded

    async def hold(self, scope, client, num, generation, receive):
        """Run the core's long-poll loop (delivery.holdOutput) in the
        loop: reads from memory or the executor, waits on a future."""
        manager = self.manager
        uuid = client.uuid
        parked = self._park(uuid)
        watcher = self._watchDisconnect(scope, receive, parked)
        clock = self.loop.time
        loop = rules.holdOutput(client, generation,
                                clock() + client.refreshInterval, clock)
        manager.holdStarted(client)
        try:
            step = next(loop)
            while True:
                if step[0] == rules.READ:
                    result = await self.step(manager.collect, client,
                                             step[1])
                else:
                    result = await self._sleep(parked, client.group_id,
                                               step[2])
                step = loop.send(result)
        except StopIteration as stop:
            outcome, texts, end = stop.value
        finally:
            manager.holdEnded(client)
            if watcher is not None:
                watcher.cancel()
            self.unparkPage(uuid, parked)
        return manager.endOutput(client, num, generation, outcome, texts,
                                 end)

    # -- SSE -------------------------------------------------------------

    async def events(self, scope, receive, send, uuid):
        last = None
        for name, value in scope['headers']:
            if name == b'last-event-id':
                last = value.decode('latin-1')
        if last is None:
            query = parse_qs(scope['query_string'].decode('latin-1'))
            last = query.get('lastEventId', [None])[0]
        try:
            client, cursor = await self.step(self.manager.beginStream, uuid,
                                             last)
        except LiveError as e:
            return await respondError(send, e)
        # LiveServerHTTP hands over the connection's transport: Fanout
        # writes to it directly (not for HEAD, which has no body), and a
        # slow reader is dropped with abort() (close() would keep the
        # connection until the reader took everything buffered for it).
        transport = scope.get('zorg.live.transport')
        abort = transport.abort if transport is not None else None
        if scope['method'] != 'GET':
            transport = None
        parked = self._park(uuid, client, transport)
        watcher = self._watchDisconnect(scope, receive, parked)
        manager = self.manager
        group_id = client.group_id
        frames = self.frames.frames
        manager.holdStarted(client)
        # The stream's loop is written out here rather than in helper
        # coroutines: every frame a waiting stream keeps alive is memory
        # multiplied by the number of open pages.
        try:
            await send({'type': 'http.response.start', 'status': 200,
                        'headers': SSE_HEADERS})
            await self._send(send, SSE_PREAMBLE, abort)
            while True:
                try:
                    entries, cursor = await self.step(
                        manager.collectEntries, client, cursor)
                except LiveError as e:
                    # The broker failed: the page reconnects (and learns
                    # of the failure from the new request's answer).
                    log.warning('ending an SSE stream: %s', e)
                    reason = rules.DRAIN
                else:
                    if entries:
                        await self._send(send, frames(group_id, entries),
                                         abort)
                        continue
                    if parked.reason is not None:
                        reason = parked.reason
                    elif transport is not None:
                        # Idle: Fanout writes what comes next and the
                        # heartbeats; this task wakes for the end, or for
                        # what Fanout leaves to it (a poke).
                        self.fanout.park(parked, cursor)
                        parked.future = future = self.loop.create_future()
                        try:
                            reason = await future
                        finally:
                            parked.future = None
                            cursor = self.fanout.unpark(parked)
                        reason = parked.reason or reason
                    else:
                        reason = await self._sleep(parked, group_id,
                                                   client.heartbeatInterval)
                action = rules.STREAM_WAKE[reason]
                if action == rules.STOP:
                    return
                if action == rules.RECONNECT:
                    await self._send(send, SSE_RECONNECT, abort, more=False)
                    return
                if action == rules.HEARTBEAT:
                    client.touch()
                    await self._send(send, SSE_HEARTBEAT, abort)
        finally:
            manager.holdEnded(client)
            if watcher is not None:
                watcher.cancel()
            self.unparkPage(uuid, parked)

    async def _send(self, send, body, abort=None, more=True):
        """Send a chunk; a reader slower than send-timeout is dropped: its
        connection is aborted (the send then returns and the stream ends as
        for any client gone), else, without `abort`, the task cancelled."""
        timer = self.loop.call_later(self.settings.send_timeout,
                                     abort or asyncio.current_task().cancel)
        try:
            await send({'type': 'http.response.body', 'body': body,
                        'more_body': more})
        finally:
            timer.cancel()
