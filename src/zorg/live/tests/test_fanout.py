"""SSE fan-out (server/fanout.py): idle streams get a publish written
straight to their connection, each exactly the events meant for it, in
order; what the fast path must not serve goes back to the stream's task.

The first test runs the real server; the others drive Fanout with a real
manager and broker and a transport that records what it is given (the
cases are about which stream gets which bytes, not about sockets).
"""

import asyncio
import json

from zorg.live.broker.memory import MemoryBroker
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager
from zorg.live.server import rounds
from zorg.live.server.fanout import BACKLOG, HEARTBEAT, Fanout
from zorg.live.server.streams import Parked
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_server_faults import openStream, run
from zorg.live.tests.test_server_proof import openPage, session, waitUntil


async def postInput(s, server, uuid, handler, *arguments):
    url = server.url('@@fanout.html/@@client/%s/input' % uuid)
    async with s.post(url, json={'handler': handler,
                                 'arguments': list(arguments)}) as r:
        assert r.status == 200, await r.text()


async def readUntil(stream, last):
    """(ids, texts) of the stream's events up to the one with `last`."""
    ids, texts = [], []
    while not texts or texts[-1] != last:
        frame = await stream.frame()
        assert frame is not None, 'the stream ended before %r' % last
        fields = dict(line.split(': ', 1) for line in frame
                      if line.startswith(('id: ', 'data: ')))
        if 'data' in fields:
            ids.append(int(fields['id']))
            texts.append(json.loads(fields['data'])['html'])
    return ids, texts


def test_each_stream_gets_exactly_its_events_in_order(tmp_path):
    async def conversation(server):
        async with session() as s:
            uuids = [await openPage(s, server, 'fanout.html')
                     for _ in range(6)]
            streams = [await openStream(server, uuid) for uuid in uuids[:5]]
            await waitUntil(s, server, lambda st: st['waiting'] == 5)
            sender = uuids[5]            # a page without a stream
            await postInput(s, server, sender, 'append', 'target', 'all')
            await postInput(s, server, sender, 'tell', uuids[1], 'only-1')
            await postInput(s, server, uuids[0], 'others', 'not-0')
            # Concurrent publishes: their order is the log's, the same for
            # every stream, whichever wakes they share.
            burst = ['burst-%02d' % i for i in range(30)]
            await asyncio.gather(*(
                postInput(s, server, sender, 'append', 'target', text)
                for text in burst))
            await postInput(s, server, sender, 'append', 'target', 'end')
            seen = [await readUntil(stream, 'end') for stream in streams]
            for stream in streams:
                stream.raw.close()
        orders = set()
        for i, (ids, texts) in enumerate(seen):
            assert ids == sorted(set(ids)), 'ids not increasing: %s' % ids
            expected = ['all'] + (['only-1'] if i == 1 else []) + (
                ['not-0'] if i != 0 else [])
            assert texts[:len(expected)] == expected
            got = texts[len(expected):-1]
            assert sorted(got) == burst       # each exactly once
            orders.add(tuple(got))
        assert len(orders) == 1               # in the same order everywhere

    with RunningServer(tmp_path) as server:
        run(conversation(server))
        assert 'Traceback' not in server.log()


# -- the edges, on Fanout itself ---------------------------------------------

class Transport:
    """Records writes; `backlog` and `closing` say what the reader did."""

    def __init__(self, backlog=0, closing=False):
        self.written = []
        self.backlog = backlog
        self.closing = closing

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return self.closing

    def get_write_buffer_size(self):
        return self.backlog


def frame(group_id, entries):
    return b''.join(b'%d:%s;' % (position, text.encode())
                    for position, text in entries)


class Setup:
    def __init__(self, history=1000, later=None):
        self.loop = asyncio.new_event_loop()
        self.manager = LivePageManager(MemoryBroker(historySize=history))
        self.now = 100.0
        self.fanout = Fanout(self.manager, frame, lambda: self.now, later)
        self.count = 0

    def stream(self, transport=None):
        self.count += 1
        # Anonymous: no join events in the log, only what a test publishes.
        client = self.manager.register(LivePageClient(
            'page%d' % self.count, 'zope.anybody', 'g', anonymous=True))
        parked = Parked(client, transport or Transport())
        parked.future = self.loop.create_future()
        self.fanout.park(parked, client.delivery.acked)
        return parked

    def publish(self, text, to=None):
        if to is None:
            return self.manager.publish(Append('t', text), 'g')
        return self.manager.publishToClient(Append('t', text), to)

    def close(self):
        self.loop.close()


