"""The WebSocket transport of LiveServerHTTP: ``<app URL>/@@live``.

LiveProtocol (server/liveproto.py) parses the request with httptools and
hands the connection over at ``Upgrade: websocket`` (`begin`). The
framing is the `websockets` library's sans-I/O ServerProtocol, through
its public API only; this module only moves bytes between it, the
transport and a SharedConnection (server/shared.py). No task waits per
connection: an idle connection is this protocol object, its
ServerProtocol and its transport.

The handshake is answered by a ServerProtocol given a head of the
handshake's own headers only (core/wire.py's `handshakeHead`: what
LiveProtocol parsed stays with us); the frames that follow go to a new
ServerProtocol made open, unless permessage-deflate was negotiated
(`handshake`).

The handshake is refused (403) for a page of another origin (cross-site
WebSocket hijacking) and authenticated like any site request: LiveApp asks
the site who the request's credentials belong to (``@@live`` in a worker
thread, page/views.py) and the connection belongs to that principal --
unless the URL carries a valid connection ticket (``?ticket=``, which the
page's render handed out: server/tickets.py), checked in the loop.

Heartbeats are pings from LiveApp's beat task; a peer that leaves a ping
unanswered for an interval (and a second) is dropped. Silence is counted
from the ping, not from what the server last heard: a server that did not
run for a while (a machine at full load, a pause) sent no pings meanwhile,
so its peers had no reason to speak, and they are not to blame for it.
Writes above the transport's high-water mark wait (`send`), at most
send-timeout, then the connection is aborted.

Fair shares of the loop: what arrives is parsed `SLICE` bytes and handled
`ROUND` messages at a time, the socket unread meanwhile, and the rest in a
later turn of the loop, so one peer's flood never holds the loop for more
than one round. Every frame is charged to the connection's budget
(server/budget.py: socket-messages, socket-bytes): over it the socket is
read only as fast as the budget refills, and a peer that stays over it
for budget-grace is closed with 1008 (policy violation).
"""

import asyncio
import collections
import logging

from websockets.exceptions import InvalidHandshake
from websockets.extensions.permessage_deflate import (
    ServerPerMessageDeflateFactory)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from zorg.live.interfaces import BadRequest, Busy, LiveError, TooLarge
from zorg.live.core import wire
from zorg.live.core.delivery import heartbeatDue
from zorg.live.core.connection import parseMessage
from zorg.live.page.guard import headerGetter
from zorg.live.server.budget import CLOSE, budgetFor
from zorg.live.server.shared import SharedConnection, encoders
from zorg.live.server.tickets import ticketOf

log = logging.getLogger('zorg.live.server')
# The library logs every connection opened and closed at INFO: thousands.
framing = logging.getLogger('zorg.live.server.websocket')
framing.setLevel(logging.WARNING)



def textFrame(text):
    """One unmasked text frame (server to client): the same bytes serve
    every connection."""
    return Frame(Opcode.TEXT, text.encode('utf-8')).serialize(mask=False)


PING = Frame(Opcode.PING, b'').serialize(mask=False)
# Inputs that may wait on one connection; answers it may leave unread.
MAX_QUEUED_INPUTS = 100
MAX_UNREAD = 1 << 20
CLOSE_TIMEOUT = 5.0    # seconds a peer may take to close after we did
# One round of reading: bytes given to the frame parser, messages handled.
SLICE = 16384
ROUND = 64
encoder = encoders(textFrame)


def addresses(transport):
    """``(client, server, scheme)`` of a connection (as an ASGI scope
    has them)."""
    return (transport.get_extra_info('peername'),
            transport.get_extra_info('sockname'),
            'https' if transport.get_extra_info('sslcontext') else 'http')


class SocketConnection(SharedConnection):
    """A shared connection over one WebSocket."""

    __slots__ = ('protocol', 'ownEncoder')

    def __init__(self, protocol, principal, headers):
        super().__init__(protocol.app, protocol.transport, principal,
                         headers, protocol.client, protocol.server,
                         protocol.scheme)
        self.protocol = protocol
        # Compressed, every frame is this connection's own.
        self.ownEncoder = (encoders(protocol.sendText)
                           if protocol.ws.extensions else None)

    def wrap(self, message):
        if self.protocol.ws.extensions:
            return self.protocol.sendText(message)
        return textFrame(message)

    def encoder(self, number):
        return (self.ownEncoder or encoder)(number)

    async def send(self, data):
        await self.protocol.write(data)

    def close(self):
        self.protocol.goAway(wire.RECONNECT_MESSAGE, CloseCode.SERVICE_RESTART,
                             'the server restarts; reconnect')


