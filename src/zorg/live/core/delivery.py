"""The delivery state of one page, without I/O.

Everything that decides what a page is sent lives here; the long-poll path
(threads or event loop) and the SSE path use it unchanged. Rules:

1. A page reads its group's log from a *cursor*: the position up to which
   it has acknowledged (applied) events. Registration puts the cursor at the
   log's newest position, before the HTML leaves the server.
2. Long-poll request N is *fresh* when N == nextNum and no response is
   pending, or when N == pending + 1: the latter acknowledges the pending
   response and frees it. The cursor moves to the pending response's end,
   or, when the request carries a last event id, to that id only (rule 7):
   with several processes the page may have applied another process's
   answer to the same N, which can end earlier.
3. A repeated request N (N == pending) is answered with the pending
   response again, byte for byte. Nothing else is read.
4. Any other N is out of the window: BadRequest, nothing changes --
   unless the request carries a last event id (rule 8).
5. A fresh request's answer is recorded as pending with the position it
   reached. Only the newest output request of a page may record: starting
   a request supersedes any request still waiting (its answer is idle and
   is not recorded).
6. Starting an SSE stream drops the pending answer and restarts the
   long-poll window at 0.
7. An explicit last event id (SSE reconnect, or long-poll after SSE) is an
   acknowledgement up to that id; it never moves the cursor backwards, and
   it may not point past the log's newest position.
8. A request N out of this process's window that carries a last event id
   is fresh: the page was served by another process meanwhile (several
   processes, no sticky sessions), so this process's window says nothing
   about what the page has applied. It reads after that id (rule 7), the
   pending answer is dropped without acknowledging it (the page may never
   have seen it), and N becomes the window. The client drops an event
   whose id it has applied already, so a re-read is harmless; a gap is
   impossible because the read starts at the page's own id.
9. A page adopted from another process (its record shared through the
   broker) starts with the cursor of its record, and its first request's
   last event id moves it on (rules 7 and 8).
10. Registration takes the cursor from the request's *mark*: the broker's
   position when the request entered the server, before the publisher
   opened its database connection (whose snapshot the HTML is rendered
   from). An event committed after the snapshot was published after the
   mark, so it lies after the cursor: the page never misses it. An event
   committed before the snapshot but published after the mark is in the
   HTML *and* after the cursor: the page may receive it once more, so
   events that are not idempotent carry a key that the client
   de-duplicates (see `startCursor` and delivery.txt). Without a mark
   (a page rendered outside a server) the cursor is the log's newest
   position.

What a waiting request does when it wakes is decided by one table per
transport (LONGPOLL_WAKE, STREAM_WAKE). The loops themselves are two
generators that do no I/O: `holdOutput` for long-poll (the threaded driver,
LivePageManager.output, and the event loop's server/longpoll.py and its
fast path server/polls.py run it)
and `holdStream` for every stream (a page's own SSE stream, and each page
of a shared connection, WebSocket or SSE: server/streams.py and
server/shared.py run it). The drivers differ only in how they read, send
and wait. Fanout, the fast path for parked streams, asks `pushable` what
it may send and leaves everything else to the stream's own loop.

The Delivery object is guarded by the manager's lock; it does no locking
itself and nothing here does I/O.
"""

from zope.interface import implementer

from zorg.live.interfaces import BadRequest, IDelivery
from zorg.live.core.wire import answer

# Why a waiting request woke up.
PUBLISH = 'publish'        # its group's log grew
TIMEOUT = 'timeout'        # its wait ran out (long-poll: answer idle;
#                            SSE: time for a heartbeat)
SUPERSEDED = 'superseded'  # a newer request of the same page started
DRAIN = 'drain'            # the server is shutting down
DISCONNECT = 'disconnect'  # the client went away

# What the request does then.
READ = 'read'              # read the log again (maybe answer with news)
ANSWER = 'answer'          # answer now with what it has (maybe idle)
HEARTBEAT = 'heartbeat'    # SSE: send a heartbeat, keep streaming
RECONNECT = 'reconnect'    # tell the page to reconnect; record nothing
STOP = 'stop'              # nobody to answer; record nothing

