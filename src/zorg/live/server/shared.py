"""The asyncio driver of a shared connection (page/connection.py): many
pages of one browser over one WebSocket or one SSE stream.

An attached page costs no task while it waits: it is an `Attached` (a
`Parked` with its page number) that `Fanout` writes to like an idle SSE
stream, with bytes made once per page number and publish. A page gets a
task of its own only while it has something to catch up on (attaching, a
poke from Fanout that it cannot serve, a slow reader): `serve` reads what
the page missed, sends it and parks the page again.

A flavour of connection (server/livesocket.py's WebSocket, the shared SSE
stream below) says how a message goes over its transport: `wrap(text)`
(the bytes of one message on the task path), `send(data)` (the task path,
with the send timeout), `encoder(number)` (what Fanout writes for the
events of page `number`: one function per number, so that the bytes are
made once for every connection) and `close()` (end it, after telling the
owner to reconnect).
"""

import asyncio
import json
import logging

from zorg.live.interfaces import BadRequest, LiveError
from zorg.live.core import wire
from zorg.live.core.connection import checkAttach, inputPath
from zorg.live.core.delivery import DISCONNECT, DRAIN, PUBLISH, SUPERSEDED
from zorg.live.page.client import redact
from zorg.live.server.fanout import Parked

log = logging.getLogger('zorg.live.server')

# The handshake's headers that input requests carry on (credentials, the
# origin already checked, the language, a trusted proxy's).
KEEP = frozenset([b'cookie', b'authorization', b'host', b'origin',
                  b'accept-language', b'user-agent', b'x-forwarded-for',
                  b'x-forwarded-proto', b'x-forwarded-host'])


class Attached(Parked):
    """One page attached to a shared connection."""

    __slots__ = ('number', 'connection', 'encode', 'task', 'url', 'ready',
                 'attached')
    beats = False        # the connection has the heartbeats, not the page

    def __init__(self, connection, number, url):
        super().__init__(None, connection.transport)
        self.connection = connection
        self.number = number
        self.url = url
        self.encode = connection.encoder(number)
        self.task = None
        self.ready = None    # future: the attach finished (True) or failed
        self.attached = False  # counted as a held page (holdStarted)

    def poke(self, reason=PUBLISH):
        # Fanout could not write to it (not in memory, a slow reader):
        # the page's own task catches up.
        self.connection.catchUp(self)

    def wake(self, reason):
        if self.reason is None or reason in (DISCONNECT, DRAIN):
            self.reason = reason
        if reason == DRAIN:
            self.connection.drain()
        elif reason == SUPERSEDED:
            # Attached elsewhere (or closed): this attachment ends quietly.
            self.connection.forget(self)


