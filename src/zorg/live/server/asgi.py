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
"""

import asyncio
import json
import logging
import os
import re
import threading
from urllib.parse import parse_qs

import zope.component
from a2wsgi import WSGIMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from zorg.live.interfaces import (
    BadRequest, ILivePageManager, LiveError, TooLarge)
from zorg.live.page.client import LivePageClient
from zorg.live.server import health
from zorg.live.server.fanout import Fanout, Parked, resolve
from zorg.live.server.progress import progressReceive

log = logging.getLogger('zorg.live.server')

LIVE_PATH = re.compile(r'/@@client/([A-Za-z0-9_-]{1,64})/(output|events|close)$')
JSON_HEADERS = [(b'content-type', b'application/json'),
                (b'cache-control', b'no-cache, no-store')]
SSE_HEADERS = [(b'content-type', b'text/event-stream; charset=utf-8'),
               (b'cache-control', b'no-cache'),
               (b'x-accel-buffering', b'no')]
RECONNECT_JSON = '{"event":"reconnect"}'
FRAME_CACHE = 20000


async def respond(send, status, body, extra=()):
    if isinstance(body, str):
        body = body.encode('utf-8')
    headers = JSON_HEADERS + [(b'content-length', b'%d' % len(body))]
    headers.extend(extra)
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body', 'body': body})


async def respondError(send, error, extra=()):
    await respond(send, error.status, json.dumps(error.asDict()), extra)


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
        # X-Forwarded-For/-Proto from a trusted proxy (uvicorn's rule and
        # its FORWARDED_ALLOW_IPS variable) for the site's requests.
        self.wsgi = ProxyHeadersMiddleware(
            WSGIMiddleware(wsgi_app, workers=settings.threads),
            trusted_hosts=os.environ.get('FORWARDED_ALLOW_IPS', '127.0.0.1'))
        self._manager = manager
        self.loop = None
        self.waiters = {}     # group id -> set of futures
        self.parked = {}      # page id -> Parked
        self.frames = {}      # position -> SSE frame bytes
        self.fanout = None    # the idle SSE streams (set at startup)
        self.draining = False
        self._reaper = self._beater = None
        self._woken = set()   # groups published to since the last _wake
        self._wokenLock = threading.Lock()

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
        self.fanout = Fanout(self.manager, self.frame, self.loop.time,
                             self.loop.call_soon)
        self.manager.broker.addListener(self._onPublish)
        self._reaper = self.loop.create_task(self._reap())
        self._beater = self.loop.create_task(self._beat())

    async def shutdown(self):
        self.manager.broker.removeListener(self._onPublish)
        for task in (self._reaper, self._beater):
            if task is not None:
                task.cancel()

    def drain(self):
        """Shutting down: every waiting page is told to reconnect now."""
        self.draining = True
        for parked in list(self.parked.values()):
            parked.wake('drain')

    async def _reap(self):
        interval = self.manager.reapInterval
        while True:
            await asyncio.sleep(interval)
            try:
                self.manager.reapExpired()
            except Exception:
                log.exception('dropping silent pages failed')

    async def _beat(self):
        """Heartbeats of the idle SSE streams, all from this one task
        (rather than a timer per stream)."""
        tick = min(1.0, LivePageClient.heartbeatInterval / 2)
        while True:
            await asyncio.sleep(tick)
            self.fanout.beat()

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
                resolve(future, 'publish')
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
        timer = self.loop.call_later(timeout, resolve, future, 'timeout')
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
                parked.wake('disconnect')
                return

    def _park(self, uuid, client=None, transport=None):
        old = self.parked.pop(uuid, None)
        if old is not None:
            old.wake('superseded')
        parked = self.parked[uuid] = Parked(client, transport)
        if self.draining:
            parked.wake('drain')
        return parked

    def _unpark(self, uuid, parked):
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
                    return health.respond(self.manager, scope, send)
                return self.passOn(scope, receive, send)
            uuid, step = match.groups()
            method = scope['method']
            if step == 'close':
                return self.close(send, uuid)
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
        receive = progressReceive(receive, self.manager, scope['headers'])
        await self.wsgi(scope, receive, send)

    async def close(self, send, uuid):
        try:
            self.manager.getClient(uuid)
        except LiveError as e:
            return await respondError(send, e)
        self.manager.unregister(uuid)
        parked = self.parked.get(uuid)
        if parked is not None:
            parked.wake('superseded')
        await respond(send, 200, '{}')

    # -- long-poll -------------------------------------------------------

    async def output(self, scope, receive, send, uuid):
        query = parse_qs(scope['query_string'].decode('latin-1'))
        num = query.get('outputNum', [''])[0]
        last = query.get('lastEventId', [None])[0]
        try:
            client, num, body, generation = self.manager.beginOutput(
                uuid, num, last)
        except LiveError as e:
            return await respondError(send, e)
        if body is None:
            body = await self.hold(scope, client, num, generation,
                                   receive)
            if body is None:
                return  # the client went away; nothing was recorded
        await respond(send, 200, body)

    async def hold(self, scope, client, num, generation, receive):
        manager = self.manager
        uuid = client.uuid
        parked = self._park(uuid)
        watcher = self._watchDisconnect(scope, receive, parked)
        deadline = self.loop.time() + client.refreshInterval
        cursor = client.delivery.acked
        self.manager.holdStarted(client)
        try:
            while True:
                texts, cursor = manager.collect(client, cursor)
                if texts:
                    break
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    break
                reason = await self._sleep(parked, client.group_id,
                                           remaining)
                if reason == 'disconnect':
                    return None
                if reason == 'drain':
                    return '{"outputNum":%d,"events":[%s]}' % (
                        num, RECONNECT_JSON)
                if reason == 'superseded':
                    break
            return manager.finishOutput(client, num, generation, texts,
                                        cursor)
        finally:
            self.manager.holdEnded(client)
            if watcher is not None:
                watcher.cancel()
            self._unpark(uuid, parked)

    # -- SSE -------------------------------------------------------------

    def frame(self, position, text):
        frame = self.frames.get(position)
        if frame is None:
            if len(self.frames) >= FRAME_CACHE:
                self.frames.clear()
            frame = self.frames[position] = b'id: %s\ndata: %s\n\n' % (
                self.manager.broker.formatPosition(position).encode(),
                text.encode('utf-8'))
        return frame

    async def events(self, scope, receive, send, uuid):
        last = None
        for name, value in scope['headers']:
            if name == b'last-event-id':
                last = value.decode('latin-1')
        if last is None:
            query = parse_qs(scope['query_string'].decode('latin-1'))
            last = query.get('lastEventId', [None])[0]
        try:
            client, cursor = self.manager.beginStream(uuid, last)
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
        manager.holdStarted(client)
        # The stream's loop is written out here rather than in helper
        # coroutines: every frame a waiting stream keeps alive is memory
        # multiplied by the number of open pages.
        try:
            await send({'type': 'http.response.start', 'status': 200,
                        'headers': SSE_HEADERS})
            await self._send(send, b'retry: 2000\n: connected\n\n', abort)
            while True:
                entries, cursor = manager.collectEntries(client, cursor)
                if entries:
                    await self._send(send, b''.join(
                        self.frame(position, text)
                        for position, text in entries), abort)
                    continue
                if parked.reason is not None:
                    reason = parked.reason
                elif transport is not None:
                    # Idle: Fanout writes what comes next and the
                    # heartbeats; this task wakes for the end, or for what
                    # Fanout leaves to it (a poke).
                    self.fanout.park(parked, cursor)
                    parked.future = future = self.loop.create_future()
                    try:
                        reason = await future
                    finally:
                        parked.future = None
                        cursor = self.fanout.unpark(parked)
                    reason = parked.reason or reason
                else:
                    reason = await self._sleep(parked, client.group_id,
                                               client.heartbeatInterval)
                if reason == 'disconnect':
                    return
                if reason in ('drain', 'superseded'):
                    await self._send(send, b'data: %s\n\n'
                                     % RECONNECT_JSON.encode(), abort,
                                     more=False)
                    return
                if reason == 'timeout':
                    client.touch()
                    await self._send(send, b': heartbeat\n\n', abort)
        finally:
            manager.holdEnded(client)
            if watcher is not None:
                watcher.cancel()
            self._unpark(uuid, parked)

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