class LiveSocketProtocol(asyncio.Protocol):
    """One WebSocket of LiveServerHTTP (LiveProtocol hands it over)."""

    # Slots: thousands of these wait at once.
    __slots__ = ('app', 'settings', 'connections', 'transport',
                 'ws', 'connection', 'paused', 'pinged', 'lastSent',
                 'message', 'shaking', 'client', 'server', 'scheme',
                 'inbox', 'frames', 'budget', 'later', 'reading')

    def __init__(self, app, settings, connections):
        self.app = app
        self.settings = settings
        self.connections = connections
        self.transport = None
        self.ws = None
        self.connection = None     # SocketConnection once accepted
        self.paused = None         # a future while the transport is full
        self.pinged = None         # when the first unanswered ping went
        self.lastSent = 0.0
        self.message = None        # fragments of a message arriving
        self.shaking = False       # the handshake is being answered
        self.inbox = bytearray()   # bytes not parsed yet
        self.frames = None         # frames parsed, not handled yet
        self.budget = None         # budget.Budget once accepted
        self.later = None          # the next round, when one is due
        self.reading = True

    # -- asyncio ---------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(self)
        self.client, self.server, self.scheme = addresses(transport)
        settings = self.settings
        self.ws = ServerProtocol(
            # No context takeover: each message is compressed on its own,
            # so messages written by different tasks cannot be mixed up.
            extensions=([ServerPerMessageDeflateFactory(
                server_no_context_takeover=True)]
                        if settings.websocket_deflate else None),
            max_size=settings.max_message_size, logger=framing)
        self.lastSent = self.app.loop.time()

    def begin(self, path, query, headers):
        """The handshake request, parsed by LiveProtocol: `path`, its
        `query` string (bytes) and its `headers` ((lowercase name, value)
        bytes)."""
        self.app.socketSteps['handshakes'] += 1
        ws = self.ws
        ws.receive_data(wire.handshakeHead(headers))
        requests = ws.events_received()
        if ws.handshake_exc is not None or len(requests) != 1:
            self._refuse(400, BadRequest('not a WebSocket handshake: %s'
                                         % ws.handshake_exc))
            return
        self.shaking = True
        self.app.loop.create_task(
            self.handshake(path, query, headers, requests[0]))

    def data_received(self, data):
        self.pinged = None        # anything it sends answers our pings
        if self.connection is not None:
            self.inbox += data
            if self.later is None:
                self.round()
            return
        # What a client sends before it has our answer to the handshake
        # waits, unread and unparsed, for the connection's budget (else a
        # flood sent at once would be parsed in one go when the handshake
        # is answered).
        self.inbox += data
        if self.reading:
            self.reading = False
            self.transport.pause_reading()

    def round(self):
        """Handle at most ROUND messages of what arrived, within the
        budget; what is left waits for a later turn of the loop, the
        socket unread meanwhile (so TCP slows the peer down)."""
        self.later = None
        transport = self.transport
        if transport.is_closing() or self.budget.closed:
            return
        loop = self.app.loop
        ws, frames, budget = self.ws, self.frames, self.budget
        wait = 0.0
        handled = 0
        while handled < ROUND:
            if not frames:
                if not self.inbox:
                    break
                ws.receive_data(bytes(self.inbox[:SLICE]))
                del self.inbox[:SLICE]
                frames.extend(ws.events_received())
                continue
            frame = frames.popleft()
            slowed = budget.slowed
            wait = budget.charge(1, len(frame.data), loop.time())
            if wait == CLOSE:
                return self.overBudget()
            if wait and not slowed:
                self.app.count('socket-slowed')
            self.frameReceived(frame)
            handled += 1
            if wait:
                break
        self.flush()
        if frames or self.inbox or wait:
            # (Over budget with nothing left: still unread until it is
            # paid, so that a peer cannot keep just over its rate.)
            if self.reading:
                self.reading = False
                transport.pause_reading()
            self.later = (loop.call_later(wait, self.round) if wait
                          else loop.call_soon(self.round))
        elif not self.reading and not transport.is_closing():
            self.reading = True
            transport.resume_reading()

    def overBudget(self):
        """Over budget for longer than budget-grace: 1008, and nothing
        more is read."""
        settings = self.settings
        self.app.count('socket-over-budget')
        log.info('closing a WebSocket over its budget (%g messages, %d '
                 'bytes a second)', settings.socket_messages,
                 settings.socket_bytes)
        self.frames.clear()
        self.inbox.clear()
        if self.reading:
            self.reading = False
            self.transport.pause_reading()
        self.ws.fail(CloseCode.POLICY_VIOLATION,
                     'more than %g messages or %d bytes a second (settings '
                     'socket-messages, socket-bytes)'
                     % (settings.socket_messages, settings.socket_bytes))
        self.flush()
        if not self.transport.is_closing():
            # No reading any more: the peer has our close frame; the
            # connection goes after the close timeout at the latest.
            self.app.loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def connection_lost(self, exc):
        self.connections.discard(self)
        self.app.clients.release(self.transport)
        if self.later is not None:
            self.later.cancel()
            self.later = None
        if self.connection is not None:
            self.app.sockets.discard(self)
            self.connection.lost()
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def pause_writing(self):
        if self.paused is None or self.paused.done():
            self.paused = self.app.loop.create_future()

    def resume_writing(self):
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def shutdown(self):
        """The server's graceful shutdown: tell the owner to reconnect."""
        if self.connection is not None:
            self.connection.drain()
        else:
            self.transport.close()

    # -- the handshake ---------------------------------------------------

    async def handshake(self, path, query, headers, request):
        app = self.app
        try:
            if not path.endswith('/@@live'):
                error = LiveError('no WebSocket here: the live connection '
                                  'of a site is <app URL>/@@live')
                error.status, error.code = 404, 'not-found'
                raise error
            error = app.crossSite(headerGetter(headers), app.proxies.client(
                self.client, headers, self.scheme)[1])
            if error is not None:
                raise error
            principal, kept = await app.principalOf(
                path, headers, self.client, self.server, self.scheme,
                ticketOf(query))
        except LiveError as e:
            return self._refuse(e.status, e)
        except InvalidHandshake as e:
            return self._refuse(400, BadRequest(str(e)))
        if self.transport.is_closing():
            app.socketSteps['handshakes-gone'] += 1
            return
        response = self.ws.accept(request)
        self.ws.send_response(response)
        if self.ws.handshake_exc is not None:
            self.flush()
            self.transport.close()
            return
        self.flush()
        app.socketSteps['opened'] += 1
        if not self.settings.websocket_deflate:
            # The frames of an open connection need nothing of the
            # handshake: a ServerProtocol made open (its documented
            # `state` argument) frees the one that answered it, whose
            # parser keeps the request for the connection's life (some
            # 2.5 KB per idle connection). With permessage-deflate the
            # negotiated extension lives in the first one: kept.
            self.ws = ServerProtocol(
                state=State.OPEN, max_size=self.settings.max_message_size,
                logger=framing)
        self.connection = SocketConnection(self, principal, kept)
        self.budget = budgetFor(self.settings, app.loop.time())
        self.frames = collections.deque()
        app.sockets.add(self)
        self.flush()
        if app.draining:
            self.connection.drain()
            return
        # What came meanwhile is handled as everything after it.
        self.round()

    def _refuse(self, status, error):
        self.app.socketSteps['handshakes-refused'] += 1
        response = self.ws.reject(status, wire.errorBody(error))
        del response.headers['Content-Type']
        response.headers['Content-Type'] = wire.JSON_TYPE
        self.ws.send_response(response)
        self.flush()
        self.transport.close()

    # -- frames ----------------------------------------------------------

    def frameReceived(self, frame):
        opcode = frame.opcode
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            self.message = (opcode, [frame.data])
        elif opcode == Opcode.CONT and self.message is not None:
            self.message[1].append(frame.data)
        else:
            return    # ping (answered by ws), pong, close (answered by ws)
        if not frame.fin:
            return
        opcode, parts = self.message
        self.message = None
        if opcode == Opcode.BINARY:
            self.ws.fail(CloseCode.UNSUPPORTED_DATA,
                         'send JSON text messages, not binary')
            return
        try:
            text = b''.join(parts).decode('utf-8')
        except UnicodeDecodeError:
            self.ws.fail(CloseCode.INVALID_DATA, 'a text message must be '
                         'UTF-8')
            return
        self.messageReceived(text)

    def messageReceived(self, text):
        connection = self.connection
        settings = self.settings
        try:
            kind, number, message = parseMessage(
                text, settings.max_connection_pages,
                settings.max_argument_depth)
        except LiveError as e:
            self.writeText(wire.errorMessage(e, getattr(e, 'page', None)))
            return
        if kind == 'ping':
            self.writeText(wire.PONG)
        elif kind == 'input':
            if len(text) > settings.max_input_size:
                self.writeText(wire.errorMessage(TooLarge(
                    'the input is larger than %d bytes (setting '
                    'max-input-size)' % settings.max_input_size), number,
                    message['id']))
            elif len(connection.queue) >= MAX_QUEUED_INPUTS:
                self.writeText(wire.errorMessage(Busy(
                    'more than %d inputs wait on this connection; send '
                    'again when they are answered' % MAX_QUEUED_INPUTS, 1),
                    number, message['id']))
            else:
                connection.input(number, message)
        else:
            self.app.loop.create_task(self._control(kind, number, message))

    async def _control(self, kind, number, message):
        connection = self.connection
        steps = self.app.socketSteps
        try:
            if kind == 'attach':
                steps['attaches'] += 1
                attached = await connection.attach(
                    number, message['uuid'], message.get('lastEventId'),
                    message.get('url'))
                # (Not attached: the connection went away meanwhile.)
                steps['attached' if attached else 'attaches-gone'] += 1
            else:
                await connection.detach(number)
        except LiveError as e:
            if kind == 'attach':
                steps['attaches-refused'] += 1
            await connection.refuse(e, number)

    # -- writing ---------------------------------------------------------

    def sendText(self, text):
        """`text` as this connection's next frame (its extensions
        applied): the bytes to write."""
        self.ws.send_text(text.encode('utf-8'))
        return b''.join(self.ws.data_to_send())

    def writeText(self, text):
        """Answer a message at once (pong, a refusal). A peer that sends
        and never reads would pile up answers: dropped past a bound."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_UNREAD:
            log.info('dropping a WebSocket that sends but does not read')
            self.app.count('socket-unread')
            transport.abort()
            return
        transport.write(self.connection.wrap(text))
        self.lastSent = self.app.loop.time()

    async def write(self, data):
        """Write `data` (whole frames); a reader that takes nothing for
        send-timeout seconds while the buffer is full is dropped."""
        if self.transport.is_closing():
            return
        if self.paused is not None and not self.paused.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.paused),
                                       self.settings.send_timeout)
            except asyncio.TimeoutError:
                log.info('dropping a WebSocket that read nothing for %gs',
                         self.settings.send_timeout)
                self.app.count('socket-unread')
                self.transport.abort()
                return
        if not self.transport.is_closing():
            self.transport.write(data)
            self.lastSent = self.app.loop.time()

    def flush(self):
        """Write what the ServerProtocol has to send (handshake, pongs,
        close frames), and close the TCP connection when it is done."""
        transport = self.transport
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif (self.ws.close_rcvd is None and transport.can_write_eof()
                    and not transport.is_closing()):
                # We closed first (a message over the limit, bad data):
                # closing the socket with the peer's data unread would
                # reset the connection before the peer read our close
                # frame. So half-close, let the peer close, and abort it
                # if it does not within the close timeout.
                transport.write_eof()
                self.app.loop.call_later(CLOSE_TIMEOUT, transport.abort)
                self.closing()
                return
            else:
                transport.close()     # the end of the close handshake
                return

    def closing(self):
        """We closed the connection: it carries nothing more (nothing may
        be written after our close frame and EOF), and its pages are
        free to attach elsewhere at once."""
        if self.connection is not None:
            self.app.sockets.discard(self)
            self.connection.lost()

    def eof_received(self):
        if self.inbox:
            self.ws.receive_data(bytes(self.inbox))
            self.inbox.clear()
        self.ws.receive_eof()
        self.flush()
        return False       # the transport closes itself

    def ping(self, now, interval):
        """The beat: a ping after `interval` of silence on our side; a
        peer that left a ping unanswered for `interval` + 1 seconds is
        gone. (Not: a peer we heard nothing from for two intervals. After
        a pause of this server longer than that, every healthy peer would
        be dropped at the first beat: no pings went out meanwhile, so no
        pongs came back.)"""
        pinged = self.pinged
        if pinged is not None and now - pinged > interval + 1:
            log.info('dropping a WebSocket that left a ping unanswered for '
                     '%ds', now - pinged)
            self.app.count('socket-silent')
            self.transport.abort()
            return
        if (heartbeatDue(self.lastSent, now, interval)
                and not self.transport.is_closing()):
            self.transport.write(PING)
            self.lastSent = now
            if pinged is None:
                self.pinged = now

    def goAway(self, message, code, reason):
        """Tell the owner `message`, close with `code`."""
        if self.transport.is_closing():
            return
        if message is not None:
            self.transport.write(self.connection.wrap(message))
        self.ws.send_close(code, reason)
        self.flush()
        self.transport.close()
