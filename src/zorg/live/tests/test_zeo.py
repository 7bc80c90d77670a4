"""Several `zorg-live serve` processes on one ZEO database (issue 19,
item 4): what one process stores another renders, and the test counts
what was stored in that one database, not per process."""

import asyncio
import re

import pytest

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_servers import session
from zorg.live.tests.zeofixture import readRoot

pytestmark = pytest.mark.redis

UUID = re.compile(r'data-uuid="([^"]+)"')
LINE = re.compile(r'data-live-key="line-([^"]+)"')


async def render(s, server):
    async with s.get(server.url('snapshot.html')) as r:
        assert r.status == 200
        html = await r.text()
        return UUID.search(html).group(1), LINE.findall(html)


async def say(s, server, uuid, text):
    url = server.url('@@snapshot.html/@@client/%s/input' % uuid)
    async with s.post(url, json={'handler': 'say',
                                 'arguments': [text]}) as r:
        return r.status


def storedLines(zeo):
    db = zeo.open()
    try:
        return readRoot(db, lambda root: list(
            getattr(root, 'zorg_live_snapshot_lines', ())))
    finally:
        db.close()


def test_what_A_stores_B_renders_and_the_database_holds_once(servers):
    a, b = servers('a'), servers('b')
    for server in (a, b):
        with open(server.config) as f:
            assert '<clientstorage>' in f.read()

    async def run():
        async with session() as s:
            pa, lines = await render(s, a)
            assert lines == []
            assert await say(s, a, pa, 'from-a') == 200
            pb, lines = await render(s, b)
            assert lines == ['from-a']
            assert await say(s, b, pb, 'from-b') == 200
            _, lines = await render(s, a)
            assert lines == ['from-a', 'from-b']

    asyncio.run(run())
    assert storedLines(servers.zeo) == ['from-a', 'from-b']


def test_both_survive_a_restart_of_the_database_server(servers):
    a, b = servers('a'), servers('b')

    async def run():
        async with session() as s:
            pa, _ = await render(s, a)
            assert await say(s, a, pa, 'before') == 200
            servers.zeo.stop()
            servers.zeo.start()
            # The processes reconnect by themselves (ZEO's client); the
            # first request after the restart may wait for that.
            pb, lines = await render(s, b)
            assert lines == ['before']
            assert await say(s, b, pb, 'after') == 200
            _, lines = await render(s, a)
            assert lines == ['before', 'after']

    asyncio.run(run())
    assert storedLines(servers.zeo) == ['before', 'after']