class SharedConnection:
    """The pages of one connection and what is done with them."""

    __slots__ = ('app', 'transport', 'principal', 'headers', 'client',
                 'server', 'scheme', 'pages', 'inputs', 'queue', 'closed',
                 '__weakref__')

    def __init__(self, app, transport, principal, headers=(), client=None,
                 server=None, scheme='http'):
        self.app = app
        self.transport = transport
        self.principal = principal
        self.headers = list(headers)  # the handshake's, for input requests
        self.client, self.server, self.scheme = client, server, scheme
        self.pages = {}             # page number -> Attached
        self.inputs = None          # the input lane (a task) when busy
        self.queue = []             # inputs waiting for the lane
        self.closed = False

    # -- messages from the owner ---------------------------------------

    async def attach(self, number, uuid, lastEventId, url):
        if number in self.pages:
            raise BadRequest('page %d is attached already; detach it first '
                             'or use another number' % number)
        page = self.pages[number] = Attached(self, number, url)
        page.ready = self.app.loop.create_future()
        app, manager = self.app, self.app.manager
        try:
            # Who may attach is checked before anything of the page
            # changes (beginStream acknowledges up to lastEventId).
            client = await app.step(manager.getClient, uuid)
            checkAttach(self.principal, client)
            client, cursor = await app.step(manager.beginStream, uuid,
                                            lastEventId)
        except BaseException:
            del self.pages[number]
            page.ready.set_result(False)
            raise
        if self.closed or self.pages.get(number) is not page:
            page.ready.set_result(False)
            return
        page.client = client
        page.cursor = cursor
        app.parkPage(uuid, page)
        manager.holdStarted(client)
        page.attached = True
        page.ready.set_result(True)
        await self.send(self.wrap(wire.attachedMessage(number)))
        self.catchUp(page)

    async def detach(self, number):
        """The page closed: it leaves the connection and is unregistered."""
        page = self.pages.get(number)
        if page is None:
            raise BadRequest('page %d is not attached' % number)
        if not await page.ready:
            return
        self.forget(page)
        await self.app.io(self.app.manager.unregister, page.client.uuid)
        await self.send(self.wrap(wire.detachedMessage(number)))

    def input(self, number, message):
        """Queue an input; inputs run one after another, in order."""
        self.queue.append((number, message))
        if self.inputs is None:
            self.inputs = self.app.loop.create_task(self._runInputs())

    async def _runInputs(self):
        try:
            while self.queue and not self.closed:
                number, message = self.queue.pop(0)
                await self._input(number, message)
        finally:
            self.inputs = None

    async def _input(self, number, message):
        inputId = message['id']
        page = self.pages.get(number)
        if page is not None and not await page.ready:
            page = None
        if page is None:
            return await self.refuse(BadRequest(
                'page %d is not attached; attach it before sending input'
                % number), number, inputId)
        try:
            path = inputPath(page.url, page.client.uuid)
        except LiveError as e:
            return await self.refuse(e, number, inputId)
        # Exactly as the POST input path runs it: the site's publisher in a
        # worker thread, with this connection's credentials; the header
        # makes a repeat get the recorded answer (page/inputonce.py).
        body = json.dumps({'handler': message['handler'],
                                'arguments': message.get('arguments')})
        status, answer = await self.app.siteRequest(
            'POST', path, self.headers + [
                (b'content-type', b'application/json'),
                (b'x-live-input-id', inputId.encode('ascii'))],
            body.encode('utf-8'), self.client, self.server, self.scheme)
        if not answer.strip().startswith(b'{'):
            answer = wire.errorBody(LiveError(
                'the site answered %d without JSON' % status)).encode()
        if not self.closed:
            await self.send(self.wrap(wire.ackMessage(
                number, inputId, status, answer.decode('utf-8', 'replace'))))

    async def refuse(self, error, number=None, inputId=None):
        if not self.closed:
            await self.send(self.wrap(wire.errorMessage(error, number,
                                                        inputId)))

    # -- delivery ------------------------------------------------------

    def catchUp(self, page):
        """Have the page's task send what it has not had yet."""
        if page.task is None and not self.closed and page.reason is None:
            self.app.fanout.unpark(page)
            page.task = self.app.loop.create_task(self.serve(page))

    async def serve(self, page):
        app, manager = self.app, self.app.manager
        client = page.client
        group_id = client.group_id
        try:
            while page.reason is None and not self.closed:
                try:
                    entries, cursor = await app.step(
                        manager.collectEntries, client, page.cursor)
                except LiveError as e:
                    # The broker failed: the page is told, and leaves the
                    # connection (its owner attaches it again).
                    log.warning('detaching page %s: %s',
                                redact(client.uuid), e)
                    self.forget(page)
                    await self.refuse(e, page.number)
                    return
                if entries:
                    await self.send(self.wrap(wire.eventsMessage(
                        page.number, [text for _pos, text in entries])))
                    page.cursor = cursor
                    continue
                page.cursor = cursor
                # Published while this task read from the broker: read on.
                read = manager.broker.readLocal(group_id, cursor, 1)
                if read is not None and read[0]:
                    continue
                app.fanout.park(page, cursor)
                return
        finally:
            page.task = None

    def forget(self, page):
        """The page leaves this connection (detached, superseded, gone)."""
        if self.pages.get(page.number) is page:
            del self.pages[page.number]
        if page.attached:
            page.attached = False
            self.app.fanout.unpark(page)
            self.app.unparkPage(page.client.uuid, page)
            self.app.manager.holdEnded(page.client)
        if page.task is not None and page.task is not asyncio.current_task():
            page.task.cancel()

    def lost(self):
        """The connection is gone: its pages stay registered (their
        owner attaches them again, here or to another process) until they
        time out."""
        self.closed = True
        for page in list(self.pages.values()):
            page.reason = DISCONNECT
            self.forget(page)
        if self.inputs is not None:
            # An input that runs in a worker thread finishes there and is
            # recorded; its owner sends it again and gets the answer.
            self.inputs.cancel()

    def drain(self):
        """Shutting down: every page is told to reconnect, once."""
        if not self.closed:
            self.closed = True
            self.close()

    # -- the flavour ---------------------------------------------------

    def wrap(self, message):
        raise NotImplementedError

    async def send(self, data):
        raise NotImplementedError

    def encoder(self, number):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


def encoders(wrap):
    """page number -> Fanout's encode for a flavour whose message bytes
    are `wrap(text)`: one function per number, made once."""
    made = {}

    def encoder(number):
        encode = made.get(number)
        if encode is None:
            def encode(group_id, entries):
                return wrap(wire.eventsMessage(
                    number, [text for _pos, text in entries]))
            made[number] = encode
        return encode
    return encoder