WAIT = 'wait'              # holdOutput asks its driver to wait
SEND = 'send'              # holdStream: send these entries
PARK = 'park'              # holdStream: nothing to send; wait for a wake
FAILED = 'failed'          # holdStream: a read failed (the broker); end

LONGPOLL_WAKE = {
    PUBLISH: READ,
    TIMEOUT: READ,        # the deadline check then answers idle
    SUPERSEDED: ANSWER,   # idle, not recorded (rule 5)
    DRAIN: RECONNECT,
    DISCONNECT: STOP,
}

STREAM_WAKE = {
    PUBLISH: READ,
    TIMEOUT: HEARTBEAT,
    SUPERSEDED: RECONNECT,  # the page opened another stream or poll
    DRAIN: RECONNECT,
    DISCONNECT: STOP,
}


def startCursor(mark, base, latest, fresh):
    """The cursor of a page registered by a request with `mark` (rule 10).

    `base`, `latest` and `fresh` describe the group's log now: reads after
    `base` are complete, `latest` is its newest position, and `fresh` says
    the log did not exist at `base` (it was created then, not trimmed), so
    nothing of it can be older than `base`.
    """
    if mark is None or mark >= latest:
        return latest
    if mark >= base:
        return mark
    if fresh:
        return base     # the log began after the mark: nothing missed
    # History after the mark was dropped: the first read says
    # recovered:false and the page reloads.
    return mark


def holdOutput(client, generation, deadline, clock):
    """The long-poll loop, without I/O: a generator that its driver runs.

    It yields ``(READ, cursor)`` and is sent ``(texts, end)``: the events
    for the page after `cursor` and the position the read reached. It
    yields ``(WAIT, cursor, seconds)`` and is sent the reason the wait
    ended. It returns ``(outcome, texts, end)``: ANSWER, RECONNECT or
    STOP (see LONGPOLL_WAKE).
    """
    cursor = client.delivery.acked
    while True:
        texts, cursor = yield READ, cursor
        remaining = deadline - clock()
        if (texts or remaining <= 0
                or generation != client.delivery.generation):
            return ANSWER, texts, cursor
        reason = yield WAIT, cursor, remaining
        outcome = LONGPOLL_WAKE[reason]
        if outcome != READ:
            return outcome, texts, cursor


def holdStream(cursor, woken=None):
    """The stream loop, without I/O: a generator that its driver runs.

    It yields ``(READ, cursor)`` and is sent ``(entries, end)``: the
    ``(position, text)`` entries for the page after `cursor` and the
    position the read reached, or None when the read failed. It yields
    ``(SEND, entries, end)`` when there is news to send, and
    ``(HEARTBEAT, cursor)`` when a heartbeat is due (see STREAM_WAKE);
    both are sent None once sent. With nothing to send it yields
    ``(PARK, cursor)`` and is sent ``(reason, cursor)``: why the wait ended
    and the position the stream stands at then (Fanout may have sent news
    meanwhile and moved it on). It returns ``(outcome, cursor)``:
    RECONNECT, STOP or FAILED.

    A parked loop holds nothing but its position, so a driver need not
    keep it while the stream waits (thousands wait at once): it may close
    it and, on the wake, run ``holdStream(cursor, reason)``, which goes on
    exactly as sending ``(reason, cursor)`` would have.
    """
    reason = woken
    while True:
        if reason is not None:
            action = STREAM_WAKE[reason]
            reason = None
            if action == HEARTBEAT:
                yield HEARTBEAT, cursor
            elif action != READ:
                return action, cursor
        read = yield READ, cursor
        if read is None:
            return FAILED, cursor
        entries, end = read
        cursor = end
        if entries:
            yield SEND, entries, end
            continue
        reason, cursor = yield PARK, cursor


def heartbeatDue(lastSent, now, interval):
    """A stream or shared connection silent since `lastSent` gets a
    heartbeat at `now` once `interval` seconds passed (STREAM_WAKE's
    TIMEOUT). One beat task asks this of every stream, rather than a timer
    per stream."""
    return now - lastSent >= interval


