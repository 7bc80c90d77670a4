"""Long-polls on the fast path (server/polls.py), on the real server.

LiveServerHTTP runs here, in this process, on loopback (as in
test_loop_thread.py), so that a test can look at its loop: a held poll
takes no task, one publish answers every held poll of a group with one
answer that each page records, and the fast path keeps the ordinary
path's promises where the two meet (audiences, the deadline, a request
pipelined behind a held poll, a poll superseded from another
connection, a slice boundary). Each test asserts what the server does,
never how fast.
"""

import asyncio
import json
import socket
import threading
import time

import pytest
import zope.component

from zorg.live import testing
from zorg.live.core.events import Append
from zorg.live.interfaces import ILivePageManager
from zorg.live.page.client import LivePageClient
from zorg.live.page.manager import LivePageManager
from zorg.live.server import rounds
from zorg.live.server.livehttp import LiveServer
from zorg.live.server.settings import Settings
from zorg.live.tests.test_server_faults import Raw, request, run

PAGE = 'page/@@client/%s/'


def site(environ, start_response):
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'no site here']


class Served:
    """The server, its manager and a way to run code in its loop."""

    def __init__(self, server, manager, loop):
        self.server, self.manager, self.loop = server, manager, loop
        self.port = server.port

    def inLoop(self, func):
        """func() called in the server's loop; its result."""
        async def call():
            return func()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def tasks(self):
        return self.inLoop(lambda: len(asyncio.all_tasks()))

    async def until(self, condition, timeout=20):
        """Until condition() is true in the server's loop (this test's
        loop runs meanwhile: its connections close and send)."""
        deadline = time.monotonic() + timeout
        while not self.inLoop(condition):
            assert time.monotonic() < deadline, 'never came true'
            await asyncio.sleep(0.01)


@pytest.fixture
def served():
    testing.setUp()
    manager = LivePageManager()
    zope.component.provideUtility(manager, ILivePageManager)
    server = LiveServer('s', site, '127.0.0.1', 0, Settings(threads=2))
    loops = []

    def serve():
        async def main():
            loops.append(asyncio.get_running_loop())
            await server.serve()
        asyncio.run(main())
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(('127.0.0.1', server.port), 0.5).close()
            if loops and server.app.loop is not None:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, 'the server did not start'
        time.sleep(0.05)
    try:
        yield Served(server, manager, loops[0])
    finally:
        server.stop()
        thread.join(30)
        testing.tearDown()


def pages(manager, count, group='g', principal='alice', refresh=None):
    ids = []
    for i in range(count):
        client = LivePageClient('p%d' % len(manager), principal, group)
        if refresh is not None:
            client.refreshInterval = refresh
        ids.append(manager.register(client).uuid)
    return ids


def poll(uuid, num, last=None):
    query = 'outputNum=%d' % num
    if last is not None:
        query += '&lastEventId=%s' % last
    return request('GET', PAGE % uuid + 'output?' + query)


async def opened(served, count):
    return [await Raw.open(served) for _ in range(count)]


def test_held_polls_take_no_task_and_one_publish_answers_all_alike(served):
    manager = served.manager
    ids = pages(manager, 30)

    async def conversation():
        raws = await opened(served, len(ids))
        idle = served.tasks()
        for raw, uuid in zip(raws, ids):
            await raw.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == len(ids))
        # No task per held poll (the ordinary path has one each).
        assert served.tasks() <= idle + 2
        served.inLoop(lambda: manager.publish(Append('t', 'news'), 'g'))
        answers = [await raw.response() for raw in raws]
        assert {status for status, _h, _b in answers} == {200}
        bodies = {body for _s, _h, body in answers}
        assert len(bodies) == 1
        body = json.loads(bodies.pop())
        assert body['outputNum'] == 0
        assert [e['html'] for e in body['events']] == ['news']
        # Each page recorded it as its pending answer: one string for all.
        pending = served.inLoop(lambda: [
            manager.getClient(uuid).delivery.pending for uuid in ids])
        assert len({id(p.body) for p in pending}) == 1
        # Asked again (a lost answer), the same bytes; the next request
        # acknowledges it and waits for news.
        await raws[0].send(poll(ids[0], 0))
        assert (await raws[0].response())[2] == answers[0][2]
        await raws[0].send(poll(ids[0], 1))
        await served.until(lambda: manager.waiting == 1)
        assert served.inLoop(lambda: manager.getClient(ids[0]).delivery
                             .pending) is None
        for raw in raws:
            raw.close()
        await served.until(lambda: manager.waiting == 0)

    run(conversation())


def test_news_for_some_principals_reaches_only_them(served):
    manager = served.manager
    alices = pages(manager, 3, principal='alice')
    bobs = pages(manager, 3, principal='bob')

    async def conversation():
        raws = await opened(served, 6)
        for raw, uuid in zip(raws, alices + bobs):
            await raw.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == 6)
        served.inLoop(lambda: manager.publishToPrincipals(
            Append('t', 'for bob'), 'g', ['bob']))
        for raw in raws[3:]:
            status, _h, body = await raw.response()
            assert [e['html'] for e in json.loads(body)['events']] == [
                'for bob']
        # Alice's polls read past it and wait on.
        await served.until(lambda: manager.waiting == 3)
        served.inLoop(lambda: manager.publish(Append('t', 'all'), 'g'))
        for raw in raws[:3]:
            status, _h, body = await raw.response()
            assert [e['html'] for e in json.loads(body)['events']] == [
                'all']
        for raw in raws:
            raw.close()

    run(conversation())


