"""LiveProtocol: one HTTP/1.1 connection of LiveServerHTTP.

httptools parses (its public parser object and callbacks); this module
owns the rest of the connection, with the limits a server holding
thousands of open pages needs:

- a connection limit (overall, per client address and network prefix:
  server/clients.py), answered 503 with Retry-After;
- a deadline for a request head (slowloris) and for an idle kept-alive
  connection;
- limits of the head's size and header count (431), and a budget of
  requests per second (server/budget.py): over it the connection is read
  more slowly, then answered 429 and closed;
- bounded buffers both ways: at most `PIPELINE` requests parsed ahead of
  the one being answered and `BODY_BUFFER` bytes of an unread body (then
  the socket is not read), and a writer that waits while the transport is
  over its high-water mark (`drained`);
- malformed HTTP answered 400 and closed.

Every request runs as a minimal ASGI cycle (`Cycle`) of LiveApp, one at a
time per connection, in order (pipelined requests wait their turn). Why
the ASGI app and not a second dispatcher here: LiveApp already routes the
live paths to the loop and the rest to the site's worker threads
(a2wsgi), with its body limit, proxy headers and guard; serving all of it
through one small cycle keeps one routing table, and the cycle is the
part of uvicorn whose cost we paid per delivery (its flow-control events
and per-cycle futures, a timer per request), now without any of it.

One kind of request skips the cycle: a kept-alive GET of a page's
long-poll URL (``.../@@client/<uuid>/output``) without a body, arriving
when nothing else is being answered on its connection, goes straight to
the app's `Polls` (server/polls.py), which answers it or holds it without
a task; the connection's one timer carries its deadline. Anything Polls
declines takes the cycle as before.

A response without Content-Length is sent chunked (HTTP/1.1), and the
transport is in the scope (``zorg.live.transport``): Fanout writes SSE
frames to idle streams as chunks of their own (server/fanout.py), between
the cycle's writes. A parked request learns of a disconnect from
``zorg.live.disconnected`` (callbacks), without a task waiting in
``receive()``.

``Upgrade: websocket`` hands the connection to livesocket.py's protocol
(websockets' sans-I/O ServerProtocol, public API only), which asks the
site who the user is and answers the handshake.

Nothing here touches another library's underscore names.
"""

import asyncio
import collections
import logging
import time
from email.utils import formatdate
from urllib.parse import unquote

import httptools

from zorg.live.interfaces import (
    BadRequest, Busy, HeadersTooLarge)
from zorg.live.core import delivery as rules
from zorg.live.core import wire
from zorg.live.server.budget import CLOSE, TooManyRequests, budgetFor
from zorg.live.server.livesocket import LiveSocketProtocol, addresses

log = logging.getLogger('zorg.live.server')

# Bytes of a connection parsed at a time (between them, its budget).
SLICE = 4096
# Requests parsed ahead of the one being answered (pipelining): then the
# socket is not read until the answers catch up.
PIPELINE = 16
# Bytes of a request body read ahead of the application: then the socket
# is not read until the application takes them.
BODY_BUFFER = 65536
# Bytes of a refused body read and thrown away before the connection is
# closed (at least 16 x max-body-size: a client that sent its body before
# reading the 413 gets it; one that sends on wastes no more).
DISCARD_LIMIT = 1 << 20
ASGI = {'version': '3.0', 'spec_version': '2.3'}
# Headers of a request with a body (or an interim answer): never a
# long-poll on the fast path.
BODY_HEADERS = frozenset((b'content-length', b'transfer-encoding', b'expect'))
DISCONNECT = {'type': 'http.disconnect'}


class HeadRefused(Exception):
    """Raised in a parser callback to stop the parser."""


