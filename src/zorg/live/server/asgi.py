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

This module is routing and lifecycle; the drivers of the core's loops are
server/longpoll.py and server/polls.py (`holdOutput`, as the threaded
driver runs it; polls.py is the fast path for plain long-polls, which
liveproto.py hands over without an ASGI cycle, and wake() pushes to) and
server/streams.py (`holdStream`, as the shared connections run it),
requests to the site are server/site.py's, and every byte comes from
core/wire.py.
"""

import asyncio
import collections
import functools
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import zope.component
from a2wsgi import WSGIMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from zorg.live.core import delivery as rules
from zorg.live.core.wire import (
    ALLOW_GET, ALLOW_POST, EMPTY_ANSWER, FrameCache, methodBody)
from zorg.live.interfaces import (
    BadRequest, BrokerUnavailable, ILivePageManager, LiveError,
    MethodNotAllowed)
from zorg.live.page.client import LivePageClient
from zorg.live.page.guard import headerGetter, refusal, siteApplication
from zorg.live.page.manager import WouldBlock
from zorg.live.page import strangers
from zorg.live.server import health, longpoll, site, streams
from zorg.live.server.answers import respond, respondError, tooLarge
from zorg.live.server.clients import Clients, TrustedProxies, trustedProxySpec
from zorg.live.server.fanout import Fanout
from zorg.live.server.polls import Polls
from zorg.live.server.progress import progressReceive
from zorg.live.server.sharedsse import sharedStream
from zorg.live.server.tickets import (
    offerTickets, principalByTicket, ticketsFor)

log = logging.getLogger('zorg.live.server')

LIVE_PATH = re.compile(r'/@@client/([A-Za-z0-9_-]{1,64})/(output|events|close)$')
SHARED_EVENTS = '/@@live/events'   # a browser's shared SSE stream
# Calls that may wait on the broker at once; more get 503 at once (a hung
# broker must not collect an unbounded queue of requests).
MAX_WAITING_IO = 1000


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
        # WebSocket handshakes and attaches received and how each was
        # answered (@@live-health's "websocket"): received minus answered
        # is what waits for an answer now.
        self.socketSteps = collections.Counter()
        self.loop = None
        self.waiters = {}     # group id -> set of futures
        self.parked = {}      # page id -> Parked
        self.frames = None    # FrameCache (set at startup)
        self.fanout = None    # the idle SSE streams (set at startup)
        # The long-polls held without a task (set at startup when the
        # broker answers from memory; liveproto.py hands them over).
        self.polls = None
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
        if not broker.blocking:
            self.polls = Polls(self, LIVE_PATH)
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
                          client=None, server=None, scheme='http',
                          extra=None):
        """``(status, body)`` of a request to the site (server/site.py)."""
        return await site.siteRequest(self.wsgi, method, path, headers, body,
                                      client, server, scheme, extra)

    async def principalOf(self, path, headers, client=None, server=None,
                          scheme='http', ticket=None):
        """Whom a connection belongs to: the principal of a valid
        connection `ticket`, checked here in the loop (server/tickets.py),
        else whom the site says its credentials belong to
        (server/site.py); with the headers its input requests carry on."""
        principal = principalByTicket(self.tickets, ticket, path, headers)
        if principal is not None:
            return principal, [(name, value) for name, value in headers
                               if name in site.KEEP]
        return await site.principalOf(self.wsgi, path, headers, client,
                                      server, scheme)

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
                streams.resolve(future, rules.PUBLISH)
            self.fanout.push(group_id)
            if self.polls is not None:
                self.polls.push(group_id)

    def park(self, uuid, client=None, transport=None):
        """A new `Parked` for page `uuid`, superseding whatever waited
        for it (and told to reconnect at once when the server drains)."""
        parked = streams.Parked(client, transport)
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
        (liveproto.py runs it as a task per request), so that a held stream
        keeps no frame of this dispatch alive (memory per open page)."""
        kind = scope['type']
        if kind == 'http':
            match = LIVE_PATH.search(scope['path'])
            if match is None:
                if scope['path'].endswith('/@@live-health'):
                    return health.respond(
                        self.manager, scope, send, self.probe,
                        (len(self.sockets), len(self.streams)),
                        self.counts(), dict(self.socketSteps))
                if scope['path'].endswith(SHARED_EVENTS):
                    return sharedStream(self, scope, receive, send)
                return self.passOn(scope, receive, send)
            uuid, step = match.groups()
            method = scope['method']
            if step == 'close':
                return self.close(scope, send, uuid)
            if method not in ('GET', 'HEAD'):
                return respond(send, 405, methodBody('GET', step), ALLOW_GET)
            if step == 'output':
                return longpoll.output(self, scope, receive, send, uuid)
            return streams.events(self, scope, receive, send, uuid)
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
                'use POST for close'), ALLOW_POST)
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
        await respond(send, 200, EMPTY_ANSWER)
