"""Two real `zorg-live serve` processes on one ZEO database and a
3-master Redis Cluster: a chat across groups on two shards, and a
transaction whose second shard hangs."""

import asyncio
import time

import pytest

from zorg.live.broker.rediscluster import logKey
from zorg.live.tests.clusterfixture import (  # noqa
    clusterServers, redisCluster)
from zorg.live.tests.test_redis_servers import htmls, session, UUID
from zorg.live.tests.zeofixture import readRoot

pytestmark = pytest.mark.redis

# livepage.html is in the group '/' (its context, the root folder) and
# room-a.html in 'room:room-a.html': on two shards (checked below).
PAGES = {'livepage.html': '/', 'room-a.html': 'room:room-a.html'}


async def openPage(s, server, name):
    async with s.get(server.url(name)) as r:
        assert r.status == 200
        return UUID.search(await r.text()).group(1)


async def output(s, server, name, uuid, num):
    url = server.url('@@%s/@@client/%s/output' % (name, uuid))
    async with s.get(url, params={'outputNum': str(num)}) as r:
        assert r.status == 200, await r.text()
        return htmls(await r.json())


async def call(s, server, name, uuid, handler, *arguments):
    url = server.url('@@%s/@@client/%s/input' % (name, uuid))
    async with s.post(url, json={'handler': handler,
                                 'arguments': list(arguments)}) as r:
        return r.status, await r.json()


def relayed(servers):
    db = servers.zeo.open()
    try:
        return readRoot(db, lambda root: list(
            getattr(root, 'zorg_live_relayed', ())))
    finally:
        db.close()


def shards(servers):
    return {group: servers.cluster.shardOf(logKey('zorg:live:', group))
            for group in PAGES.values()}


def test_two_processes_chat_across_groups_on_two_shards(clusterServers):
    assert len(set(shards(clusterServers).values())) == 2
    a, b = clusterServers('a'), clusterServers('b')

    async def run():
        async with session() as s:
            # Each process has a page in each group.
            pages = {}
            for server in (a, b):
                for name in PAGES:
                    pages[server, name] = await openPage(s, server, name)
            nums = dict.fromkeys(pages, 0)

            async def says(text, send, hear):
                """`send` (server, page) sends text; every page of
                `hear` (page names) gets exactly it."""
                waiting = {key: asyncio.ensure_future(
                    output(s, key[0], key[1], pages[key], nums[key]))
                    for key in pages if key[1] in hear}
                server, name = send
                if name == 'room-a.html':
                    status, _ = await call(s, server, name, pages[send],
                                           'relay', text, '/')
                else:
                    status, _ = await call(s, server, name, pages[send],
                                           'append', 'target', text)
                assert status == 200
                for key, future in waiting.items():
                    assert await asyncio.wait_for(future, 20) == [text], key
                    nums[key] += 1

            await says('A in /', (a, 'livepage.html'), ['livepage.html'])
            await says('B in /', (b, 'livepage.html'), ['livepage.html'])
            await says('A in both', (a, 'room-a.html'), list(PAGES))
            await says('B in both', (b, 'room-a.html'), list(PAGES))
    asyncio.run(run())
    assert relayed(clusterServers) == ['A in both', 'B in both']


def test_a_relay_with_a_hung_shard_is_refused_and_nothing_is_kept(
        clusterServers):
    """The shard of '/' hangs (SIGSTOP) while a page relays a line to
    '/' and its own group (on another shard): the input is answered 503
    within the broker's timeout, the line is not stored, and no page is
    ever shown it; once the shard is back, the next line goes through."""
    hung = shards(clusterServers)['/']
    a = clusterServers('a', broker_timeout=1)
    b = clusterServers('b')
    cluster = clusterServers.cluster

    async def run():
        async with session() as s:
            room = await openPage(s, a, 'room-a.html')
            lobby = await openPage(s, b, 'livepage.html')
            watcher = await openPage(s, b, 'room-a.html')
            cluster.hang(hung)
            try:
                started = time.monotonic()
                status, body = await call(s, a, 'room-a.html', room,
                                          'relay', 'lost', '/')
                assert status == 503, body
                assert time.monotonic() - started < 10
            finally:
                cluster.resume(hung)
            deadline = time.monotonic() + 30
            while True:
                status, body = await call(s, a, 'room-a.html', room,
                                          'relay', 'kept', '/')
                if status == 200:
                    break
                assert status == 503 and time.monotonic() < deadline, body
                await asyncio.sleep(0.2)
            for server, name, uuid in ((b, 'livepage.html', lobby),
                                       (b, 'room-a.html', watcher),
                                       (a, 'room-a.html', room)):
                shown = await asyncio.wait_for(
                    output(s, server, name, uuid, 0), 20)
                assert shown == ['kept'], (name, shown)
    asyncio.run(run())
    assert relayed(clusterServers) == ['kept']


async def events(s, server, name, uuid, num):
    url = server.url('@@%s/@@client/%s/output' % (name, uuid))
    async with s.get(url, params={'outputNum': str(num)}) as r:
        assert r.status == 200, await r.text()
        return (await r.json())['events']


def test_a_killed_shard_refuses_then_serves_again(clusterServers):
    """The master of '/' is killed: inputs that publish there, and pages
    that render (their mark needs every shard), answer 503; started again
    (empty), it serves: a new page gets what is sent, and the page that
    was open is told to reload (its group's log is gone) or gets it --
    never silence."""
    shard = shards(clusterServers)['/']
    a = clusterServers('a', broker_timeout=1)
    cluster = clusterServers.cluster

    async def run():
        async with session() as s:
            old = await openPage(s, a, 'livepage.html')
            cluster.kill(shard)
            status, _ = await call(s, a, 'livepage.html', old, 'append',
                                   'target', 'lost')
            assert status == 503
            async with s.get(a.url('livepage.html')) as r:
                assert r.status == 503
            cluster.restart(shard)
            deadline = time.monotonic() + 30
            while True:
                async with s.get(a.url('livepage.html')) as r:
                    if r.status == 200:
                        new = UUID.search(await r.text()).group(1)
                        break
                    assert r.status == 503
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            waiting = asyncio.ensure_future(
                output(s, a, 'livepage.html', new, 0))
            # Until its reader is back too (the vote asks the broker's
            # health): 503, nothing published, as livepage.js resends.
            while True:
                status, _ = await call(s, a, 'livepage.html', new,
                                       'append', 'target', 'back')
                if status == 200:
                    break
                assert status == 503 and time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert await asyncio.wait_for(waiting, 20) == ['back']
            got = await asyncio.wait_for(
                events(s, a, 'livepage.html', old, 0), 20)
            assert (htmls({'events': got}) == ['back']
                    or any(e.get('event') == 'reload' for e in got)
                    or got and got[0].get('recovered') is False), got
    asyncio.run(run())
