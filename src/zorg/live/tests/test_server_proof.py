"""The point of zorg.live, proven on the real servers (issue: LiveServerHTTP).

With two worker threads, LiveServerHTTP holds 500 waiting pages while
ordinary pages still answer, and its live requests never open the database;
WSGI-HTTP with the same two threads can only hold two.
"""

import asyncio
import re
import time

import aiohttp
import pytest

from zorg.live.tests.serverfixture import RunningServer

PAGES = 500
UUID = re.compile(r'data-uuid="([^"]+)"')


async def stats(session, server):
    async with session.get(server.url('@@test-stats')) as r:
        assert r.status == 200
        return await r.json()


async def openPage(session, server, name='livepage.html', port=None):
    async with session.get(server.url(name, port)) as r:
        assert r.status == 200
        return UUID.search(await r.text()).group(1)


async def output(session, server, uuid, num, port=None):
    url = server.url('@@livepage.html/@@client/%s/output' % uuid, port)
    async with session.get(url, params={'outputNum': str(num)}) as r:
        return r.status, await r.json()


async def send(session, server, uuid, text, port=None):
    url = server.url('@@livepage.html/@@client/%s/input' % uuid, port)
    async with session.post(url, json={'handler': 'append',
                                       'arguments': ['target', text]}) as r:
        return r.status, await r.text()


async def waitUntil(session, server, predicate, limit=60):
    """Ask @@test-stats until predicate(stats) holds (bounded)."""
    deadline = time.monotonic() + limit
    while True:
        current = await stats(session, server)
        if predicate(current):
            return current
        assert time.monotonic() < deadline, 'gave up waiting: %s' % current
        await asyncio.sleep(0.1)


def session():
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=120))


def test_liveserver_holds_500_waiting_pages_with_2_threads(tmp_path):
    async def run(server):
        async with session() as s:
            uuids = [await openPage(s, server) for _ in range(PAGES)]
            polls = [asyncio.ensure_future(output(s, server, u, 0))
                     for u in uuids]
            await waitUntil(s, server, lambda st: st['waiting'] >= PAGES)
            # Ordinary requests still answer while 500 pages wait ...
            assert await openPage(s, server)
            current = await stats(s, server)
            assert current['waiting'] >= PAGES
            assert not any(p.done() for p in polls)
            # ... and one input wakes every waiting page at once.
            status, _body = await send(s, server, uuids[0], 'to everyone')
            assert status == 200
            answers = await asyncio.gather(*polls)
        texts = [[e.get('html') for e in body['events']]
                 for _status, body in answers]
        assert all(status == 200 for status, _ in answers)
        assert texts == [['to everyone']] * PAGES

    with RunningServer(tmp_path, threads=2, refresh_interval=60) as server:
        asyncio.run(run(server))


def test_live_requests_never_open_the_database(tmp_path):
    async def run(server):
        async with session() as s:
            uuids = [await openPage(s, server) for _ in range(100)]
            before = (await stats(s, server))['dbOpens']
            for num in range(10):  # 100 pages x 10 rounds = 1000 outputs
                answers = await asyncio.gather(
                    *(output(s, server, u, num) for u in uuids))
                assert all(status == 200 for status, _ in answers)
            after = (await stats(s, server))['dbOpens']
            # Only the stats request itself opened the database.
            assert after - before == 1
            # Ordinary requests do open it, one each.
            await openPage(s, server)
            assert (await stats(s, server))['dbOpens'] - after == 2

    with RunningServer(tmp_path, threads=2, refresh_interval=0.01) as server:
        asyncio.run(run(server))


def test_wsgi_http_holds_only_as_many_waiting_pages_as_threads(tmp_path):
    async def run(server):
        async with session() as s:
            uuids = [await openPage(s, server) for _ in range(PAGES)]
            answers = await asyncio.gather(
                *(output(s, server, u, 0) for u in uuids))
            assert [b['events'] for _s, b in answers] == \
                [[{'event': 'idle'}]] * PAGES
            # Every page was answered, but never more than two waited at
            # once: the others queued for one of the two threads.
            assert (await stats(s, server))['peakWaiting'] == 2

    with RunningServer(tmp_path, types=('WSGI-HTTP',), threads=2,
                       refresh_interval=0.02) as server:
        asyncio.run(run(server))
