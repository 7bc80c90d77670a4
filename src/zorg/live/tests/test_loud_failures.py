"""Failures are loud: a failing heartbeat round is logged and the next one
runs, the Redis reader logs the traceback of what it did not expect, the
health probe turns 503 when delivery breaks with the connection up, and
the reaper never drops a page that asked again meanwhile."""

import asyncio
import logging
import time

import pytest
import redis

from zorg.live.broker.redis import RedisBroker
from zorg.live.page.client import LivePageClient
from zorg.live.page.manager import LivePageManager
from zorg.live.server.asgi import LiveApp
from zorg.live.server.settings import Settings
from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.test_redis_servers import session


def test_the_heartbeat_task_survives_an_exception_and_logs_it(
        caplog, monkeypatch):
    monkeypatch.setattr(LivePageClient, 'heartbeatInterval', 0.02)
    app = LiveApp(None, Settings(), manager=LivePageManager())

    async def run():
        await app.startup()
        rounds = []

        def beat():
            rounds.append(1)
            if len(rounds) == 1:
                raise RuntimeError('a broken transport')
        app.fanout.beat = beat
        deadline = time.monotonic() + 10
        while len(rounds) < 3:
            assert time.monotonic() < deadline, 'no heartbeats after it'
            await asyncio.sleep(0.01)
        await app.shutdown()
    with caplog.at_level(logging.ERROR, 'zorg.live.server'):
        asyncio.run(run())
    failed = [r for r in caplog.records
              if 'heartbeats failed' in r.getMessage()]
    assert failed and failed[0].exc_info is not None


@pytest.mark.redis
def test_the_reader_logs_the_traceback_of_an_unexpected_error(
        redisServer, caplog, monkeypatch):
    original = RedisBroker._readOnce
    calls = []

    def readOnce(self):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError('a bug, not a lost connection')
        return original(self)
    monkeypatch.setattr(RedisBroker, '_readOnce', readOnce)
    monkeypatch.setattr(RedisBroker, 'block', 0.1)
    with caplog.at_level(logging.WARNING, 'zorg.live.broker.redis'):
        broker = RedisBroker(redisServer.url)
        try:
            deadline = time.monotonic() + 10
            while len(calls) < 3:
                assert time.monotonic() < deadline, 'the reader stopped'
                time.sleep(0.01)
        finally:
            broker.close()
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert logged and 'a bug' in str(logged[0].exc_info[1])


@pytest.mark.redis
def test_health_is_503_when_delivery_breaks_with_the_connection_up(
        servers, redisServer):
    server = servers('a', health_timeout=1)
    control = redis.Redis.from_url(redisServer.url)

    async def health(s):
        async with s.get(server.url('@@live-health')) as r:
            return r.status, await r.json()

    async def until(s, status, limit):
        deadline = time.monotonic() + limit
        while True:
            code, body = await health(s)
            if code == status:
                return body
            assert time.monotonic() < deadline, (code, body)
            await asyncio.sleep(0.1)

    async def run():
        async with session() as s:
            await until(s, 200, 20)
            # Writes wait; the connections stay up, and reads answer.
            control.execute_command('CLIENT', 'PAUSE', '6000', 'WRITE')
            try:
                body = await until(s, 503, 5)
                assert body['connected'] is True
                assert body['delivering'] is False
            finally:
                control.execute_command('CLIENT', 'UNPAUSE')
            await until(s, 200, 20)
    asyncio.run(run())
    control.close()


def test_the_reaper_checks_again_under_the_lock():
    manager = LivePageManager()
    client = manager.register(LivePageClient('p1', 'zope.anybody', 'g',
                                             anonymous=True))
    answers = iter([True, False])   # expired when listed, then it asked

    client.expired = lambda now: next(answers)
    assert manager.reapExpired() == 0
    assert manager.queryClient('p1') is client
