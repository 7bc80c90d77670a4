"""Any process serves any page id: two `zorg-live serve` processes on one
Redis, with a page's requests alternating between them as a round-robin
proxy without sticky sessions sends them (page records shared through the
broker: broker/redispages.py, LivePageManager.adopt, delivery rule 8)."""

import asyncio
import json
import re

import pytest

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_presence_servers import (
    ALICE, BOB, CHAT, Reader, auth, openChat)
from zorg.live.tests.test_redis_servers import UUID, session

pytestmark = pytest.mark.redis

LAST = re.compile(r'data-last-event-id="([^"]+)"')
FAST = dict(refresh_interval=1, presence_timeout=3, client_timeout=3)
LOGIN = {ALICE: 'alice', BOB: 'bob'}


async def openPage(s, server, login):
    """A new chat page: (uuid, the last event id of its script tag)."""
    async with s.get(server.url(CHAT), headers=auth(LOGIN[login])) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    return UUID.search(text).group(1), LAST.search(text).group(1)


def clientURL(server, uuid, step):
    return server.url('%s/@@client/%s/%s' % (CHAT, uuid, step))


async def say(s, server, uuid, text, login=ALICE):
    async with s.post(clientURL(server, uuid, 'input'), headers=auth(LOGIN[login]),
                      json={'handler': 'say', 'arguments': [text]}) as r:
        return r.status, await r.json()


async def output(s, server, uuid, num, last):
    async with s.get(clientURL(server, uuid, 'output'),
                     params={'outputNum': num, 'lastEventId': last}) as r:
        return r.status, await r.text()


def test_alternating_processes_deliver_every_event_once_in_order(servers):
    a, b = servers('a', **FAST), servers('b', **FAST)

    async def run():
        async with session() as s:
            uuid, last = await openPage(s, a, ALICE)
            procs, sent, received = (a, b), [], []
            for num in range(12):
                # Output on A, B, A, ...; each input on the other process
                # (the first one: on B, for a page registered on A).
                here, there = procs[num % 2], procs[(num + 1) % 2]
                sent.append('e%d' % num)
                status, _ = await say(s, there, uuid, sent[-1])
                assert status == 200
                status, text = await output(s, here, uuid, num, last)
                assert status == 200, text
                # A repeat of N (its answer lost) gets the same bytes.
                assert await output(s, here, uuid, num, last) == (200, text)
                events = json.loads(text)['events']
                received += [e['html'] for e in events
                             if e['event'] == 'append']
                last = [e['id'] for e in events if 'id' in e][-1]
            assert received == ['<p class="msg">%s</p>' % t for t in sent]

    asyncio.run(run())


def test_adopted_page_keeps_its_principal_and_unknown_ids_are_404(servers):
    a, b = servers('a', **FAST), servers('b', **FAST)

    async def run():
        async with session() as s:
            uuid, last = await openPage(s, a, ALICE)
            # bob may not send input for alice's page, on either process
            # (on B the page is adopted by that very request).
            for server in (b, a, b):
                status, error = await say(s, server, uuid, 'x', BOB)
                assert (status, error['error']) == (403, 'forbidden')
            assert (await say(s, b, uuid, 'ok'))[0] == 200
            for server in (a, b):
                for unknown in ('nosuchpage', uuid[:-1] + '-'):
                    status, text = await output(s, server, unknown, 0, last)
                    assert status == 404, text
                    assert json.loads(text)['error'] == 'unknown-page'
                    status, error = await say(s, server, unknown, 'x')
                    assert (status, error['error']) == (404, 'unknown-page')

    asyncio.run(run())


def test_presence_of_a_page_served_by_both_leaves_once(servers):
    a, b = servers('a', **FAST), servers('b', **FAST)

    async def run():
        async with session() as s:
            watcher, _online = await openChat(s, a, 'bob')
            reader = Reader(s, a, watcher)
            uuid, last = await openPage(s, a, ALICE)
            await reader.until(('join', ALICE))
            # B adopts alice's page: no second join.
            assert (await say(s, b, uuid, 'hello'))[0] == 200
            status, _text = await output(s, b, uuid, 0, last)
            assert status == 200
            for server in (a, b):
                _uuid, online = await openChat(s, server, 'bob')
                assert online == sorted([ALICE, BOB])
            # Closed through B: the record goes at once; A's copy of the
            # page times out, and then alice leaves, once.
            async with s.post(clientURL(b, uuid, 'close')) as r:
                assert r.status == 200
            await reader.until(('leave', ALICE))
            await reader.untilIdle()
            assert reader.changes().count(('join', ALICE)) == 1
            assert reader.changes().count(('leave', ALICE)) == 1
            # Closed means gone: no process adopts it again.
            for server in (a, b):
                status, _text = await output(s, server, uuid, 1, last)
                assert status == 404

    asyncio.run(run())
