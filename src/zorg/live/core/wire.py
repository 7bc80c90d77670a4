"""The wire format: every byte zorg.live sends a page is made here.

Long-poll answers, SSE frames (events, the reconnect order, heartbeats,
the stream's preamble), the reload event of a page that cannot be
recovered, and error bodies. PROTOCOL.txt describes them and runs against
this module, so the protocol and the code cannot drift apart. Everything
here is a pure function of its arguments (no I/O, no state but the frame
cache, which is keyed by what makes a frame unique).

An event's JSON text is made once per publish (``event.encode``, by the
broker, with its id in it); the functions here only wrap it. Fast paths
(fan-out to thousands of streams) reuse these bytes rather than writing
their own.
"""

import json
from http import HTTPStatus

from zorg.live.core.events import Idle, encode

IDLE_JSON = encode(Idle())
RECONNECT_JSON = '{"event":"reconnect"}'

# An SSE stream starts with the reconnection delay the browser should use
# and a comment, so that proxies and the client see a first byte at once.
SSE_PREAMBLE = b'retry: 2000\n: connected\n\n'
SSE_HEARTBEAT = b': heartbeat\n\n'
SSE_RECONNECT = b'data: %s\n\n' % RECONNECT_JSON.encode()


# -- HTTP heads (ASGI header lists: lower-case bytes) ---------------------

JSON_HEADERS = [(b'content-type', b'application/json'),
                (b'cache-control', b'no-cache, no-store')]
SSE_HEADERS = [(b'content-type', b'text/event-stream; charset=utf-8'),
               (b'cache-control', b'no-cache'),
               (b'x-accel-buffering', b'no')]
ALLOW_GET = [(b'allow', b'GET, HEAD')]
ALLOW_POST = [(b'allow', b'POST')]


HEAD_END = b'\r\n\r\n'    # where an HTTP request's head ends


def contentLength(length):
    return (b'content-length', b'%d' % length)


def jsonHeaders(length, extra=()):
    """The head of a JSON answer of `length` bytes (+ `extra` headers)."""
    return JSON_HEADERS + [contentLength(length)] + list(extra)


def inputHeaders(inputId):
    """The head of an input request that a shared connection makes to the
    site for its page (PROTOCOL.txt: the POST input step)."""
    return [(b'content-type', b'application/json'),
            (b'x-live-input-id', inputId.encode('ascii'))]


# -- the same for zope.publisher's responses (str pairs) -------------------

JSON_TYPE = 'application/json'
JSON_HEAD = [('Content-Type', JSON_TYPE),
             ('Cache-Control', 'no-cache, no-store')]
# @@notify's answers (a service's, never cached anywhere).
NOTIFY_HEAD = [('Content-Type', JSON_TYPE), ('Cache-Control', 'no-store')]
# A rendered live page: its HTML holds its page id (the capability of the
# page) and its connection ticket, which no cache may keep or share.
LIVE_PAGE_HEAD = [('Cache-Control', 'private, no-store')]


def allow(*methods):
    """The Allow header of a 405 answer."""
    return [('Allow', ', '.join(methods))]


def unavailableHead(retryAfter):
    """A 503 JSON answer's head that says when to try again."""
    return [('Content-Type', JSON_TYPE), ('Retry-After', '%d' % retryAfter)]


def setHeaders(response, headers):
    """Set `headers` (str pairs) on a publisher's response."""
    for name, value in headers:
        response.setHeader(name, value)


# -- JSON answers ------------------------------------------------------------

EMPTY_ANSWER = '{}'             # a step that answers nothing (close)


def replies(texts):
    """The answer to an input: the events (their JSON texts) meant for the
    sender only."""
    return '{"events":[%s]}' % ','.join(texts)


NO_REPLIES = replies(())


def chunk(data):
    """`data` as one HTTP/1.1 chunk (the framing LiveServerHTTP gives a
    response without content-length, so that Fanout's writes continue
    it)."""
    return b'%x\r\n%s\r\n' % (len(data), data)