def test_a_held_poll_answers_idle_at_its_deadline_with_a_head_pipelined(
        served):
    manager = served.manager
    [uuid] = pages(manager, 1, refresh=0.3)

    async def conversation():
        raw = await Raw.open(served)
        await raw.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == 1)
        # Half of the next request's head arrives while the poll waits:
        # its header deadline must not replace the poll's.
        nextPoll = poll(uuid, 1)
        await raw.send(nextPoll[:20])
        status, _h, body = await raw.response()
        assert status == 200
        assert json.loads(body) == {'outputNum': 0,
                                    'events': [{'event': 'idle'}]}
        await raw.send(nextPoll[20:])
        await served.until(lambda: manager.waiting == 1)
        served.inLoop(lambda: manager.publish(Append('t', 'later'), 'g'))
        status, _h, body = await raw.response()
        assert json.loads(body)['outputNum'] == 1
        assert [e['html'] for e in json.loads(body)['events']] == ['later']
        raw.close()

    run(conversation())


def test_a_poll_from_another_connection_supersedes_the_held_one(served):
    manager = served.manager
    [uuid] = pages(manager, 1)

    async def conversation():
        first, second = await opened(served, 2)
        await first.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == 1)
        await second.send(poll(uuid, 0))
        # The first is answered idle and records nothing.
        status, _h, body = await first.response()
        assert json.loads(body) == {'outputNum': 0,
                                    'events': [{'event': 'idle'}]}
        await served.until(lambda: manager.waiting == 1)
        served.inLoop(lambda: manager.publish(Append('t', 'one'), 'g'))
        status, _h, body = await second.response()
        assert [e['html'] for e in json.loads(body)['events']] == ['one']
        # The held one keeps its connection: it carries the next request.
        await first.send(poll(uuid, 1))
        await served.until(lambda: manager.waiting == 1)
        first.close()
        second.close()
        await served.until(lambda: manager.waiting == 0)

    run(conversation())


def test_a_group_larger_than_a_slice_is_answered_whole_and_once(
        served, monkeypatch):
    monkeypatch.setattr(rounds, 'SLICE', 4)
    manager = served.manager
    ids = pages(manager, 11)

    async def conversation():
        raws = await opened(served, len(ids))
        for raw, uuid in zip(raws, ids):
            await raw.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == len(ids))

        def twice():
            # Two publishes in one callback: the second comes while the
            # round is under way, and one more round reads it.
            manager.publish(Append('t', 'a'), 'g')
            served.server.app._wake()
            manager.publish(Append('t', 'b'), 'g')
        served.inLoop(twice)
        got = {}
        for raw, uuid in zip(raws, ids):
            num = 0
            texts = []
            while texts[-1:] != ['b']:
                status, _h, body = await raw.response()
                assert status == 200
                answer = json.loads(body)
                assert answer['outputNum'] == num
                texts += [e['html'] for e in answer['events']
                          if e.get('event') != 'idle']
                num += 1
                await raw.send(poll(uuid, num))
            got[uuid] = texts
        assert set(map(tuple, got.values())) == {('a', 'b')}
        for raw in raws:
            raw.close()

    run(conversation())


def test_a_fault_answering_one_poll_closes_its_connection_alone(
        served, monkeypatch):
    manager = served.manager
    ids = pages(manager, 3)
    broken = ids[1]
    original = manager.finishOutput

    def finishOutput(client, *args):
        if client.uuid == broken:
            raise RuntimeError('a bug on the fast path')
        return original(client, *args)
    monkeypatch.setattr(manager, 'finishOutput', finishOutput)

    async def conversation():
        raws = await opened(served, 3)
        for raw, uuid in zip(raws, ids):
            await raw.send(poll(uuid, 0))
        await served.until(lambda: manager.waiting == 3)
        served.inLoop(lambda: manager.publish(Append('t', 'one'), 'g'))
        for raw in (raws[0], raws[2]):
            status, _h, body = await raw.response()
            assert [e['html'] for e in json.loads(body)['events']] == ['one']
        assert await raws[1].untilClosed(timeout=20) == b''
        await served.until(lambda: manager.waiting == 0)
        # The group's later news still goes out (no round left hanging).
        for raw, uuid in ((raws[0], ids[0]), (raws[2], ids[2])):
            await raw.send(poll(uuid, 1))
        await served.until(lambda: manager.waiting == 2)
        served.inLoop(lambda: manager.publish(Append('t', 'two'), 'g'))
        for raw in (raws[0], raws[2]):
            status, _h, body = await raw.response()
            assert [e['html'] for e in json.loads(body)['events']] == ['two']
        for raw in raws:
            raw.close()

    run(conversation())


def test_a_held_poll_that_asked_for_another_protocol_is_answered_and_closed(
        served):
    manager = served.manager
    [uuid] = pages(manager, 1)

    async def conversation():
        raw = await Raw.open(served)
        await raw.send(request('GET', PAGE % uuid + 'output?outputNum=0',
                               headers=('Upgrade: h2c',
                                        'Connection: Upgrade')))
        await served.until(lambda: manager.waiting == 1)
        served.inLoop(lambda: manager.publish(Append('t', 'news'), 'g'))
        status, headers, body = await raw.response()
        assert status == 200 and headers['connection'] == 'close'
        assert [e['html'] for e in json.loads(body)['events']] == ['news']
        assert await raw.untilClosed(timeout=20) == b''

    run(conversation())
