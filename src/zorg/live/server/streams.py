"""The stream driver of LiveServerHTTP: a page's own SSE stream, and what
every stream of the loop shares (a parked page, waiting, sending).

Every stream runs the core's one stream loop (core/delivery.py's
`holdStream`); this module only says how it reads (the broker from memory,
else its executor), sends (the ASGI ``send`` with the send timeout) and
waits (parked with Fanout, which writes what comes next, or on a future
with a timer). A page attached to a shared connection runs the same loop
(server/shared.py), and is the same `Parked` thing with an owner.
"""

import asyncio
import logging
from urllib.parse import parse_qs

from zorg.live.core import delivery as rules
from zorg.live.core import wire
from zorg.live.interfaces import LiveError
from zorg.live.server.answers import respondError

log = logging.getLogger('zorg.live.server')


def resolve(future, reason):
    if not future.done():
        future.set_result(reason)


class Parked:
    """One page waiting in the loop: an output request, a page's SSE
    stream, or a page attached to a shared connection (its `owner`).

    `reason` records why it must stop waiting for good (disconnect, drain,
    superseded); a publish only resolves the current future (`poke`). A
    stream that `Fanout` serves also carries its client, position and
    transport. A page of a shared connection has no task while it waits:
    its owner (server/shared.py) is told of each wake and decides by
    STREAM_WAKE, as a stream's own loop does.
    """

    __slots__ = ('future', 'reason', 'client', 'cursor', 'transport',
                 'since', 'owner', 'number', 'encode', 'beats', 'task',
                 'url', 'ready', 'attached')

    def __init__(self, client=None, transport=None, owner=None,
                 number=None, url=None):
        self.future = None
        self.reason = None
        self.client = client
        self.cursor = None
        self.transport = transport
        self.since = 0.0     # when Fanout last wrote to it
        self.owner = owner   # the shared connection, if any
        self.number = number  # the page's number on that connection
        # The bytes Fanout writes for ``(group id, entries)``; None: the
        # SSE frames of this stream (a shared connection gives each page
        # number its own).
        self.encode = None if owner is None else owner.encoder(number)
        # Fanout writes this stream's heartbeats; a page on a shared
        # connection has none of its own (the connection has them).
        self.beats = owner is None
        self.task = None     # a shared page's task while it catches up
        self.url = url       # a shared page's client URL (its input path)
        self.ready = None    # future: the attach finished (True) or failed
        self.attached = False  # counted as a held page (holdStarted)

    def wake(self, reason):
        if self.reason is None or reason in (rules.DISCONNECT, rules.DRAIN):
            self.reason = reason
        self._tell(reason)

    def poke(self, reason=rules.PUBLISH):
        self._tell(reason)

    def _tell(self, reason):
        if self.owner is not None:
            self.owner.woken(self, reason)
        elif self.future is not None:
            resolve(self.future, reason)


async def sendBody(app, send, body, abort=None, more=True):
    """Send a chunk; a reader slower than send-timeout is dropped: its
    connection is aborted (the send then returns and the stream ends as
    for any client gone), else, without `abort`, the task cancelled."""
    timer = app.loop.call_later(app.settings.send_timeout,
                                abort or asyncio.current_task().cancel)
    try:
        await send({'type': 'http.response.body', 'body': body,
                    'more_body': more})
    finally:
        timer.cancel()


async def sleep(app, parked, group_id, timeout):
    """Wait for a publish to the group (None: only for a poke, as Fanout
    pushes instead), `timeout`, or a parked.wake()."""
    if parked.reason is not None:
        return parked.reason
    future = app.loop.create_future()
    parked.future = future
    if group_id is not None:
        waiting = app.waiters.setdefault(group_id, set())
        waiting.add(future)
    timer = app.loop.call_later(timeout, resolve, future, rules.TIMEOUT)
    try:
        reason = await future
    finally:
        timer.cancel()
        parked.future = None
        if group_id is not None:
            waiting.discard(future)
    return parked.reason or reason