def methodBody(method, step):
    """The 405 body of a live step asked with the wrong method."""
    return json.dumps({'error': 'bad-request',
                       'message': 'use %s for %s' % (method, step)})


def answer(num, texts):
    """The JSON body of the answer to long-poll request `num`: the events'
    texts, or one idle event when there are none."""
    events = ','.join(texts) if texts else IDLE_JSON
    return '{"outputNum":%d,"events":[%s]}' % (num, events)


def reconnectAnswer(num):
    """The answer that tells a long-polling page to reconnect (the server
    is draining); it is never recorded as the page's pending answer."""
    return '{"outputNum":%d,"events":[%s]}' % (num, RECONNECT_JSON)


def reloadText(eventId):
    """The event that tells a page its history is lost (``recovered:
    false``): it must reload to show the current state."""
    return json.dumps({'id': eventId, 'event': 'reload', 'recovered': False},
                      separators=(',', ':'))


def errorBody(error):
    """The JSON body of a LiveError (or anything with ``asDict()``)."""
    return json.dumps(error.asDict())


REASONS = {403: 'Forbidden', 405: 'Method Not Allowed',
           413: 'Payload Too Large', 429: 'Too Many Requests',
           431: 'Request Header Fields Too Large',
           503: 'Service Unavailable'}


def errorHeaders(error):
    """The headers of an error answer: JSON, and Retry-After for one that
    says when to try again (Busy)."""
    headers = list(JSON_HEAD)
    retry = getattr(error, 'retryAfter', None)
    if retry is not None:
        headers.append(('Retry-After', '%d' % retry))
    return headers


def wsgiError(error, start_response):
    """Answer a WSGI request with `error` (a LiveError); returns the body
    iterable."""
    body = errorBody(error).encode('utf-8')
    start_response('%d %s' % (error.status, REASONS.get(error.status, 'Error')),
                   errorHeaders(error)
                   + [('Content-Length', '%d' % len(body))])
    return [body]


def rawError(error):
    """A whole HTTP/1.1 answer with `error`, closing the connection: for a
    request that the HTTP parser refused before any application saw it
    (its head too large)."""
    body = errorBody(error).encode('utf-8')
    head = ''.join('%s: %s\r\n' % h for h in errorHeaders(error))
    return (('HTTP/1.1 %d %s\r\n%scontent-length: %d\r\n'
             'connection: close\r\n\r\n')
            % (error.status, REASONS.get(error.status, 'Error'), head,
               len(body))).encode('latin-1') + body


def sseFrame(eventId, text):
    """One SSE event: its id line and its JSON text as the data line."""
    return b'id: %s\ndata: %s\n\n' % (eventId.encode('ascii'),
                                       text.encode('utf-8'))


class FrameCache:
    """SSE frames by (group, position), so that an event published to a
    group is framed once for all its streams.

    A position is unique only within its group's log (a Redis stream id is
    per stream: two groups can publish the same id in the same
    millisecond), so the group is part of the key. Bounded: cleared when it
    holds `size` frames (the frames are cheap to make again).
    """

    def __init__(self, formatPosition, size=20000):
        self.formatPosition = formatPosition
        self.size = size
        self._frames = {}

    def frame(self, group_id, position, text):
        key = (group_id, position)
        frame = self._frames.get(key)
        if frame is None:
            if len(self._frames) >= self.size:
                self._frames.clear()
            frame = self._frames[key] = sseFrame(
                self.formatPosition(position), text)
        return frame

    def frames(self, group_id, entries):
        """The SSE frames of ``(position, text)`` entries, joined."""
        frame = self.frame
        return b''.join(frame(group_id, pos, text) for pos, text in entries)

    def __len__(self):
        return len(self._frames)


# -- the shared connection (WebSocket, shared SSE) ---------------------------
# One JSON object per message, naming its page by the small number the
# connection's owner gave it when attaching. The bytes depend only on that
# number and the events, so one encoded message serves every connection
# whose page has the same number (server/fanout.py shares it).

