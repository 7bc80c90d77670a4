"""Two real `zorg-live serve` processes sharing one redis-server."""

import asyncio
import re
import time

import aiohttp
import pytest

from zorg.live.broker.redis import RedisBroker
from zorg.live.core.events import Append, encode
from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.serverfixture import RunningServer, freePort

pytestmark = pytest.mark.redis

UUID = re.compile(r'data-uuid="([^"]+)"')
LAST = re.compile(r'data-last-event-id="([^"]+)"')
GROUP = '/'   # the group of livepage.html on the root folder
EVENTS = 10000


def session():
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=60))


async def openPage(s, server):
    async with s.get(server.url('livepage.html')) as r:
        assert r.status == 200
        text = await r.text()
        return UUID.search(text).group(1), LAST.search(text).group(1)


async def output(s, server, uuid, num, last=None):
    params = {'outputNum': str(num)}
    if last is not None:
        params['lastEventId'] = last
    url = server.url('@@livepage.html/@@client/%s/output' % uuid)
    async with s.get(url, params=params) as r:
        return r.status, await r.json()


async def send(s, server, uuid, text):
    url = server.url('@@livepage.html/@@client/%s/input' % uuid)
    async with s.post(url, json={'handler': 'append',
                                 'arguments': ['target', text]}) as r:
        return r.status, await r.json()


async def register(s, server, last):
    url = server.url('livepage.html/@@client/register')
    async with s.post(url, params={'lastEventId': last}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def htmls(body):
    return [e.get('html') for e in body['events']]


def test_a_page_on_A_gets_what_an_input_on_B_publishes(servers):
    a, b = servers('a'), servers('b')

    async def run():
        async with session() as s:
            pa, _ = await openPage(s, a)
            pb, _ = await openPage(s, b)
            waiting = asyncio.ensure_future(output(s, a, pa, 0))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            status, _body = await send(s, b, pb, 'from B')
            assert status == 200
            status, body = await asyncio.wait_for(waiting, 10)
            assert status == 200 and htmls(body) == ['from B']
            # B's own page has it too, with the same id.
            _status, body_b = await output(s, b, pb, 0)
            assert body_b['events'] == body['events']

    asyncio.run(run())


def test_A_dies_and_the_page_continues_on_B_exactly_once(servers):
    a = servers('a', refresh_interval=30)
    b = servers('b', refresh_interval=1)

    async def run():
        async with session() as s:
            pa, _ = await openPage(s, a)
            pb, _ = await openPage(s, b)
            await send(s, b, pb, 'e1')
            _status, body = await output(s, a, pa, 0)
            assert htmls(body) == ['e1']
            last = body['events'][-1]['id']
            # The page waits on A (request 1 acknowledges e1) ...
            waiting = asyncio.ensure_future(output(s, a, pa, 1))
            await asyncio.sleep(0.3)
            a.kill()   # ... and A is killed (SIGKILL).
            with pytest.raises(aiohttp.ClientError):
                await waiting
            for n in range(2, 6):
                status, _ = await send(s, b, pb, 'e%d' % n)
                assert status == 200
            # The client goes to B. B did not serve the page yet: it adopts
            # it from its record in Redis. Without a last event id request
            # 1 is out of B's window (400, as ever) ...
            status, error = await output(s, b, pa, 1)
            assert status == 400 and error['error'] == 'bad-request'
            # ... with the last id it applied, B reads after that id.
            _status, body = await output(s, b, pa, 1, last)
            assert htmls(body) == ['e2', 'e3', 'e4', 'e5']
            # Nothing twice: the next answer has only what is new.
            await send(s, b, pb, 'e6')
            _status, body = await output(s, b, pa, 2,
                                         body['events'][-1]['id'])
            assert htmls(body) == ['e6']
            # A page that registers again (an older client) still can.
            answer = await register(s, b, last)
            assert answer['recovered'] is True
            assert answer['lastEventId'] == last
            _status, body = await output(s, b, answer['uuid'], 0)
            assert htmls(body) == ['e2', 'e3', 'e4', 'e5', 'e6']

    asyncio.run(run())


def test_10000_events_across_processes_arrive_complete_and_in_order(
        servers, redisServer):
    a = servers('a', history_size=EVENTS * 2)
    b = servers('b', history_size=EVENTS * 2)
    # A third process publishes; pages on A and B receive.
    publisher = RedisBroker(redisServer.url, historySize=EVENTS * 2)

    async def receive(s, server, uuid, received):
        num = 0
        while len(received) < EVENTS:
            status, body = await output(s, server, uuid, num)
            assert status == 200, body
            received.extend(e['html'] for e in body['events']
                            if e['event'] == 'append')
            num += 1
        return num

    async def run():
        async with session() as s:
            pages = [(a, (await openPage(s, a))[0]),
                     (b, (await openPage(s, b))[0]),
                     (b, (await openPage(s, b))[0])]
            received = [[] for _ in pages]
            readers = [asyncio.ensure_future(receive(s, server, uuid, got))
                       for (server, uuid), got in zip(pages, received)]
            start = time.monotonic()
            loop = asyncio.get_running_loop()

            def publishAll():
                for n in range(EVENTS):
                    publisher.publish(GROUP, lambda i, n=n: encode(
                        Append('target', str(n)), i), None)
            await loop.run_in_executor(None, publishAll)
            published = time.monotonic() - start
            requests = await asyncio.wait_for(asyncio.gather(*readers), 60)
            took = time.monotonic() - start
            print('\n%d events: published in %.2f s, received by 3 pages '
                  'on 2 processes in %.2f s (%s output requests)'
                  % (EVENTS, published, took, requests))
            expected = [str(n) for n in range(EVENTS)]
            for got in received:
                assert got == expected
            assert took < 60

    try:
        asyncio.run(run())
    finally:
        publisher.close()


def test_the_server_says_which_redis_it_cannot_reach(tmp_path):
    url = 'redis://127.0.0.1:%d/0' % freePort()
    server = RunningServer(tmp_path, broker=url)
    with pytest.raises(RuntimeError) as info:
        server.start()
    assert 'cannot reach the Redis broker at %s' % url in str(info.value)
    server.output.close()


def test_static_resources_are_not_marked(servers, redisServer):
    """Every request the site serves is marked (MARK: a round trip to
    Redis, to every shard of a cluster) before the database opens, but a
    static resource never registers a page: it is served without one. A
    page's render is marked still."""
    import threading

    import redis

    server = servers('a')
    seen, ready = [], threading.Event()
    client = redis.Redis(port=redisServer.port)

    def watch():
        with client.monitor() as m:
            ready.set()
            for command in m.listen():
                seen.append(command['command'])
                if 'the end' in command['command']:
                    return
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)

    def isMark(command):
        # MARK: two keys (the in-flight set and logs), no arguments.
        c = command.split()
        return (c[0] == 'EVALSHA' and c[2] == '2' and len(c) == 5
                and c[3].endswith('inflight'))

    async def get(path):
        async with session() as s:
            async with s.get(server.url(path)) as r:
                assert r.status == 200, path
                await r.read()

    for path in ('++resource++zorgajax/livepage.js',
                 '@@/zorgajax/livepage-common.js'):
        asyncio.run(get(path))
    client.echo('get page')   # MONITOR shows it as 'ECHO get page'
    asyncio.run(get('livepage.html'))
    client.echo('the end')   # every command before it was seen
    watcher.join(10)
    page = seen.index('ECHO get page')
    assert not any(map(isMark, seen[:page]))
    assert any(map(isMark, seen[page:]))
