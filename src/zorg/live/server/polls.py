"""Long-polls without a task: the fast path of ``.../@@client/<uuid>/output``.

A long-poll delivery is two requests: the answer to the poll that waited,
and the next poll, which usually finds nothing new and waits in turn. On
the ordinary path (server/longpoll.py) each is an ASGI cycle with a task,
a future and a timer. Here LiveServerHTTP's protocol (liveproto.py) hands
a plain kept-alive GET of the output URL straight to `Polls`:

- `begin` starts the request (the manager's `beginOutput`, from memory)
  and runs the core's long-poll loop (core/delivery.py's `holdOutput`,
  unchanged) until it answers or waits. A wait is an entry in a table by
  group and the connection's own timer for the deadline: no task, no
  future, no timer of its own.
- `push`, when the group's log grows (LiveApp's wake), reads the news once
  per position the waiting polls stand at (usually one: every waiting
  page stands at the log's end), makes each answer once per (position,
  outputNum), records it as each page's pending answer (the same string
  for all of them) and writes the same bytes to each connection. A large
  group is served in slices, as Fanout serves streams.
- Every other wake (superseded, drain, disconnect, the deadline) is sent to
  the poll's loop as on the ordinary path: LONGPOLL_WAKE decides.

Only what memory answers takes this path (a broker that never blocks: the
memory broker). A request it does not take (a Redis broker's, one with a
body, HEAD, HTTP/1.0, a pipelined one, bad input) takes the ordinary path,
which answers it as before; `begin` changes nothing when it declines.
"""

import logging

from zorg.live.core import delivery as rules
from zorg.live.core import wire
from zorg.live.interfaces import LiveError
from zorg.live.page.manager import READ_LIMIT, WouldBlock
from zorg.live.server.liveproto import httpDate
from zorg.live.server.longpoll import outputQuery
from zorg.live.server.rounds import Rounds


log = logging.getLogger('zorg.live.server')


class HeldPoll:
    """One long-poll request waiting on the fast path: the core's loop
    (`holdOutput`) and what its answer needs. It is the page's entry in
    LiveApp's parked pages, woken as the others are."""

    __slots__ = ('polls', 'protocol', 'client', 'uuid', 'num', 'generation',
                 'loop', 'cursor', 'deadline', 'keepAlive', 'held', 'done')

    def __init__(self, polls, protocol, client, uuid, num, generation):
        self.polls = polls
        self.protocol = protocol
        self.client = client
        self.uuid = uuid
        self.num = num
        self.generation = generation
        self.loop = None        # the core's holdOutput
        self.cursor = None      # where it waits to read from
        self.deadline = None    # the loop time its wait ends
        self.keepAlive = True   # the connection carries another request
        self.held = False       # counted by the manager (holdStarted)
        self.done = False

    def wake(self, reason):
        self.polls.woken(self, reason)


