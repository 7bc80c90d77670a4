"""No Redis call runs on the event loop's thread.

The live server runs here, in this process, on loopback, with the Redis
broker on a real redis-server; every command redis-py sends is recorded
with the thread that sent it. Then the server is made to do everything
that needs the broker: stream and long-poll (also from a last event id),
adopt a page another process registered, close a page, drop silent pages,
publish upload progress, answer health. None of it may send a command
from the loop's thread.
"""

import asyncio
import socket
import threading
import time

import aiohttp
import pytest
import zope.component
from redis.connection import AbstractConnection

from zorg.live import testing
from zorg.live.broker.redis import RedisBroker
from zorg.live.interfaces import ILivePageManager
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager
from zorg.live.server.livehttp import LiveServer
from zorg.live.server.settings import Settings
from zorg.live.tests.redisfixture import redisServer  # noqa

pytestmark = pytest.mark.redis


def site(environ, start_response):
    """The site's WSGI application: reads the body, answers 200."""
    stream = environ['wsgi.input']
    while stream.read(65536):
        pass
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


@pytest.fixture
def sent(monkeypatch):
    """The thread idents of every Redis command sent from now on."""
    idents = []
    original = AbstractConnection.send_packed_command

    def spy(self, command, check_health=True):
        idents.append(threading.get_ident())
        return original(self, command, check_health)
    monkeypatch.setattr(AbstractConnection, 'send_packed_command', spy)
    return idents


@pytest.fixture
def liveServer(redisServer, sent):
    testing.setUp()
    LivePageClient.clientTimeout = 0.5
    LivePageClient.refreshInterval = 0.2
    broker = RedisBroker(redisServer.url)
    manager = LivePageManager(broker)
    manager.reapInterval = 0.2
    zope.component.provideUtility(manager, ILivePageManager)
    server = LiveServer('s', site, '127.0.0.1', 0,
                        Settings(threads=2, health_timeout=2))
    loopThread = []

    def run():
        loopThread.append(threading.get_ident())
        asyncio.run(server.serve())
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(('127.0.0.1', server.port), 0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, 'the server did not start'
            time.sleep(0.05)
    try:
        yield server, manager, loopThread[0]
    finally:
        server.stop()
        thread.join(30)
        broker.close()
        testing.tearDown()


def test_the_loop_thread_sends_no_redis_command(liveServer, sent,
                                                redisServer):
    server, manager, loopThread = liveServer
    base = 'http://127.0.0.1:%d/' % server.port
    # Upload progress is for the page's own logged-in user and its
    # declared targets (issue 12): alice, by HTTP basic auth.
    from zope.authentication.interfaces import IAuthentication
    from zope.password.interfaces import IPasswordManager
    from zope.password.password import PlainTextPasswordManager
    from zope.principalregistry.principalregistry import principalRegistry
    zope.component.provideUtility(PlainTextPasswordManager(),
                                  IPasswordManager, 'Plain Text')
    principalRegistry.definePrincipal('alice', 'Alice', login='alice',
                                      password=b'alice')
    zope.component.provideUtility(principalRegistry, IAuthentication)
    from zope.publisher.http import BasicAuthAdapter
    zope.component.provideAdapter(BasicAuthAdapter)
    client = LivePageClient('p1', 'alice', 'g')
    client.progressTargets = ('bar',)
    # Kept here until the upload (a page adopted again from its record
    # has no progress targets: they are not in the record).
    client.clientTimeout = 60
    page = manager.register(client)
    quiet = manager.register(LivePageClient('p3', 'carol', 'g'))
    # A page that only another process knows (its record is in Redis).
    elsewhere = RedisBroker(redisServer.url)
    LivePageManager(elsewhere).register(LivePageClient('p2', 'bob', 'g'))
    first = manager.publish(Append('t', 'one'), 'g')

    async def run():
        async with aiohttp.ClientSession() as s:
            url = base + '@@x/@@client/%s/%s'
            async with s.get(url % ('p1', 'events'),
                             headers={'Last-Event-ID':
                                      manager.broker.formatPosition(
                                          page.delivery.acked)}) as r:
                assert r.status == 200
                while b'"one"' not in await r.content.readline():
                    pass
            async with s.get(url % ('p1', 'output'), params={
                    'outputNum': '0',
                    'lastEventId': manager.broker.formatPosition(first)}
                    ) as r:
                assert r.status == 200, await r.text()
            # Adopted from its record: bob's page, served here now.
            async with s.get(url % ('p2', 'output'),
                             params={'outputNum': '0'}) as r:
                assert r.status == 200, await r.text()
            async with s.post(url % ('p2', 'close')) as r:
                assert r.status == 200, await r.text()
            async with s.post(base + 'upload', data=b'x' * 200000, headers={
                    'X-Live-Progress': 'p1 bar',
                    'Authorization': 'Basic YWxpY2U6YWxpY2U='}) as r:
                assert r.status == 200
            deadline = time.monotonic() + 20
            while True:
                async with s.get(base + '@@live-health') as r:
                    # (Not queryClient: it would adopt the page again.)
                    if r.status == 200 and quiet.uuid not in [
                            c.uuid for c in manager]:
                        break
                assert time.monotonic() < deadline, 'no probe, no reaping'
                await asyncio.sleep(0.1)
    asyncio.run(run())
    elsewhere.close()
    # Progress events reached the page through the broker.
    entries, _ = manager.broker.readStored('g', first, 1000)
    assert any('"progress"' in text for _p, text, _a in entries)
    assert sent, 'the spy saw no command at all'
    assert loopThread not in set(sent)