PONG = '{"type":"pong"}'
RECONNECT_MESSAGE = '{"type":"reconnect"}'


def eventsMessage(page, texts):
    """The events (their JSON texts) for page number `page`."""
    return '{"type":"events","page":%d,"events":[%s]}' % (page,
                                                           ','.join(texts))


def attachedMessage(page):
    return '{"type":"attached","page":%d}' % page


def detachedMessage(page):
    return '{"type":"detached","page":%d}' % page


def ackMessage(page, inputId, status, body):
    """The answer to input `inputId`: its status and the JSON `body` the
    POST input path answers (the piggy-backed events, or the error)."""
    return '{"type":"ack","page":%d,"id":%s,"status":%d,"reply":%s}' % (
        page, json.dumps(inputId), status, body)


def errorMessage(error, page=None, inputId=None):
    """A refused message: the LiveError's code and message (and the page
    number, when the message named one; the input id of a refused input,
    so that the sender knows which of its inputs it was)."""
    message = {'type': 'error'}
    if page is not None:
        message['page'] = page
    if inputId is not None:
        message['id'] = inputId
    message['error'] = error.code
    message['message'] = str(error)
    return json.dumps(message, separators=(',', ':'))


def sseData(message):
    """A shared-connection message as one SSE frame (no id: the client
    keeps each page's last event id)."""
    return b'data: %s\n\n' % message.encode('utf-8')


# -- HTTP/1.1 framing of LiveServerHTTP's own protocol (server/liveproto.py)

HTTP_LAST_CHUNK = b'0\r\n\r\n'
HTTP_CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'
_STATUS_LINES = {}


def httpHead(status, headers, extra, date):
    """A response head: the status line, the application's `headers`,
    then `extra` (framing, ``connection: close``) and the Date (None:
    the application gave its own)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ''
        line = _STATUS_LINES[status] = (
            'HTTP/1.1 %d %s\r\n' % (status, phrase)).encode('latin-1')
    parts = [line]
    for name, value in headers:
        if b'\n' in value or b'\r' in value or b'\n' in name:
            raise ValueError('a line break in the response header %r'
                             % name)
        parts.append(b'%s: %s\r\n' % (name, value))
    for name, value in extra:
        parts.append(b'%s: %s\r\n' % (name, value))
    if date is not None:
        parts.append(b'date: %s\r\n' % date)
    parts.append(b'\r\n')
    return b''.join(parts)


def jsonResponse(status, body, date, close=False):
    """A whole JSON answer, head and `body` (`close`: the connection closes
    after it): what the long-poll fast path (server/polls.py) writes
    without an ASGI cycle, byte for byte what the cycle writes for the
    same answer."""
    data = body.encode('utf-8')
    return httpHead(status, jsonHeaders(len(data)),
                    CLOSE_HEADERS if close else (), date) + data


CLOSE_HEADERS = [(b'connection', b'close')]


# The answer to a request whose application failed before it answered.
SERVER_ERROR_BODY = b'Internal Server Error'
SERVER_ERROR_HEADERS = [(b'content-type', b'text/plain; charset=utf-8'),
                        (b'content-length', b'%d' % len(SERVER_ERROR_BODY))]

# What websockets' ServerProtocol.accept reads of a handshake request (the
# Origin is checked by LiveApp, against the site's own origin).
HANDSHAKE_HEADERS = (b'connection', b'upgrade', b'sec-websocket-key',
                     b'sec-websocket-version', b'sec-websocket-extensions',
                     b'sec-websocket-protocol')


def handshakeHead(headers):
    """The WebSocket handshake request given to the ServerProtocol: the
    handshake's own headers of `headers` ((lowercase name, value) bytes),
    under a path of ``/`` (the path and the rest stay with the server)."""
    lines = [b'GET / HTTP/1.1\r\n']
    for name, value in headers:
        if name in HANDSHAKE_HEADERS:
            lines.append(b'%s: %s\r\n' % (name, value))
    lines.append(b'\r\n')
    return b''.join(lines)
