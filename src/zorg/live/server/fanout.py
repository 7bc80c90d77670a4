"""Fan-out: one publish written to every idle SSE stream of a group at once.

An SSE stream that has sent everything it had parks here (its task waits
only for a disconnect or a drain; `beat` writes its heartbeats). When the group's log
grows, `push` reads the new entries once per distinct stream position
(usually one: every idle stream of a group stands at the log's end),
frames them once, and writes the same bytes to each stream's transport:
one write per page, no task switch, no timer, no future.

The bytes are the SSE frames wrapped as one HTTP/1.1 chunk, which is the
framing LiveServerHTTP's protocol (liveproto.py) gives this response (no
content-length: chunked), so the stream's later writes through its ``send``
continue it seamlessly
(core/wire.py makes both).

What Fanout may send is the core's decision (core/delivery.py's
`pushable`); everything else it leaves to the stream's own loop
(`holdStream`) with a poke, whose reason STREAM_WAKE decides on.

A stream this path must not serve is woken instead and takes the ordinary
path in its own task, with the send timeout that drops slow readers: its
reader has more than `BACKLOG` bytes unread (or the transport is closing),
the log no longer covers its position (it must be told to reload), there
is more than one read's worth of news, or the broker cannot answer from
memory (a Redis broker whose cache does not reach back that far: the
task reads in the broker executor, never here in the loop).
"""

from zorg.live.core.delivery import TIMEOUT, heartbeatDue, pushable
from zorg.live.core.wire import SSE_HEARTBEAT, chunk
from zorg.live.page.manager import READ_LIMIT
from zorg.live.server.rounds import Rounds

# Unread bytes above which a reader counts as slow; the protocol pauses its
# own writes at the transport's high-water mark, which is 64 KiB.
BACKLOG = 64 * 1024
HEARTBEAT = chunk(SSE_HEARTBEAT)


class Fanout(Rounds):
    """The idle SSE streams of one event loop, by group; `push` (rounds.py)
    writes a publish to them."""

    def __init__(self, manager, frames, clock, later=None):
        super().__init__(later)
        self.manager = manager
        self.frames = frames        # (group id, entries) -> SSE frames
        self.clock = clock          # the loop's time()
        self.idle = {}              # group id -> set of Parked
        self.written = 0            # chunks written by push (statistics)

    def park(self, parked, cursor):
        """`parked`'s stream sent everything up to `cursor`: push to it."""
        parked.cursor = cursor
        parked.since = self.clock()
        self.idle.setdefault(parked.client.group_id, set()).add(parked)

    def unpark(self, parked):
        """The stream's task runs again: push no more; its position now."""
        group = self.idle.get(parked.client.group_id)
        if group is not None:
            group.discard(parked)
            if not group:
                del self.idle[parked.client.group_id]
        return parked.cursor

    def waitingIn(self, group_id):
        return self.idle.get(group_id)

    def serve(self, group_id, streams):
        idle = self.idle.get(group_id, ())
        broker = self.manager.broker
        select = self.manager.select
        sse = self._chunk      # one bound method for the round, not one a page
        batches = {}
        now = self.clock()
        for parked in streams:
            if parked not in idle:
                continue       # its task took over since the round began
            cursor = parked.cursor
            encode = parked.encode or sse
            batch = batches.get((cursor, encode))
            if batch is None:
                batch = batches[cursor, encode] = self._batch(
                    broker, group_id, cursor, encode)
            entries, end, shared = batch
            transport = parked.transport
            if (entries is None or transport.is_closing()
                    or transport.get_write_buffer_size() > BACKLOG):
                idle.discard(parked)
                parked.poke()
                continue
            if shared is None:
                mine = select(parked.client, entries)
                data = encode(group_id, mine) if mine else None
            else:
                data = shared
            if data is not None:
                try:
                    transport.write(data)
                except (RuntimeError, OSError):
                    # Closed in a way is_closing() does not tell (our
                    # WebSocket close sent, EOF written): not this
                    # round's business, and no reason to stop it.
                    idle.discard(parked)
                    parked.poke()
                    continue
                parked.since = now
                self.written += 1
            parked.cursor = end

    def roundDone(self, group_id):
        if not self.idle.get(group_id, True):
            self.idle.pop(group_id, None)

    def _batch(self, broker, group_id, cursor, encode):
        """``(entries, end, shared chunk)`` after `cursor`; entries None
        when the stream's task must handle it; shared None when the
        entries have audiences (each stream gets its own selection)."""
        entries = pushable(broker.readLocal(group_id, cursor, READ_LIMIT),
                           READ_LIMIT)
        if entries is None:
            return None, cursor, None
        if not entries:
            return entries, cursor, None
        end = entries[-1][0]
        if any(audience is not None for _pos, _text, audience in entries):
            return entries, end, None
        return entries, end, encode(
            group_id, [(pos, text) for pos, text, _audience in entries])

    def _chunk(self, group_id, entries):
        return chunk(self.frames(group_id, entries))

    def beat(self):
        """Write a heartbeat to every idle stream that was silent for its
        client's heartbeatInterval; a slow reader's task sends it instead,
        with the send timeout that drops it if it reads no more."""
        now = self.clock()
        for group_id, streams in list(self.idle.items()):
            for parked in list(streams):
                if not parked.beats or not heartbeatDue(
                        parked.since, now, parked.client.heartbeatInterval):
                    continue
                transport = parked.transport
                if (transport.is_closing()
                        or transport.get_write_buffer_size() > BACKLOG):
                    streams.discard(parked)
                    parked.poke(TIMEOUT)
                    continue
                transport.write(HEARTBEAT)
                parked.since = now
            if not streams:
                self.idle.pop(group_id, None)