class Cycle:
    """One request and its answer: LiveApp's ``receive`` and ``send``."""

    __slots__ = ('protocol', 'scope', 'keepAlive', 'body', 'more', 'waiter',
                 'status', 'headers', 'started', 'headWritten', 'chunked',
                 'complete', 'gone', 'task', 'expecting')

    def __init__(self, protocol, scope, keepAlive):
        self.protocol = protocol
        self.scope = scope
        self.keepAlive = keepAlive
        self.body = bytearray()
        self.more = True         # more of the request body may come
        self.waiter = None       # a receive() waiting for body or its end
        self.status = 200
        self.headers = None
        self.started = False     # http.response.start given
        self.headWritten = False
        self.chunked = False
        self.complete = False    # the whole answer written
        self.gone = False        # the client went away
        self.task = None
        self.expecting = False   # the client waits for 100 Continue

    def wake(self):
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self):
        while True:
            if self.gone or self.complete:
                return DISCONNECT
            # (body is None once all of it was given: what is left to
            # learn is the disconnect.)
            if self.body is not None and (self.body or not self.more):
                body = bytes(self.body)
                more = self.more
                self.body = bytearray() if more else None
                if more:
                    self.protocol.bodyTaken()
                return {'type': 'http.request', 'body': body,
                        'more_body': more}
            if self.expecting:
                # (Expect: 100-continue: the body comes once it is asked
                # for; a request answered without reading it never is.)
                self.expecting = False
                if not self.started:
                    self.protocol.transport.write(wire.HTTP_CONTINUE)
            self.waiter = self.protocol.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message):
        kind = message['type']
        if kind == 'http.response.start':
            if self.started:
                raise RuntimeError('the response was already started')
            self.started = True
            self.status = message['status']
            self.headers = message.get('headers', ())
            return
        if kind != 'http.response.body':
            raise RuntimeError('unexpected ASGI message %r' % kind)
        if not self.started or self.complete:
            raise RuntimeError('http.response.body out of turn')
        if self.gone:
            return
        protocol = self.protocol
        if protocol.drained is not None:
            await protocol.waitDrained()
            if self.gone:
                return
        body = message.get('body', b'')
        more = message.get('more_body', False)
        data = b''
        if not self.headWritten:
            self.headWritten = True
            data = self.head()
        if self.scope['method'] == 'HEAD':
            body = b''
        if self.chunked:
            if body:
                data += wire.chunk(body)
            if not more:
                data += wire.HTTP_LAST_CHUNK
        else:
            data += body
        if data:
            protocol.transport.write(data)
        if not more:
            self.complete = True
            self.wake()
            protocol.answered(self)

    def head(self):
        """The response head; decides the framing of the body."""
        length = chunked = dated = False
        for name, value in self.headers:
            name = name.lower()
            if name == b'content-length':
                length = True
            elif name == b'date':
                dated = True
            elif name == b'transfer-encoding':
                chunked = True
            elif name == b'connection' and value.lower() == b'close':
                self.keepAlive = False
        if self.expecting and self.more:
            self.keepAlive = False    # (see LiveProtocol.answered)
        extra = []
        bodyless = (self.status < 200 or self.status in (204, 304)
                    or self.scope['method'] == 'HEAD')
        if chunked:
            self.chunked = True
        elif not length and not bodyless:
            if self.scope['http_version'] == '1.1':
                self.chunked = True
                extra.append((b'transfer-encoding', b'chunked'))
            else:
                self.keepAlive = False    # the end of the body is the close
        if not self.keepAlive:
            extra.append((b'connection', b'close'))
        return wire.httpHead(self.status, self.headers, extra,
                             None if dated else httpDate())


_date = [0, b'']