def pushable(read, limit):
    """What the fast path may send a parked stream from `read`, the
    broker's answer from memory (``(entries, recovered)``, None when it
    has none): the entries (maybe none), or None when the stream's own
    loop must read instead -- the broker must be asked, the history is
    lost (the page must be told to reload), or there is more than one
    read's worth (`limit`) of news."""
    if read is None:
        return None
    entries, recovered = read
    if not recovered or len(entries) >= limit:
        return None
    return entries


class Pending:
    """The recorded answer to output request `num`."""

    __slots__ = ('num', 'body', 'end')

    def __init__(self, num, body, end):
        self.num = num
        self.body = body
        self.end = end


@implementer(IDelivery)
class Delivery:
    """Delivery state of one page (see the module's rules)."""

    __slots__ = ('acked', 'nextNum', 'pending', 'generation')

    def __init__(self, cursor):
        self.acked = cursor
        self.nextNum = 0
        self.pending = None
        self.generation = 0

    def begin(self, num, last_event_id=None, newest=None):
        """Start long-poll request `num`.

        Returns ``(body, generation)``: `body` is the pending answer to
        resend (rule 3) or None for a fresh request, which then reads from
        `acked` and must finish with the returned generation.
        """
        if not isinstance(num, int) or isinstance(num, bool) or num < 0:
            raise BadRequest('outputNum must be a whole number >= 0, '
                             'got %r' % (num,))
        pending = self.pending
        if pending is not None and num == pending.num:
            self.generation += 1
            return pending.body, self.generation
        if pending is not None and num == pending.num + 1:
            # With a last event id, that is the acknowledgement: the page
            # may have applied another process's answer to pending.num
            # (this one's was lost), which can end before pending.end.
            fresh_ack = pending.end if last_event_id is None else None
        elif pending is None and num == self.nextNum:
            fresh_ack = None
        elif last_event_id is not None:
            fresh_ack = None    # rule 8; the pending answer goes below
        else:
            expected = (self.nextNum if pending is None
                        else '%d or %d' % (pending.num, pending.num + 1))
            raise BadRequest('outputNum %d is out of the window: the server '
                             'expects %s; start again from the page'
                             % (num, expected))
        if last_event_id is not None:
            self._checkAck(last_event_id, newest)
        # Only now change state: a bad request above changed nothing.
        if fresh_ack is not None:
            self._ack(fresh_ack)
        self.pending = None
        if last_event_id is not None:
            self._ack(last_event_id)
        self.nextNum = num
        self.generation += 1
        return None, self.generation

    def finish(self, num, generation, texts, end, body=None):
        """Record the answer to fresh request `num`; return its body.

        `texts` are the encoded events (empty for an idle answer), `end` the
        log position the answer reached; `body` is ``answer(num, texts)``
        when the caller made it already (the fast path makes one for many
        pages). A superseded request (rule 5) gets an idle body and records
        nothing.
        """
        if generation != self.generation:
            return answer(num, ())
        if body is None:
            body = answer(num, texts)
        self.pending = Pending(num, body, end)
        self.nextNum = num + 1
        return body

    def resume(self, last_event_id, newest):
        """An SSE stream starts after `last_event_id` (None: after acked).

        Returns the position to stream from. Connecting acknowledges up to
        it; a pending long-poll answer is dropped because the stream
        carries the same events.
        """
        if last_event_id is not None:
            self._checkAck(last_event_id, newest)
            self._ack(last_event_id)
        # The stream carries the pending answer's events again, and a page
        # that falls back from SSE starts long-polling at 0 (PROTOCOL.txt).
        self.pending = None
        self.nextNum = 0
        self.generation += 1
        return self.acked

    def _checkAck(self, position, newest):
        if newest is not None and position > newest:
            raise BadRequest('lastEventId is newer than any event of this '
                             'page; start again from the page')

    def _ack(self, position):
        if position > self.acked:
            self.acked = position
