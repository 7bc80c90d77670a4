"""The LiveServerHTTP server type: uvicorn (uvloop, httptools) + LiveApp.

uvicorn parses HTTP; this module adds what a server holding thousands of
open pages needs around it: a connection limit answered with 503 and
Retry-After, a deadline for request headers (slowloris), and a shutdown that
first tells every waiting page to reconnect.
"""

import asyncio
import contextlib
import logging

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from zope.interface import implementer, provider

from zorg.live.interfaces import (
    Busy, HeadersTooLarge, IServer, IServerType)
from zorg.live.core.wire import rawError
from zorg.live.server import listening
from zorg.live.server.asgi import LiveApp
from zorg.live.server.budget import CLOSE, TooManyRequests, budgetFor
from zorg.live.server.livesocket import LiveSocketProtocol

log = logging.getLogger('zorg.live.server')
# Bytes of a connection parsed at a time (between them, its budget).
SLICE = 4096


class SmallEvent(asyncio.Event):
    """asyncio.Event with its waiters in a list. uvicorn keeps two Events
    per connection, and an empty deque (asyncio's choice) takes some 600
    bytes: 12 MB for 10,000 open pages, for waiters that are nearly
    always none or one."""

    def __init__(self):
        super().__init__()
        self._waiters = []


class HeadRefused(Exception):
    """Raised in a parser callback to stop the parser (httptools turns it
    into an HttpParserError, on which uvicorn calls send_400_response)."""


class LiveHttpProtocol(HttpToolsProtocol):
    """httptools protocol with a connection limit (overall, per client
    address and per network prefix: server/clients.py), a header
    deadline, limits of the request head's size and header count (431)
    and a budget of requests per second (server/budget.py): over it the
    connection is read more slowly, then answered 429 and closed."""

    _headerTimer = None
    _inHead = True        # the current request's head is still arriving
    _headBytes = 0        # bytes received while in the head
    _headCount = 0        # headers of the current request
    _headSize = 0         # bytes of its request line and headers
    _headError = None     # HeadersTooLarge once the head was refused
    _budget = None        # requests per second (budget.Budget)
    _resume = None        # the timer that reads on after a slowdown
    _held = None          # bytes held unparsed while slowed

    def connection_made(self, transport):
        super().connection_made(transport)
        flow = getattr(self, 'flow', None)
        if isinstance(getattr(flow, '_is_writable_event', None),
                      asyncio.Event):
            event = flow._is_writable_event = SmallEvent()
            event.set()   # FlowControl starts writable
        settings = self.config.zorg_settings
        app = self.config.zorg_app
        if len(self.connections) > settings.max_connections:
            return self._refuseConnection(
                'connections', 'The server holds its maximum of %d '
                'connections' % settings.max_connections)
        peer = transport.get_extra_info('peername')
        why = app.clients.admit(transport, peer[0] if peer else None)
        if why is not None:
            return self._refuseConnection(
                why + '-connections', 'Your %s holds its maximum of %d '
                'connections to this server' % (
                    'address' if why == 'address' else 'network',
                    app.clients.perAddress if why == 'address'
                    else app.clients.perPrefix))
        if peer is None or peer[0] not in app.proxies:
            # (A proxy's kept-alive connection carries many clients'
            # requests: it limits them itself.)
            self._budget = budgetFor(settings, self.loop.time(), 'http')
        self._armHeaderTimer()

    def _refuseConnection(self, reason, message):
        settings = self.config.zorg_settings
        self.config.zorg_app.count(reason)
        self.transport.write(rawError(Busy(
            '%s; try again in %d seconds.' % (message, settings.retry_after),
            settings.retry_after)))
        self.transport.close()

    def _armHeaderTimer(self):
        if self._headerTimer is None:
            self._headerTimer = self.loop.call_later(
                self.config.zorg_settings.header_timeout,
                self._headerTimeout)

    # -- head limits -----------------------------------------------------

    def data_received(self, data):
        if self._headError is not None:
            return
        if self._held is not None:
            # Slowed: kept unparsed until the budget allows (uvicorn's
            # own flow control may have resumed reading meanwhile).
            self._held += data
            self.transport.pause_reading()
            return
        # A slice at a time, so that the budget is charged between slices
        # and one connection's pipelined flood is not parsed at once.
        for start in range(0, len(data), SLICE):
            if self._held is not None:
                self._held += data[start:]
                return
            self._parse(data[start:start + SLICE])
            if (self._headError is not None or self.transport.is_closing()
                    or self.transport.get_protocol() is not self):
                # (Upgraded to a WebSocket: as uvicorn does, what came
                # after the handshake in the same read is not its
                # business; a client sends nothing before the 101.)
                return

    def _parse(self, data):
        if self._inHead:
            self._headBytes += len(data)
        super().data_received(data)
        # Still no end of the head after more than the limit: refused
        # before httptools buffers more of one endless header line.
        if (self._headError is None and self._inHead
                and self._headBytes > self.config.zorg_settings
                .max_header_size + 65536):
            self._refuseHead()
            self.send_400_response('')

    def _refuseHead(self, count=False):
        settings = self.config.zorg_settings
        self._headError = HeadersTooLarge(
            'more than %d request headers (setting max-header-count)'
            % settings.max_header_count if count else
            'the request head is larger than %d bytes (setting '
            'max-header-size)' % settings.max_header_size)

    def on_url(self, url):
        self._headSize += len(url)
        self._checkHead()
        super().on_url(url)

    def on_header(self, name, value):
        self._headCount += 1
        self._headSize += len(name) + len(value) + 4
        self._checkHead()
        super().on_header(name, value)

    def _checkHead(self):
        settings = self.config.zorg_settings
        if self._headCount > settings.max_header_count:
            self._refuseHead(count=True)
            raise HeadRefused()
        if self._headSize > settings.max_header_size:
            self._refuseHead()
            raise HeadRefused()

    def on_message_begin(self):
        self._charge()
        # The next request on a kept-alive connection gets the same
        # deadline (uvicorn's keep-alive timer stops at its first byte).
        self._inHead = True
        self._headSize = self._headCount = 0
        super().on_message_begin()
        self._armHeaderTimer()
        # LiveApp writes SSE fan-out straight to the transport and drops
        # slow readers with its abort().
        self.scope['zorg.live.transport'] = self.transport
        # A parked request learns of its client's disconnect from here,
        # without a task per connection waiting in receive().
        self.scope['zorg.live.disconnected'] = []

    def _charge(self):
        """One more request: slowed (the rest held unparsed) while over
        budget, 429 and closed once over it for longer than
        budget-grace."""
        budget = self._budget
        if budget is None:
            return
        slowed = budget.slowed
        wait = budget.charge(1, 0, self.loop.time())
        app = self.config.zorg_app
        if wait == CLOSE:
            app.count('http-over-budget')
            settings = self.config.zorg_settings
            self._held = bytearray()      # nothing more is read
            self.transport.pause_reading()
            self._headError = TooManyRequests(
                'this connection sends more than %g requests a second '
                '(setting http-requests); wait %d seconds'
                % (settings.http_requests, settings.retry_after),
                settings.retry_after)
            raise HeadRefused()
        if wait > 0:
            if not slowed:
                app.count('http-slowed')
            if self._held is None:
                self._held = bytearray()
                self.transport.pause_reading()
                self._resume = self.loop.call_later(wait, self._readOn)

    def _readOn(self):
        self._resume = None
        held, self._held = bytes(self._held), None
        # (Upgraded to a WebSocket meanwhile: that protocol reads.)
        if (self.transport.is_closing()
                or self.transport.get_protocol() is not self):
            return
        self.transport.resume_reading()
        if held:
            self.data_received(held)

    def send_400_response(self, msg):
        if self._headError is None:
            return super().send_400_response(msg)
        if self.cycle is not None and not self.cycle.response_complete:
            return    # answered when the answers under way are done
        if not self.transport.is_closing():
            self.transport.write(rawError(self._headError))
            self.transport.close()

    def on_response_complete(self):
        super().on_response_complete()
        if (self._headError is not None and not self.pipeline
                and not self.transport.is_closing()):
            self.transport.write(rawError(self._headError))
            self.transport.close()

    def _headerTimeout(self):
        # No complete request head in time: a slow or stuck client.
        self._headerTimer = None
        if not self.transport.is_closing():
            log.info('closing a connection that sent no request headers '
                     'within header-timeout')
            self.transport.close()

    def on_headers_complete(self):
        self._inHead = False
        self._headBytes = 0
        if self._headerTimer is not None:
            self._headerTimer.cancel()
            self._headerTimer = None
        super().on_headers_complete()
        cycle = self.cycle
        # A fresh cycle's Event has no waiter yet (its task has not run):
        # swap in the small one.
        event = getattr(cycle, 'message_event', None)
        if (type(event) is asyncio.Event and not event.is_set()
                and not event._waiters):
            cycle.message_event = SmallEvent()

    def connection_lost(self, exc):
        self.config.zorg_app.clients.release(self.transport)
        if self._resume is not None:
            self._resume.cancel()
        if self._headerTimer is not None:
            self._headerTimer.cancel()
        scope = self.scope
        super().connection_lost(exc)
        if scope is not None:
            for callback in scope.get('zorg.live.disconnected', ()):
                callback('disconnect')