def test_one_read_one_chunk_written_to_every_idle_stream():
    setup = Setup()
    try:
        a, b = setup.stream(), setup.stream()
        start = a.cursor
        setup.publish('one'), setup.publish('two')
        setup.fanout.push('g')
        entries, _ = setup.manager.broker.read('g', start)
        assert len(entries) == 2
        body = frame('g', [(pos, text) for pos, text, _aud in entries])
        for parked in (a, b):
            # One HTTP/1.1 chunk holding both frames.
            assert parked.transport.written == [
                b'%x\r\n%s\r\n' % (len(body), body)]
            assert parked.cursor == entries[-1][0]
            assert not parked.future.done()   # its task sleeps on
        assert a.transport.written[0] is b.transport.written[0]
        setup.fanout.push('g')                 # nothing new: nothing written
        assert len(a.transport.written) == 1
    finally:
        setup.close()


def test_targeted_events_reach_only_their_stream():
    setup = Setup()
    try:
        a, b = setup.stream(), setup.stream()
        setup.publish('to-b', to=b.client.uuid)
        setup.fanout.push('g')
        assert a.transport.written == []
        assert b'to-b' in b.transport.written[0]
        # Both moved past the event, written or not.
        assert a.cursor == b.cursor == setup.manager.broker.latest('g')
    finally:
        setup.close()


def test_slow_closing_and_behind_streams_go_back_to_their_task():
    setup = Setup(history=4)
    try:
        fine = setup.stream()
        slow = setup.stream(Transport(backlog=BACKLOG + 1))
        closing = setup.stream(Transport(closing=True))
        setup.publish('x')
        setup.fanout.push('g')
        assert len(fine.transport.written) == 1
        for parked in (slow, closing):
            assert parked.transport.written == []
            assert parked.future.result() == 'publish'
            assert parked.reason is None      # a poke, not an end
            assert parked.cursor < setup.manager.broker.latest('g')
        assert setup.fanout.idle['g'] == {fine}

        # `fine` stays behind while the log is trimmed past its position:
        # it is not written to, its task tells the page to reload.
        setup.fanout.unpark(fine)
        for i in range(10):
            setup.publish('y%d' % i)
        setup.fanout.park(fine, fine.cursor)
        setup.fanout.push('g')
        assert len(fine.transport.written) == 1
        assert fine.future.result() == 'publish'
        assert 'g' not in setup.fanout.idle
    finally:
        setup.close()


def test_heartbeats_go_to_streams_silent_for_their_interval():
    setup = Setup()
    try:
        a = setup.stream()
        interval = a.client.heartbeatInterval
        setup.now += interval / 2
        setup.fanout.beat()
        assert a.transport.written == []          # not silent long enough
        setup.now += interval / 2
        setup.fanout.beat()
        assert a.transport.written == [HEARTBEAT]
        setup.fanout.beat()
        assert a.transport.written == [HEARTBEAT]  # just written
        setup.now += interval / 2
        setup.publish('x')
        setup.fanout.push('g')                     # a write counts too
        setup.now += interval / 2
        slow = setup.stream(Transport(backlog=BACKLOG + 1))
        setup.fanout.beat()
        assert len(a.transport.written) == 2
        setup.now += interval
        setup.fanout.beat()
        assert a.transport.written[-1] == HEARTBEAT
        # The slow reader's task sends it, under the send timeout.
        assert slow.transport.written == []
        assert slow.future.result() == 'timeout'
        assert slow not in setup.fanout.idle['g']
    finally:
        setup.close()


def test_a_large_group_is_written_in_slices_and_news_meanwhile_joins_in(
        monkeypatch):
    monkeypatch.setattr(rounds, 'SLICE', 2)
    queued = []
    setup = Setup(later=lambda *call: queued.append(call))
    try:
        streams = [setup.stream() for _ in range(5)]
        setup.publish('one')
        setup.fanout.push('g')
        written = [len(p.transport.written) for p in streams]
        assert sorted(written) == [0, 0, 0, 1, 1]    # the first slice
        setup.publish('two')
        setup.fanout.push('g')          # during the round: one more later
        while queued:
            function, *arguments = queued.pop(0)
            function(*arguments)
        latest = setup.manager.broker.latest('g')
        for parked in streams:
            # Each got 'one' then 'two', exactly once and in order; the
            # later slices in one write.
            body = b''.join(parked.transport.written)
            assert body.count(b'one') == body.count(b'two') == 1
            assert body.index(b'one') < body.index(b'two')
            assert parked.cursor == latest
        assert sorted(len(p.transport.written) for p in streams) == [
            1, 1, 1, 2, 2]
        assert setup.fanout.pushing == {}
    finally:
        setup.close()
