"""@@live-health: 200 while delivery works, 503 while the broker is away
(the Redis case is in test_redis_presence_servers.py)."""

import asyncio
import json

from zorg.live.broker.memory import MemoryBroker
from zorg.live.page.manager import LivePageManager
from zorg.live.server import health
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_redis_servers import session


class Unreachable(MemoryBroker):
    def health(self):
        return {'kind': 'test', 'connected': False, 'error': 'gone'}


class Silent(MemoryBroker):
    health = None   # a broker that does not say


def test_report():
    assert health.report(LivePageManager()) == (200, {
        'status': 'ok', 'broker': 'memory', 'connected': True,
        'delivering': True, 'pages': 0, 'waiting': 0})
    # What went wrong is for the log, not for a public endpoint.
    assert health.report(LivePageManager(Unreachable())) == (503, {
        'status': 'unavailable', 'broker': 'test', 'connected': False,
        'delivering': True, 'pages': 0, 'waiting': 0})
    assert health.report(LivePageManager(Silent()))[0] == 200
    # Connected, but the probe did not come back: 503 all the same.
    assert health.report(LivePageManager(), delivering=False) == (503, {
        'status': 'unavailable', 'broker': 'memory', 'connected': True,
        'delivering': False, 'pages': 0, 'waiting': 0})


def test_probe_is_delivering_only_while_recent_probes_came_back():
    probe = health.Probe(timeout=3)
    assert probe.delivering(0.0)            # the first one is under way
    probe.passed(10.0)
    assert probe.delivering(10.0 + 3 + probe.interval)
    assert not probe.delivering(10.1 + 3 + probe.interval)   # none since
    probe.failed(11.0, TimeoutError())
    assert not probe.delivering(11.0)
    assert probe.error == 'TimeoutError'
    probe.passed(12.0)
    assert probe.delivering(12.0)


def test_a_probe_through_the_memory_broker_comes_back():
    broker = MemoryBroker()
    assert health.probeOnce(broker, health.Probe(timeout=1))


def test_memory_broker_through_both_server_types(tmp_path):
    server = RunningServer(tmp_path, types=('LiveServerHTTP', 'WSGI-HTTP'))

    async def get(s, path, port=None, method='GET'):
        async with s.request(method, server.url(path, port=port)) as r:
            return r.status, await r.read()

    async def run():
        async with session() as s:
            assert (await get(s, 'livepage.html'))[0] == 200
            for port, kind in zip(server.ports, server.types):
                status, body = await get(s, '@@live-health', port)
                assert status == 200
                expected = (
                    '{"status": "ok", "broker": "memory", "connected": true,'
                    ' "delivering": true, "pages": 1, "waiting": 0')
                if kind == 'LiveServerHTTP':     # its shared connections
                    expected += (', "websockets": 0, "sharedStreams": 0, '
                                 '"refused": {}, "websocket": {}')
                assert body.decode() == expected + '}'
                # Any object's @@live-health, like any view.
                status, _body = await get(s, 'livepage.html/@@live-health',
                                          port)
                assert status == 200
            assert await get(s, '@@live-health', method='HEAD') == (200, b'')
            # LiveServerHTTP answers in its event loop, not in a worker
            # thread of the publisher: no database connection is opened
            # (only @@test-stats' own requests open one each).
            opens = json.loads((await get(s, '@@test-stats'))[1])['dbOpens']
            for _ in range(3):
                await get(s, '@@live-health')
            stats = json.loads((await get(s, '@@test-stats'))[1])
            assert stats['dbOpens'] == opens + 1
            status, _body = await get(s, '@@live-health', method='POST')
            assert status == 405

    with server:
        asyncio.run(run())