class Polls(Rounds):
    """The long-polls of one event loop waiting on the fast path, by
    group (see the module's docstring); `push` (rounds.py) answers them
    with a publish."""

    def __init__(self, app, paths):
        super().__init__(app.loop.call_soon)
        self.app = app
        self.paths = paths      # LiveApp's routes of the live paths
        self.manager = app.manager
        self.clock = app.loop.time
        self.waiting = {}       # group id -> set of HeldPoll

    def route(self, path):
        """The page id of an output request's `path`, else None."""
        match = self.paths.search(path)
        if match is None or match.group(2) != 'output':
            return None
        return match.group(1)

    def begin(self, protocol, uuid, query):
        """Serve output request `query` of page `uuid` on `protocol`'s
        connection: answered now, or held until it can be. False when the
        ordinary path must serve it (nothing was changed)."""
        num, last = outputQuery(query)
        manager = self.manager
        try:
            client, num, body, generation = manager.beginOutput(
                uuid, num, last, local=True)
        except (LiveError, WouldBlock):
            return False    # the ordinary path answers it (the error...)
        poll = HeldPoll(self, protocol, client, uuid, num, generation)
        protocol.poll = poll
        if body is not None:
            # A repeated request: the pending answer again (rule 3).
            poll.done = True
            protocol.pollEnded(poll, self.response(body))
            return True
        clock = self.clock
        poll.loop = rules.holdOutput(client, generation,
                                     clock() + client.refreshInterval, clock)
        manager.holdStarted(client)
        poll.held = True
        app = self.app
        app.parkPage(uuid, poll)
        self.run(poll, next(poll.loop))
        if app.draining:
            poll.wake(rules.DRAIN)    # (after any news it has)
        return True

    def run(self, poll, step):
        """Run `poll`'s loop from `step` until it waits or ends."""
        try:
            while step[0] == rules.READ:
                step = poll.loop.send(self.manager.collect(
                    poll.client, step[1], local=True))
        except StopIteration as stop:
            return self.end(poll, *stop.value)
        except LiveError as e:
            # The broker failed: answered as the ordinary path answers.
            return self.end(poll, None, (), None, error=e)
        _wait, poll.cursor, remaining = step
        self.waiting.setdefault(poll.client.group_id, set()).add(poll)
        poll.deadline = self.clock() + remaining
        poll.protocol.pollWaits(poll)

    def woken(self, poll, reason):
        """`poll`'s wait ended for `reason` (LONGPOLL_WAKE)."""
        if poll.done:
            return
        try:
            try:
                step = poll.loop.send(reason)
            except StopIteration as stop:
                return self.end(poll, *stop.value)
            self.run(poll, step)
        except Exception:
            self.fail(poll)

    def release(self, poll):
        """`poll` waits no more: out of the tables, the manager told."""
        poll.done = True
        client = poll.client
        waiting = self.waiting.get(client.group_id)
        if waiting is not None:
            waiting.discard(poll)
            if not waiting:
                del self.waiting[client.group_id]
        if poll.held:
            poll.held = False
            self.manager.holdEnded(client)
        self.app.unparkPage(poll.uuid, poll)

    def fail(self, poll):
        """A fault of this path (a bug): logged, and the poll's connection
        closed, so that its page asks again; the other polls go on."""
        log.exception('serving a long-poll failed; closing its connection')
        self.release(poll)
        protocol = poll.protocol
        if protocol.poll is poll:
            protocol.poll = None
        protocol.transport.abort()

    def end(self, poll, outcome, texts, end, shared=None, error=None):
        """The loop returned `outcome`: record and write the answer (none
        for a client gone). `shared` is ``(body, response)`` when the
        round made this answer for other pages too."""
        self.release(poll)
        client = poll.client
        manager = self.manager
        if error is not None:
            poll.loop.close()
            data = wire.jsonResponse(error.status, wire.errorBody(error),
                                     httpDate(), not poll.keepAlive)
        else:
            body = manager.endOutput(
                client, poll.num, poll.generation, outcome, texts, end,
                None if shared is None else shared[0])
            if body is None:
                data = None     # nobody to answer; nothing was recorded
            elif (shared is not None and body is shared[0]
                  and poll.keepAlive):
                data = shared[1]
            else:
                data = wire.jsonResponse(200, body, httpDate(),
                                         not poll.keepAlive)
        poll.protocol.pollEnded(poll, data)

    def response(self, body):
        return wire.jsonResponse(200, body, httpDate())

    # -- the group's log grew ----------------------------------------------

    def waitingIn(self, group_id):
        return self.waiting.get(group_id)

    def serve(self, group_id, polls):
        reads = {}      # cursor -> (entries, end, shared texts) or None
        answers = {}    # (cursor, outputNum) -> (body, response)
        broker = self.manager.broker
        for poll in polls:
            if poll.done:
                continue
            try:
                self._answer(poll, group_id, broker, reads, answers)
            except Exception:
                self.fail(poll)

    def _answer(self, poll, group_id, broker, reads, answers):
        """Send `poll`'s loop the publish, and the news read once for its
        position (`reads`), with the answer made once (`answers`)."""
        cursor = poll.cursor
        if cursor in reads:
            read = reads[cursor]
        else:
            read = reads[cursor] = self._read(broker, group_id, cursor)
        try:
            step = poll.loop.send(rules.PUBLISH)
        except StopIteration as stop:
            return self.end(poll, *stop.value)
        if read is None or step[0] != rules.READ or step[1] != cursor:
            # The history is lost (a reload) or something unforeseen: the
            # page's own read.
            return self.run(poll, step)
        entries, end, texts = read
        if texts is None:
            texts = [text for _pos, text
                     in self.manager.select(poll.client, entries)]
        try:
            step = poll.loop.send((texts, end))
        except StopIteration as stop:
            outcome, got, reached = stop.value
            shared = None
            if got is read[2] and got:
                key = cursor, poll.num
                shared = answers.get(key)
                if shared is None:
                    body = wire.answer(poll.num, got)
                    shared = answers[key] = body, self.response(body)
            return self.end(poll, outcome, got, reached, shared)
        self.run(poll, step)

    def _read(self, broker, group_id, cursor):
        """``(entries, end, texts)`` of the group's log after `cursor`, read
        once for every poll there; texts None when the entries have
        audiences (each page gets its own selection). None when each page
        must read for itself (its history was lost)."""
        read = broker.readLocal(group_id, cursor, READ_LIMIT)
        if read is None or not read[1]:
            return None
        entries = read[0]
        if not entries:
            return entries, cursor, []
        end = entries[-1][0]
        if any(audience is not None for _pos, _text, audience in entries):
            return entries, end, None
        return entries, end, [text for _pos, text, _audience in entries]
