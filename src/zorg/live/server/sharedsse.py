"""The shared SSE stream: one stream per browser carrying all its pages,
for where a WebSocket does not get through (a proxy without Upgrade).

``GET <app URL>/@@live/events?page=N,<page id>,<last event id>&page=...``
attaches the listed pages (core/connection.py's rules, as for a
WebSocket) and sends the same messages as the WebSocket, each as one
``data:`` line. The owner opens a new stream when its set of pages
changes; input goes by POST. See PROTOCOL.txt.
"""

from urllib.parse import parse_qs

from zorg.live.interfaces import BadRequest, LiveError, MethodNotAllowed
from zorg.live.core import wire
from zorg.live.core.delivery import heartbeatDue
from zorg.live.core.connection import checkMessage
from zorg.live.page.guard import headerGetter
from zorg.live.server.answers import respondError
from zorg.live.server.fanout import BACKLOG, HEARTBEAT
from zorg.live.server.shared import SharedConnection, encoders
from zorg.live.server.streams import sendBody, watchDisconnect
from zorg.live.server.tickets import ticketOf

encoder = encoders(lambda text: wire.chunk(wire.sseData(text)))


class StreamConnection(SharedConnection):
    """A shared connection over one SSE stream (server to client only)."""

    __slots__ = ('asgiSend', 'abort', 'ended', 'lastSent')

    def __init__(self, app, scope, principal, asgiSend, headers):
        transport = scope.get('zorg.live.transport')
        super().__init__(app, transport, principal, headers,
                         scope.get('client'), scope.get('server'),
                         scope.get('scheme', 'http'))
        self.asgiSend = asgiSend
        self.abort = transport.abort if transport is not None else None
        self.ended = app.loop.create_future()
        self.lastSent = app.loop.time()

    def wrap(self, message):
        return wire.sseData(message)

    def encoder(self, number):
        return encoder(number)

    async def send(self, data):
        self.lastSent = self.app.loop.time()
        await sendBody(self.app, self.asgiSend, data, self.abort)

    def close(self):
        if not self.ended.done():
            self.ended.set_result('drain')

    def wake(self, reason):
        """The client went away (streams.watchDisconnect tells it so, as
        it tells a parked request)."""
        if not self.ended.done():
            self.ended.set_result('gone')

    def beat(self, now, interval):
        transport = self.transport
        if not heartbeatDue(self.lastSent, now, interval) or (
                transport.is_closing()):
            return
        if transport.get_write_buffer_size() > BACKLOG:
            transport.abort()     # a reader that took nothing for so long
            return
        transport.write(HEARTBEAT)
        self.lastSent = now


def attachments(scope, maxPages):
    """The checked attach messages of the stream's ``page`` parameters."""
    query = parse_qs(scope['query_string'].decode('latin-1'),
                     keep_blank_values=True)
    pages = query.get('page', [])
    if not pages:
        raise BadRequest('name the pages to attach: ?page=N,<page id>,'
                         '<last event id>')
    if len(pages) > maxPages:
        raise BadRequest('a stream carries at most %d pages (setting '
                         'max-connection-pages)' % maxPages)
    found = []
    for value in pages:
        parts = value.split(',')
        if len(parts) != 3 or not parts[0].isdigit():
            raise BadRequest('page=%r is not N,<page id>,<last event id>'
                             % value[:80])
        message = {'type': 'attach', 'page': int(parts[0]),
                   'uuid': parts[1], 'lastEventId': parts[2] or None}
        checkMessage(message, maxPages)
        found.append(message)
    return found


async def sharedStream(app, scope, receive, send):
    try:
        if scope['method'] != 'GET':
            raise MethodNotAllowed('use GET for the shared stream')
        if scope.get('zorg.live.transport') is None:
            raise BadRequest('the shared stream needs LiveServerHTTP')
        error = app.crossSite(headerGetter(scope['headers']),
                              app.schemeOf(scope))
        if error is not None:
            raise error
        wanted = attachments(scope, app.settings.max_connection_pages)
        principal, kept = await app.principalOf(
            scope['path'][:-len('/events')], scope['headers'],
            scope.get('client'), scope.get('server'),
            scope.get('scheme', 'http'), ticketOf(scope['query_string']))
    except LiveError as e:
        return await respondError(send, e)
    connection = StreamConnection(app, scope, principal, send, kept)
    watcher = watchDisconnect(app, scope, receive, connection)
    app.streams.add(connection)
    try:
        await send({'type': 'http.response.start', 'status': 200,
                    'headers': wire.SSE_HEADERS})
        await connection.send(wire.SSE_PREAMBLE)
        if app.draining:
            connection.close()
        for message in wanted:
            try:
                await connection.attach(message['page'], message['uuid'],
                                        message['lastEventId'], None)
            except LiveError as e:
                await connection.refuse(e, message['page'])
        if await connection.ended == 'drain':
            await sendBody(app, send, connection.wrap(wire.RECONNECT_MESSAGE),
                           connection.abort, more=False)
    finally:
        app.streams.discard(connection)
        connection.lost()
        if watcher is not None:
            watcher.cancel()
