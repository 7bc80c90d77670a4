"""Memory stays bounded under churn (issue 19: the demo grew from 68 to
345 MB over 8,600 messages and about 200 page renders, and stayed there).

The cause was zope.security's C checker, which leaks two small objects
per check of a double-underscore name it does not list
(server/checkerleak.py). The first test shows the leak and the
workaround on one proxied object; the second churns a real server and
measures its RSS.
"""

import asyncio
import re
import tracemalloc

import pytest
import zope.security.checker
from zope.security.checker import (
    NamesChecker, ProxyFactory, defineChecker, undefineChecker)

from zorg.live.server.checkerleak import plugCheckerLeak
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_redis_servers import session

UUID = re.compile(r'data-uuid="([^"]+)"')


class Thing:
    title = 'a thing'


def blocksLeftBy(action, count=5000):
    """Memory blocks still allocated after `action` ran `count` times."""
    action()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(count):
            action()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.count_diff for stat in after.compare_to(before, 'filename')
               if stat.count_diff > 0)


@pytest.fixture
def proxied():
    defineChecker(Thing, NamesChecker(['title']))
    try:
        yield ProxyFactory(Thing())
    finally:
        undefineChecker(Thing)


def test_reading_a_dunder_name_through_a_proxy_leaks_nothing(proxied):
    def read():
        return proxied.__class__
    leaked = blocksLeftBy(read)
    plugCheckerLeak()
    assert blocksLeftBy(read) < 50, 'still leaks after plugCheckerLeak'
    if zope.security.checker._c_available:
        # The reason for the workaround; when a zope.security release
        # fixes its checker, this fails: drop server/checkerleak.py.
        assert leaked >= 5000, leaked


def rss(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0


async def churn(s, server, inputs, renders):
    """`renders` pages opened and closed, `inputs` inputs (with ids) on
    them, eight at a time."""
    pages = []
    for _ in range(renders):
        async with s.get(server.url('livepage.html')) as r:
            pages.append(UUID.search(await r.text()).group(1))
    gate = asyncio.Semaphore(8)

    async def one(n):
        async with gate:
            uuid = pages[n % len(pages)]
            async with s.post(
                    server.url('livepage.html/@@client/%s/input' % uuid),
                    json={'handler': 'append',
                          'arguments': ['target', 'm%d' % n]},
                    headers={'X-Live-Input-Id': 'i%d-%s' % (n, uuid[:8])}
            ) as r:
                assert r.status == 200, await r.text()
    await asyncio.gather(*(one(n) for n in range(inputs)))
    for uuid in pages:
        async with s.post(
                server.url('livepage.html/@@client/%s/close' % uuid)) as r:
            assert r.status == 200


def test_rss_stays_bounded_after_churn(tmp_path):
    """After a warm-up churn, a second churn of 2,000 inputs and 40 page
    renders leaves the server's RSS within a few MB: +0.4 MB here, where
    it grew by 11 MB without the workaround."""
    with RunningServer(tmp_path, threads=4, refresh_interval=1,
                       history_size=100) as server:
        async def run():
            async with session() as s:
                await churn(s, server, 500, 20)
                warm = rss(server.process.pid)
                await churn(s, server, 2000, 40)
                return warm, rss(server.process.pid)
        warm, after = asyncio.run(run())
        print('RSS after warm-up %.1f MB, after churn %.1f MB'
              % (warm, after))
        assert after - warm < 5, (warm, after)
