"""Two groups at once on one redis-server: no event crosses into the other
group, and a page gets only what is meant for it.

A Redis stream id is unique only within its stream: two groups that
publish in the same millisecond get the same ids. A server that caches
frames by position alone sends one group's frame to the other's streams.
Here two bursts run at once, one per group, with targeted events among
them, while SSE and long-poll pages of both groups read.
"""

import asyncio
import json
import re
import time

import pytest

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_servers import session

pytestmark = pytest.mark.redis

UUID = re.compile(r'data-uuid="([^"]+)"')
ROOMS = ('room-a.html', 'room-b.html')
EVENTS = 1500          # per group
EVERY = 7              # every 7th event goes to one page only
PAGES = 4              # per group and transport
CHUNK = 100            # events per request


async def openPage(s, server, room):
    async with s.get(server.url(room)) as r:
        assert r.status == 200
        return UUID.search(await r.text()).group(1)


def messages(events):
    return [e for e in events if e.get('event') == 'custom'
            and e.get('name') == 'msg']


async def readSSE(s, server, room, uuid, received, done):
    url = server.url('@@%s/@@client/%s/events' % (room, uuid))
    async with s.get(url, timeout=None) as r:
        assert r.status == 200
        while not done.is_set():
            line = await r.content.readline()
            if not line:
                return
            if line.startswith(b'data: '):
                received.extend(messages([json.loads(line[6:])]))


async def readLongPoll(s, server, room, uuid, received, done):
    url = server.url('@@%s/@@client/%s/output' % (room, uuid))
    num, last = 0, None
    while not done.is_set():
        params = {'outputNum': str(num)}
        if last is not None:
            params['lastEventId'] = last
        async with s.get(url, params=params) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        num += 1
        ids = [e['id'] for e in body['events'] if 'id' in e]
        if ids:
            last = ids[-1]
        received.extend(messages(body['events']))


def expected(room, uuid, uuids):
    """The events of the burst in `room` that page `uuid` must get."""
    for n in range(EVENTS):
        if n % EVERY == 0:
            if uuids[(n // EVERY) % len(uuids)] == uuid:
                yield (room, n)
        else:
            yield (room, n)


def test_two_groups_publishing_at_once_never_cross(servers):
    server = servers('a', threads=4, refresh_interval=5)

    async def run():
        async with session() as s:
            pages = {}
            for room in ROOMS:
                pages[room] = [
                    (transport, await openPage(s, server, room))
                    for transport in ('sse', 'longpoll')
                    for _ in range(PAGES)]
            received = {uuid: [] for room in ROOMS
                        for _t, uuid in pages[room]}
            done = asyncio.Event()
            readers = [asyncio.ensure_future(
                (readSSE if transport == 'sse' else readLongPoll)(
                    s, server, room, uuid, received[uuid], done))
                for room in ROOMS for transport, uuid in pages[room]]
            await asyncio.sleep(0)   # the readers connect while we post

            async def burst(room):
                # In requests of CHUNK events: a request's events go out
                # together when its transaction commits.
                uuids = [uuid for _t, uuid in pages[room]]
                url = server.url('@@%s/@@client/%s/input'
                                 % (room, uuids[0]))
                for start in range(0, EVENTS, CHUNK):
                    async with s.post(url, json={
                            'handler': 'burst',
                            'arguments': [CHUNK, room, uuids, EVERY,
                                          start]}) as r:
                        assert r.status == 200, await r.text()

            await asyncio.gather(*(burst(room) for room in ROOMS))
            want = {uuid: list(expected(room, uuid,
                                        [u for _t, u in pages[room]]))
                    for room in ROOMS for _t, uuid in pages[room]}
            deadline = time.monotonic() + 60
            while any(len(received[u]) < len(want[u]) for u in want):
                for reader in readers:
                    if reader.done():
                        reader.result()   # a reader that failed says why
                assert time.monotonic() < deadline, {
                    u: (len(received[u]), len(want[u])) for u in want}
                await asyncio.sleep(0.05)
            done.set()
            for reader in readers:
                reader.cancel()
            for room in ROOMS:
                for transport, uuid in pages[room]:
                    got = [(e['data']['p'], e['data']['n'])
                           for e in received[uuid]]
                    foreign = [g for g in got if g[0] != room]
                    assert not foreign, (transport, foreign[:5])
                    strays = [e['data'] for e in received[uuid]
                              if e['data'].get('to', uuid) != uuid]
                    assert not strays, (transport, strays[:5])
                    # Exactly once and in order.
                    assert got == want[uuid], transport

    asyncio.run(run())
