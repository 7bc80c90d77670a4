"""The asyncio driver of a shared connection (core/connection.py): many
pages of one browser over one WebSocket or one SSE stream.

An attached page costs no task while it waits: it is a `Parked` (with
this connection as its owner and its page number) that `Fanout` writes to
like an idle SSE stream, with bytes made once per page number and publish.
A page gets a task of its own only while it has something to catch up on
(attaching, a poke from Fanout that it cannot serve, a slow reader):
`serve` runs the core's stream loop (`holdStream`) from the page's
position until it parks, hands the page to Fanout and ends; the next
poke runs the loop again from there. A wake is decided by STREAM_WAKE,
as for a page's own stream (`woken`).

A flavour of connection (server/livesocket.py's WebSocket, the shared SSE
stream below) says how a message goes over its transport: `wrap(text)`
(the bytes of one message on the task path), `send(data)` (the task path,
with the send timeout), `encoder(number)` (what Fanout writes for the
events of page `number`: one function per number, so that the bytes are
made once for every connection) and `close()` (end it, after telling the
owner to reconnect).
"""

import asyncio
import logging

from zorg.live.core import delivery as rules
from zorg.live.core import wire
from zorg.live.core.connection import checkAttach, inputPath
from zorg.live.interfaces import BadRequest, LiveError
from zorg.live.page.client import redact
from zorg.live.core.inputs import SCOPE_KEY, fromArguments
from zorg.live.server.site import KEEP  # noqa: F401 (its old home)
from zorg.live.server.streams import Parked

log = logging.getLogger('zorg.live.server')


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
        self.pages = {}             # page number -> Parked
        self.inputs = None          # the input lane (a task) when busy
        self.queue = []             # inputs waiting for the lane
        self.closed = False

    # -- messages from the owner ---------------------------------------

    async def attach(self, number, uuid, lastEventId, url):
        """Attach page `number`: True once answered ``attached``, False
        when the connection went away meanwhile; LiveError to refuse."""
        if number in self.pages:
            raise BadRequest('page %d is attached already; detach it first '
                             'or use another number' % number)
        page = self.pages[number] = Parked(owner=self, number=number,
                                           transport=self.transport, url=url)
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
            return False
        page.client = client
        page.cursor = cursor
        app.parkPage(uuid, page)
        manager.holdStarted(client)
        page.attached = True
        page.ready.set_result(True)
        await self.send(self.wrap(wire.attachedMessage(number)))
        self.catchUp(page)
        return True

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
        """Queue an input; inputs run one after another, in order. The
        message was measured and decoded where it arrived (livesocket);
        its arguments become the checked Input here, at that edge, and
        nothing later checks them again."""
        try:
            checked = fromArguments(message['handler'],
                                    message.get('arguments'),
                                    self.app.settings.max_argument_depth,
                                    measured=True)
        except LiveError as e:
            checked = e
        self.queue.append((number, message, checked))
        if self.inputs is None:
            self.inputs = self.app.loop.create_task(self._runInputs())

    async def _runInputs(self):
        try:
            while self.queue and not self.closed:
                number, message, checked = self.queue.pop(0)
                await self._input(number, message, checked)
        finally:
            self.inputs = None

    async def _input(self, number, message, checked):
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
        if isinstance(checked, LiveError):
            # Answered as the POST input path answers such an input.
            status, answer = checked.status, wire.errorBody(checked).encode()
        else:
            # Exactly as the POST input path runs it: the site's publisher
            # in a worker thread, with this connection's credentials; the
            # header makes a repeat get the recorded answer
            # (page/inputonce.py). The checked input goes with it in the
            # request's scope, not as a body to check again.
            status, answer = await self.app.siteRequest(
                'POST', path, self.headers + wire.inputHeaders(inputId),
                b'', self.client, self.server, self.scheme,
                {SCOPE_KEY: checked})
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
        """Run the stream loop for `page` until it parks (or ends)."""
        app, manager = self.app, self.app.manager
        client = page.client
        group_id = client.group_id
        loop = rules.holdStream(page.cursor)
        error = None
        try:
            step = next(loop)
            while True:
                kind = step[0]
                result = None
                if kind == rules.READ:
                    if page.reason is not None or self.closed:
                        return
                    try:
                        result = await app.step(manager.collectEntries,
                                                client, step[1])
                    except LiveError as e:
                        error = e
                elif kind == rules.SEND:
                    await self.send(self.wrap(wire.eventsMessage(
                        page.number, [text for _pos, text in step[1]])))
                    page.cursor = step[2]
                elif kind == rules.PARK:
                    page.cursor = cursor = step[1]
                    # Published while this task read from the broker:
                    # read on; else Fanout pushes, and its poke runs this
                    # loop again.
                    read = manager.broker.readLocal(group_id, cursor, 1)
                    if read is None or not read[0]:
                        app.fanout.park(page, cursor)
                        return
                    result = rules.PUBLISH, cursor
                step = loop.send(result)
        except StopIteration as stop:
            if stop.value[0] == rules.FAILED:
                # The broker failed: the page is told, and leaves the
                # connection (its owner attaches it again).
                log.warning('detaching page %s: %s', redact(client.uuid),
                            error)
                self.forget(page)
                await self.refuse(error, page.number)
        finally:
            page.task = None

    def woken(self, page, reason):
        """A wake of `page` (as its Parked was told): STREAM_WAKE says
        whether it reads on (its task catches up) or leaves."""
        action = rules.STREAM_WAKE[reason]
        if action in (rules.READ, rules.HEARTBEAT):
            # Fanout could not write to it (not in memory, a slow reader):
            # the page's own task catches up.
            self.catchUp(page)
        else:
            # Superseded (attached elsewhere, closed), drained or gone:
            # this attachment ends quietly; a drain tells the owner once,
            # for the whole connection (LiveApp.drain).
            self.forget(page)

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
            page.reason = rules.DISCONNECT
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