def watchDisconnect(app, scope, receive, parked):
    """Have `parked` woken when its client goes away: by our protocol (no
    task), or else by a task waiting in receive(). Returns the task to
    cancel, if any."""
    callbacks = scope.get('zorg.live.disconnected')
    if callbacks is not None:
        callbacks.append(parked.wake)
        return None
    return app.loop.create_task(_watch(receive, parked))


async def _watch(receive, parked):
    while True:
        message = await receive()
        if message['type'] == 'http.disconnect':
            parked.wake(rules.DISCONNECT)
            return


def lastEventId(scope):
    """The Last-Event-ID header of an SSE request, else its lastEventId
    parameter (a page falling back from long-poll), else None."""
    for name, value in scope['headers']:
        if name == b'last-event-id':
            return value.decode('latin-1')
    query = parse_qs(scope['query_string'].decode('latin-1'))
    return query.get('lastEventId', [None])[0]


async def events(app, scope, receive, send, uuid):
    """A page's own SSE stream (``.../@@client/<uuid>/events``)."""
    manager = app.manager
    try:
        client, cursor = await app.step(manager.beginStream, uuid,
                                        lastEventId(scope))
    except LiveError as e:
        return await respondError(send, e)
    # LiveServerHTTP hands over the connection's transport: Fanout writes
    # to it directly (not for HEAD, which has no body), and a slow reader
    # is dropped with abort() (close() would keep the connection until the
    # reader took everything buffered for it).
    transport = scope.get('zorg.live.transport')
    abort = transport.abort if transport is not None else None
    if scope['method'] != 'GET':
        transport = None
    parked = app.park(uuid, client, transport)
    watcher = watchDisconnect(app, scope, receive, parked)
    group_id = client.group_id
    frames = app.frames.frames
    fanout = app.fanout
    manager.holdStarted(client)
    loop = rules.holdStream(cursor)
    # The driver is written out here rather than in helper coroutines:
    # every frame a waiting stream keeps alive is memory multiplied by the
    # number of open pages.
    try:
        await send({'type': 'http.response.start', 'status': 200,
                    'headers': wire.SSE_HEADERS})
        await sendBody(app, send, wire.SSE_PREAMBLE, abort)
        step = next(loop)
        while True:
            kind = step[0]
            result = None
            if kind == rules.READ:
                try:
                    result = await app.step(manager.collectEntries, client,
                                            step[1])
                except LiveError as e:
                    # The broker failed: the page reconnects (and learns
                    # of the failure from the new request's answer).
                    log.warning('ending an SSE stream: %s', e)
            elif kind == rules.SEND:
                await sendBody(app, send, frames(group_id, step[1]), abort)
            elif kind == rules.HEARTBEAT:
                client.touch()
                await sendBody(app, send, wire.SSE_HEARTBEAT, abort)
            else:
                # Parked: the loop holds only its position, and is not
                # kept while the stream waits (memory per open page).
                cursor = step[1]
                loop.close()
                loop = None
                if parked.reason is not None:
                    reason = parked.reason
                elif transport is not None:
                    # Idle: Fanout writes what comes next and the
                    # heartbeats; this task wakes for the end, or for what
                    # Fanout leaves to it (a poke).
                    fanout.park(parked, cursor)
                    parked.future = future = app.loop.create_future()
                    try:
                        reason = await future
                    finally:
                        parked.future = None
                        cursor = fanout.unpark(parked)
                    reason = parked.reason or reason
                else:
                    reason = await sleep(app, parked, group_id,
                                         client.heartbeatInterval)
                loop = rules.holdStream(cursor, reason)
                step = next(loop)
                continue
            step = loop.send(result)
    except StopIteration as stop:
        outcome, _cursor = stop.value
        if outcome != rules.STOP:     # RECONNECT, or FAILED: the same
            await sendBody(app, send, wire.SSE_RECONNECT, abort, more=False)
    finally:
        manager.holdEnded(client)
        if watcher is not None:
            watcher.cancel()
        app.unparkPage(uuid, parked)