def httpDate():
    """The Date header's value, made once a second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0] = now
        _date[1] = formatdate(now, usegmt=True).encode('ascii')
    return _date[1]


class LiveProtocol(asyncio.Protocol):
    """One connection of LiveServerHTTP (see the module's docstring)."""

    __slots__ = (
        'listener', 'app', 'settings', 'loop', 'transport', 'parser',
        'client', 'server', 'scheme', 'url', 'headers', 'parsing', 'cycle',
        'pipeline', 'timer', 'deadline', 'inHead', 'headBytes', 'headCount',
        'headSize', 'headError', 'budget', 'resume', 'held', 'drained', 'reading',
        'ignore', 'upgrade', 'discarded', 'poll', '__weakref__')

    def __init__(self, listener):
        self.listener = listener
        self.app = listener.app
        self.settings = listener.settings
        self.loop = listener.loop
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b''
        self.headers = None
        self.parsing = None       # the cycle whose body is arriving
        self.cycle = None         # the cycle being answered
        self.pipeline = collections.deque()   # parsed, waiting their turn
        self.timer = None         # the timer of `deadline`
        self.deadline = None      # when a head or the next request is due
        self.inHead = False       # a request head is arriving
        self.headBytes = 0        # bytes received while in the head
        self.headCount = 0
        self.headSize = 0
        self.headError = None     # the LiveError that ends the connection
        self.budget = None
        self.resume = None        # the timer that reads on after a slowdown
        self.held = None          # bytes held unparsed while slowed
        self.drained = None       # a future while the transport is full
        self.reading = True
        self.ignore = False       # nothing more is parsed
        self.upgrade = None       # a WebSocket handshake, parsed
        self.discarded = 0
        self.poll = None          # a long-poll held on the fast path

    # -- asyncio ---------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        listener = self.listener
        listener.connections.add(self)
        self.client, self.server, self.scheme = addresses(transport)
        settings = self.settings
        app = self.app
        if len(listener.connections) > settings.max_connections:
            return self.refuseConnection(
                'connections', 'The server holds its maximum of %d '
                'connections' % settings.max_connections)
        peer = self.client
        why = app.clients.admit(transport, peer[0] if peer else None)
        if why is not None:
            return self.refuseConnection(
                why + '-connections', 'Your %s holds its maximum of %d '
                'connections to this server' % (
                    'address' if why == 'address' else 'network',
                    app.clients.perAddress if why == 'address'
                    else app.clients.perPrefix))
        if peer is None or peer[0] not in app.proxies:
            # (A proxy's kept-alive connection carries many clients'
            # requests: it limits them itself.)
            self.budget = budgetFor(settings, self.loop.time(), 'http')
        self.arm(settings.header_timeout)

    def refuseConnection(self, reason, message):
        settings = self.settings
        self.app.count(reason)
        self.ignore = True
        self.transport.write(wire.rawError(Busy(
            '%s; try again in %d seconds.' % (message, settings.retry_after),
            settings.retry_after)))
        self.transport.close()

    def connection_lost(self, exc):
        self.listener.connections.discard(self)
        self.app.clients.release(self.transport)
        self.ignore = True
        for timer in (self.timer, self.resume):
            if timer is not None:
                timer.cancel()
        self.timer = self.resume = None
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        for cycle in [self.cycle] + list(self.pipeline):
            if cycle is None:
                continue
            cycle.gone = True
            cycle.wake()
            for callback in cycle.scope['zorg.live.disconnected']:
                callback('disconnect')
        self.pipeline.clear()
        if self.poll is not None:
            self.poll.wake(rules.DISCONNECT)

    def pause_writing(self):
        if self.drained is None:
            self.drained = self.loop.create_future()

    def resume_writing(self):
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def waitDrained(self):
        """Until the transport takes writes again (or the connection is
        gone). LiveApp bounds the wait for the streams it writes (its
        send-timeout aborts a reader that takes nothing)."""
        while self.drained is not None:
            await asyncio.shield(self.drained)

    def pauseReading(self):
        if self.reading:
            self.reading = False
            self.transport.pause_reading()

    def resumeReading(self):
        if (not self.reading and self.held is None
                and not self.transport.is_closing()):
            self.reading = True
            self.transport.resume_reading()

    def arm(self, seconds):
        """A deadline `seconds` from now (a head to complete, a kept-alive
        connection to send its next request, a refused body to end). One
        timer per connection, moved lazily: a deadline set again before
        the timer fires costs no new timer (one per request would be a
        good share of a long-poll's cost)."""
        self.deadline = deadline = self.loop.time() + seconds
        self.timerBy(deadline)

    def timerBy(self, when):
        """The connection's one timer fires at `when` or earlier."""
        timer = self.timer
        if timer is not None and timer.when() > when:
            timer.cancel()      # (a shorter deadline than the last one)
            timer = None
        if timer is None:
            self.timer = self.loop.call_at(when, self.timeout)

    def timeout(self):
        self.timer = None
        poll = self.poll
        if poll is not None:
            # (A held long-poll's deadline shares the timer.)
            if self.loop.time() >= poll.deadline:
                poll.wake(rules.TIMEOUT)
            if self.poll is not None:
                self.timerBy(self.poll.deadline)
        deadline = self.deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:
            self.timerBy(deadline)
            return
        # No complete request head in time, or a kept-alive connection
        # that sent nothing more.
        if not self.transport.is_closing():
            log.debug('closing a connection that sent no request in time')
            self.transport.close()

    def shutdown(self):
        """The server stops: an idle connection closes now, a busy one
        after the answers to what it has sent so far."""
        if self.parsing is None:
            self.ignore = True   # (else once its body is in: not kept alive)
        if self.cycle is None and self.poll is None:
            self.transport.close()
        else:
            (self.pipeline[-1] if self.pipeline else self.cycle or self.poll
             ).keepAlive = False

    # -- reading ---------------------------------------------------------

    def data_received(self, data):
        if self.ignore:
            return
        if self.held is not None:
            # Slowed: kept unparsed until the budget allows.
            self.held += data
            self.pauseReading()
            return
        # A slice at a time, so that the budget is charged between slices
        # and one connection's pipelined flood is not parsed at once.
        for start in range(0, len(data), SLICE):
            if self.held is not None:
                self.held += data[start:]
                return
            if not self.parse(data[start:start + SLICE], data, start):
                return

    def parse(self, data, whole, start):
        """Feed `data` to the parser; False once nothing more of this
        connection is to be parsed (what arrives while slowed is held by
        data_received)."""
        if self.inHead:
            self.headBytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.ignore = True
            if self.upgrade is not None:
                rest = whole[start + upgrade.args[0]:]
                self.upgrade = (self.upgrade, rest)
                self.pauseReading()
                if self.cycle is None and self.poll is None:
                    self.handOver()
            elif (self.parsing is not None or self.pipeline or self.cycle
                  or self.poll):
                # Another upgrade (h2c...): answered as plain HTTP, and
                # the connection closes after it.
                for cycle in [self.cycle, self.poll] + list(self.pipeline):
                    if cycle is not None:
                        cycle.keepAlive = False
            return False
        except httptools.HttpParserError as e:
            if self.ignore and self.headError is None:
                return False    # bytes after a request that closes
            self.ignore = True
            if self.headError is None:
                self.headError = BadRequest('malformed HTTP request: %s'
                                            % (e,))
            self.pauseReading()
            broken, self.parsing = self.parsing, None
            if broken is not None:
                # Its body is malformed: the application learns that the
                # client went away, and the 400 is its answer.
                broken.gone = True
                broken.wake()
                if broken in self.pipeline:
                    self.pipeline.remove(broken)
                elif broken is self.cycle:
                    self.cycle = None
                    if broken.headWritten:
                        self.transport.close()    # half an answer out
                        return False
            if self.cycle is None and self.poll is None:
                self.refuse()
            return False
        if self.inHead and self.headBytes > (self.settings.max_header_size
                                             + 65536):
            # No end of the head after more than the limit: refused
            # before httptools buffers more of one endless header line.
            self.ignore = True
            self.refuseHead()
            if self.cycle is None and self.poll is None:
                self.refuse()
            return False
        return not self.ignore

    def refuseHead(self, count=False):
        settings = self.settings
        self.headError = HeadersTooLarge(
            'more than %d request headers (setting max-header-count)'
            % settings.max_header_count if count else
            'the request head is larger than %d bytes (setting '
            'max-header-size)' % settings.max_header_size)

    def refuse(self):
        """Answer the error that ends the connection, and close it."""
        transport = self.transport
        if not transport.is_closing():
            transport.write(wire.rawError(self.headError))
            transport.close()

    # httptools' callbacks

    def on_message_begin(self):
        self.charge()
        self.inHead = True
        self.headBytes = self.headSize = self.headCount = 0
        self.url = b''
        self.headers = []
        self.arm(self.settings.header_timeout)

    def on_url(self, url):
        self.url += url
        self.headSize += len(url)
        self.checkHead()

    def on_header(self, name, value):
        self.headCount += 1
        self.headSize += len(name) + len(value) + 4
        self.checkHead()
        self.headers.append((name.lower(), value))

    def checkHead(self):
        settings = self.settings
        if self.headCount > settings.max_header_count:
            self.refuseHead(count=True)
            raise HeadRefused()
        if self.headSize > settings.max_header_size:
            self.refuseHead()
            raise HeadRefused()

    def charge(self):
        """One more request: slowed (the rest held unparsed) while over
        budget, 429 and closed once over it for longer than
        budget-grace."""
        budget = self.budget
        if budget is None:
            return
        slowed = budget.slowed
        wait = budget.charge(1, 0, self.loop.time())
        app = self.app
        if wait == CLOSE:
            app.count('http-over-budget')
            settings = self.settings
            self.headError = TooManyRequests(
                'this connection sends more than %g requests a second '
                '(setting http-requests); wait %d seconds'
                % (settings.http_requests, settings.retry_after),
                settings.retry_after)
            raise HeadRefused()
        if wait > 0:
            if not slowed:
                app.count('http-slowed')
            if self.held is None:
                self.held = bytearray()
                self.pauseReading()
                self.resume = self.loop.call_later(wait, self.readOn)

    def readOn(self):
        self.resume = None
        held, self.held = bytes(self.held), None
        if self.transport.is_closing():
            return
        self.resumeReading()
        if held:
            self.data_received(held)

    def on_headers_complete(self):
        self.inHead = False
        self.headBytes = 0
        self.deadline = None
        parser = self.parser
        headers = self.headers
        self.headers = None
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            self.headError = BadRequest('malformed request target')
            raise HeadRefused()
        if parser.should_upgrade():
            for name, value in headers:
                if name == b'upgrade' and value.lower() == b'websocket':
                    self.upgrade = (url, headers)
                    return
        raw = url.path or b'/'
        path = raw.decode('utf-8', 'replace')
        if '%' in path:
            path = unquote(path)
        if (self.cycle is None and self.poll is None and not self.pipeline
                and self.pollDirect(parser, path, url, headers)):
            return
        scope = {
            'type': 'http', 'asgi': ASGI,
            'http_version': parser.get_http_version(),
            'server': self.server, 'client': self.client,
            'scheme': self.scheme,
            'method': parser.get_method().decode('ascii'),
            'root_path': '',
            'path': path,
            'raw_path': raw,
            'query_string': url.query or b'',
            'headers': headers,
            'zorg.live.transport': self.transport,
            'zorg.live.disconnected': [],
        }
        cycle = Cycle(self, scope, parser.should_keep_alive())
        self.parsing = cycle
        for name, value in headers:
            if name == b'expect' and value.lower() == b'100-continue':
                cycle.expecting = True
        if self.cycle is None and self.poll is None:
            self.start(cycle)
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= PIPELINE and self.reading:
                self.app.count('http-pipeline-full')
                self.pauseReading()

    def on_body(self, body):
        cycle = self.parsing
        if cycle is None:
            return
        if cycle.complete or cycle.gone:
            # Answered already (a body refused by its length): thrown
            # away, up to a bound.
            self.discarded += len(body)
            if self.discarded > max(DISCARD_LIMIT,
                                    16 * self.settings.max_body_size):
                self.ignore = True
                self.transport.close()
            return
        cycle.body += body
        cycle.wake()
        if len(cycle.body) > BODY_BUFFER:
            self.pauseReading()

    def on_message_complete(self):
        cycle, self.parsing = self.parsing, None
        if cycle is not None:
            if not cycle.keepAlive:
                self.ignore = True      # nothing after it is for us
            cycle.more = False
            cycle.wake()
            if cycle.complete:
                self.answered(cycle)

    def bodyTaken(self):
        if len(self.pipeline) < PIPELINE and not self.ignore:
            self.resumeReading()

    # -- answering -------------------------------------------------------

    def start(self, cycle):
        self.cycle = cycle
        scope = cycle.scope
        cycle.task = task = self.loop.create_task(
            self.app(scope, cycle.receive, cycle.send))
        task.add_done_callback(self.ended)

    def ended(self, task):
        """The application's task is done (usually after its answer)."""
        # (Only the cycle being answered runs; an earlier one whose task
        # outlived its answer is done with.)
        cycle = self.cycle
        if cycle is not None and cycle.task is not task:
            cycle = None
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error('error in a request', exc_info=error)
        if cycle is None or cycle.complete or cycle.gone:
            return
        if not cycle.started:
            cycle.started = True
            cycle.status = 500
            cycle.headers = wire.SERVER_ERROR_HEADERS
            cycle.keepAlive = False
            self.transport.write(cycle.head() + wire.SERVER_ERROR_BODY)
            cycle.complete = True
            self.answered(cycle)
        else:
            # Half an answer: the connection cannot carry another.
            log.error('the application ended without completing its '
                      'response to %s', cycle.scope['path'])
            self.transport.close()

    def answered(self, cycle):
        """`cycle`'s answer is written: the next request's turn."""
        if cycle is not self.cycle:
            return
        if cycle.more and cycle.expecting:
            # Answered without asking for the body (Expect: 100-continue):
            # the client need never send it, so nothing more can follow.
            cycle.keepAlive = False
            cycle.more = False
            self.ignore = True
        if cycle.more and not cycle.gone:
            # Its body is still arriving (answered before reading it, e.g.
            # 413): read and thrown away before the next request or the
            # close (closing with unread data would reset the connection,
            # and the client might never read its answer). At most
            # header-timeout for that.
            self.discarded = 0
            self.arm(self.settings.header_timeout)
            self.resumeReading()
            return
        self.cycle = None
        self.goOn(cycle.keepAlive)

    def goOn(self, keepAlive):
        """An answer is out: the next request's turn, or the close."""
        transport = self.transport
        if transport.is_closing():
            return
        if not keepAlive:
            transport.close()
            return
        if self.pipeline:
            self.start(self.pipeline.popleft())
            if not self.ignore:
                self.resumeReading()
            return
        if self.upgrade is not None and self.ignore:
            return self.handOver()
        if self.headError is not None:
            return self.refuse()
        if not self.inHead:
            self.arm(max(5, self.settings.header_timeout))
        if not self.ignore:
            self.resumeReading()

    # -- long-poll on the fast path (server/polls.py) ---------------------

    def pollDirect(self, parser, path, url, headers):
        """A kept-alive GET of a page's output URL without a body goes to
        the app's `Polls`, without an ASGI cycle; False when it takes the
        ordinary path (anything else, or Polls declines it)."""
        polls = getattr(self.app, 'polls', None)
        if (polls is None or not path.endswith('/output')
                or parser.get_method() != b'GET'
                or not parser.should_keep_alive()
                or parser.get_http_version() != '1.1'):
            return False
        uuid = polls.route(path)
        if uuid is None:
            return False
        for name, _value in headers:
            if name in BODY_HEADERS:
                return False
        if not polls.begin(self, uuid, url.query or b''):
            return False
        self.parsing = None
        return True

    def pollWaits(self, poll):
        """`poll` waits until its deadline (or a wake)."""
        self.timerBy(poll.deadline)

    def pollEnded(self, poll, data):
        """`poll` is answered with `data` (None: the client is gone)."""
        if self.poll is poll:
            self.poll = None
        if data is None:
            return
        transport = self.transport
        if not transport.is_closing():
            transport.write(data)
        self.goOn(poll.keepAlive)

    # -- the WebSocket upgrade ----------------------------------------------

    def handOver(self):
        """The connection becomes a WebSocket (livesocket.py)."""
        (url, headers), rest = self.upgrade
        self.upgrade = None
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.listener.connections.discard(self)
        transport = self.transport
        socket = LiveSocketProtocol(self.app, self.settings,
                                    self.listener.connections)
        transport.set_protocol(socket)
        socket.connection_made(transport)
        if not self.reading:
            transport.resume_reading()
        raw = url.path or b'/'
        socket.begin(unquote(raw.decode('utf-8', 'replace')),
                     url.query or b'', headers)
        if rest:
            socket.data_received(bytes(rest))
