"""A Redis that hangs (SIGSTOP) instead of dying: the event loop goes on.

Calls to a stopped redis-server do not fail, they wait (until the socket
timeout). The live server must not wait with them: heartbeats and health
are answered from the loop, health turns 503 within seconds because the
end-to-end probe does not come back, and the pages get their news again
after SIGCONT.
"""

import asyncio
import json
import time

import pytest

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_groups import openPage
from zorg.live.tests.test_redis_servers import session

pytestmark = pytest.mark.redis

ROOM = 'room-a.html'


class Stream:
    """An SSE stream's lines as they come, with the time each came."""

    def __init__(self):
        self.heartbeats = []
        self.messages = []

    async def read(self, s, server, uuid):
        url = server.url('@@%s/@@client/%s/events' % (ROOM, uuid))
        async with s.get(url, timeout=None) as r:
            assert r.status == 200
            while True:
                line = await r.content.readline()
                if not line:
                    return
                if line.startswith(b': heartbeat'):
                    self.heartbeats.append(time.monotonic())
                elif line.startswith(b'data: '):
                    event = json.loads(line[6:])
                    if event.get('name') == 'msg':
                        self.messages.append(event['data']['n'])


async def health(s, server):
    async with s.get(server.url('@@live-health')) as r:
        return r.status


async def until(condition, limit, what):
    deadline = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def test_a_hung_redis_stops_no_heartbeat_and_turns_health_503(
        servers, redisServer):
    server = servers('a', heartbeat_interval=0.5, health_timeout=1)

    async def run():
        async with session() as s:
            uuids = [await openPage(s, server, ROOM) for _ in range(3)]
            streams = [Stream() for _ in uuids]
            readers = [asyncio.ensure_future(st.read(s, server, uuid))
                       for st, uuid in zip(streams, uuids)]

            async def ok():
                return await health(s, server) == 200
            await until(ok, 20, 'health is not 200 to begin with')

            async def burst(first):
                url = server.url('@@%s/@@client/%s/input' % (ROOM, uuids[0]))
                async with s.post(url, json={
                        'handler': 'burst',
                        'arguments': [3, 'x']}) as r:
                    return r.status

            assert await burst(0) == 200

            async def delivered():
                return all(len(st.messages) == 3 for st in streams)
            await until(delivered, 20, 'the first burst did not arrive')

            async def unknownPage(n):
                # A page id this process does not know: finding its record
                # needs Redis, so this request waits (or fails with 503).
                url = server.url('@@%s/@@client/unknown%d/output' % (ROOM, n))
                try:
                    async with s.get(url, params={'outputNum': '0'}) as r:
                        return r.status
                except asyncio.TimeoutError:
                    return None

            redisServer.hang()
            try:
                stopped = time.monotonic()
                waiting = [asyncio.ensure_future(unknownPage(n))
                           for n in range(5)]

                # Within seconds (the probe's health-timeout, not the
                # socket's timeout).
                async def unhealthy():
                    return await health(s, server) == 503
                await until(unhealthy, 6, 'health stayed 200')

                # Heartbeats kept flowing on every stream while Redis hung
                # and requests waited for it: the loop never waited.
                async def beating():
                    return all(len([t for t in st.heartbeats
                                    if t > stopped]) >= 12
                               for st in streams)
                await until(beating, 20, 'heartbeats stopped')
                for st in streams:
                    beats = [t for t in st.heartbeats if t > stopped]
                    gaps = [b - a for a, b in zip(beats, beats[1:])]
                    # Every 0.5 s; a loop blocked by one Redis call would
                    # leave a gap of its socket timeout (5 s).
                    assert max(gaps) < 3, gaps
                statuses = await asyncio.gather(*waiting)
                assert set(statuses) <= {503, 404, None}, statuses
            finally:
                redisServer.resume()
            await until(ok, 30, 'health did not come back after SIGCONT')
            # Input may still fail while the connections recover: retry.
            deadline = time.monotonic() + 30
            while await burst(0) != 200:
                assert time.monotonic() < deadline, 'input never came back'
                await asyncio.sleep(0.2)

            async def again():
                return all(len(st.messages) >= 6 for st in streams)
            await until(again, 30, 'pages got nothing after SIGCONT')
            for st in streams:
                assert st.messages[:3] == [0, 1, 2]
            for reader in readers:
                reader.cancel()

    asyncio.run(run())