class LiveUvicornServer(uvicorn.Server):
    """uvicorn.Server whose signals are handled by our runner (several
    servers share one process) and which drains waiting pages first."""

    def __init__(self, config, app):
        super().__init__(config)
        self.liveApp = app

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    async def shutdown(self, sockets=None):
        self.liveApp.drain()
        await super().shutdown(sockets)


@implementer(IServer)
class LiveServer:
    """One LiveServerHTTP listening socket with its LiveApp."""

    typeName = 'LiveServerHTTP'

    def __init__(self, name, application, host, port, settings):
        self.name = name
        self.settings = settings
        self.app = LiveApp(application, settings)
        self.socket = listening.bind(host or '0.0.0.0', port)
        self.host, self.port = self.socket.getsockname()[:2]
        # interface='asgi3': LiveApp's __call__ is a plain function that
        # returns a coroutine. Proxy headers are applied by LiveApp to the
        # requests that go to the site only (a middleware frame less for
        # every open page).
        config = uvicorn.Config(
            self.app, http=LiveHttpProtocol, ws=LiveSocketProtocol,
            lifespan='on',
            interface='asgi3', proxy_headers=False,
            log_level='warning', access_log=False, server_header=False,
            timeout_keep_alive=max(5, int(settings.header_timeout)),
            timeout_graceful_shutdown=int(settings.graceful_timeout),
            backlog=4096)
        config.zorg_settings = settings
        config.zorg_app = self.app
        self.server = LiveUvicornServer(config, self.app)

    async def serve(self):
        log.warning('%s %s listening on http://%s:%d', self.typeName,
                    self.name, self.host, self.port)
        await self.server.serve(sockets=[self.socket])

    def stop(self):
        self.server.should_exit = True


@provider(IServerType)
def liveServerType(name, application, host, port, settings):
    """LiveServerHTTP: waits in the event loop, pages in worker threads."""
    return LiveServer(name, application, host, port, settings)
