"""Presence and health with real `zorg-live serve` processes on one Redis.

alice and bob log in with HTTP basic auth (tests/site.zcml) and open
``browser-chat.html``, a presence page whose HTML lists who is online
(whoIsOnline at render time) and which gets join and leave events.
"""

import asyncio
import base64
import re
import time

import pytest

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_servers import UUID, session

pytestmark = pytest.mark.redis

CHAT = 'browser-chat.html'
ONLINE = re.compile(r'data-principal="([^"]+)"')
ALICE, BOB = 'test.alice', 'test.bob'
FAST = dict(refresh_interval=1, presence_timeout=1.5)


def auth(login):
    token = base64.b64encode(('%s:%s' % (login, login)).encode()).decode()
    return {'Authorization': 'Basic ' + token}


@pytest.fixture
def fastServers(servers):
    """`servers` with FAST settings unless a test gives its own."""
    def make(name, **settings):
        return servers(name, **dict(FAST, **settings))
    return make


async def openChat(s, server, login):
    """A new chat page of `login` on `server`: (uuid, who is online)."""
    async with s.get(server.url(CHAT), headers=auth(login)) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    return UUID.search(text).group(1), ONLINE.findall(text)


async def close(s, server, uuid):
    async with s.post(server.url('%s/@@client/%s/close' % (CHAT, uuid))) as r:
        assert r.status == 200


class Reader:
    """Reads one page's answers in order, keeping its join/leave events."""

    def __init__(self, s, server, uuid):
        self.s, self.server, self.uuid = s, server, uuid
        self.num = 0
        self.seen = []   # (event, principal, id)

    async def once(self):
        url = self.server.url('%s/@@client/%s/output' % (CHAT, self.uuid))
        async with self.s.get(url, params={'outputNum': self.num}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        self.num += 1
        found = [(e['event'], e.get('principal'), e.get('id'))
                 for e in body['events'] if e['event'] in ('join', 'leave')]
        self.seen += found
        return body['events'] == [{'event': 'idle'}]

    async def untilIdle(self):
        """Everything published so far (an idle answer ends it)."""
        while not await self.once():
            pass
        return self.changes()

    async def until(self, change, limit=30):
        deadline = time.monotonic() + limit
        while change not in self.changes():
            assert time.monotonic() < deadline, (change, self.seen)
            await self.once()

    def changes(self):
        return [(event, principal) for event, principal, _id in self.seen]


def test_two_processes_share_presence(fastServers):
    a, b = fastServers('a'), fastServers('b')

    async def run():
        async with session() as s:
            pa, online = await openChat(s, a, 'alice')
            assert online == [ALICE]
            pb, online = await openChat(s, b, 'bob')
            assert online == [ALICE, BOB]    # B knows alice, who is on A
            pb2, online = await openChat(s, a, 'bob')   # bob again, on A
            assert online == [ALICE, BOB]
            pab, online = await openChat(s, b, 'alice')  # alice again, on B
            onA, onB = Reader(s, a, pa), Reader(s, b, pab)
            # The join on B is seen on A, once for bob's two pages.
            assert await onA.untilIdle() == [('join', ALICE), ('join', BOB)]
            # pab's HTML shows both; its cursor is the request's mark, a
            # moment before the snapshot (delivery.py, rule 10), so joins
            # published just before may come once more: nothing else.
            seenOnB = len(await onB.untilIdle())
            assert set(onB.changes()) <= {('join', ALICE), ('join', BOB)}
            # bob closes his page on B: he still has one on A.
            await close(s, b, pb)
            assert await onA.untilIdle() == [('join', ALICE), ('join', BOB)]
            # He closes that one too: one leave, on both processes.
            await close(s, a, pb2)
            assert await onA.untilIdle() == [
                ('join', ALICE), ('join', BOB), ('leave', BOB)]
            assert (await onB.untilIdle())[seenOnB:] == [('leave', BOB)]
            assert onA.seen[-1] == onB.seen[-1]   # the same event (its id)
            for server in (a, b):
                _uuid, online = await openChat(s, server, 'alice')
                assert online == [ALICE]

    asyncio.run(run())


def test_three_processes_agree_and_a_killed_one_leaves(fastServers):
    a, b, c = fastServers('a'), fastServers('b'), fastServers('c')

    async def run():
        async with session() as s:
            pa, _ = await openChat(s, a, 'alice')
            pab, _ = await openChat(s, b, 'alice')
            await openChat(s, c, 'bob')
            await openChat(s, c, 'alice')   # alice is on C too
            # whoIsOnline (in each page's HTML) agrees on every process.
            for server in (a, b, c):
                _uuid, online = await openChat(s, server, 'alice')
                assert online == [ALICE, BOB]
            onA, onB = Reader(s, a, pa), Reader(s, b, pab)
            await onA.untilIdle()
            await onB.untilIdle()
            c.kill()   # SIGKILL: C says nothing; its heartbeat stops
            # After the presence timeout bob (only on C) leaves; alice
            # (also on A and B) does not.
            await onA.until(('leave', BOB))
            await onA.untilIdle()
            await onB.until(('leave', BOB))
            await onB.untilIdle()
            for reader in (onA, onB):
                leaves = [change for change in reader.changes()
                          if change[0] == 'leave']
                assert leaves == [('leave', BOB)]
            assert onA.seen[-1] == onB.seen[-1]
            for server in (a, b):
                _uuid, online = await openChat(s, server, 'alice')
                assert online == [ALICE]

    asyncio.run(run())


async def health(s, server, port):
    async with s.get(server.url('@@live-health', port=port)) as r:
        return r.status, await r.json()


def test_health_is_503_while_redis_is_down(fastServers, redisServer):
    server = fastServers('a', types=('LiveServerHTTP', 'WSGI-HTTP'))

    async def waitFor(s, status, limit=30):
        # Both servers of the process: the event loop's answer and the
        # Zope view's.
        deadline = time.monotonic() + limit
        while True:
            answers = [await health(s, server, port) for port in server.ports]
            if all(code == status for code, _body in answers):
                return answers
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.1)

    async def run():
        async with session() as s:
            for _code, body in await waitFor(s, 200):
                # (LiveServerHTTP also counts its shared connections, and
                # the connections it refused.)
                for name in ('websockets', 'sharedStreams', 'refused',
                             'websocket'):
                    body.pop(name, None)
                assert body == {'status': 'ok', 'broker': 'redis',
                                'connected': True, 'delivering': True,
                                'pages': 0, 'waiting': 0}
            redisServer.stop()
            for _code, body in await waitFor(s, 503):
                assert body['status'] == 'unavailable'
                # The probe may fail before the reader notices.
                assert body['connected'] is False or not body['delivering']
            redisServer.start()
            for _code, body in await waitFor(s, 200):
                assert body['status'] == 'ok'

    asyncio.run(run())

