"""Issue 20, item 2: several processes from one configuration.

``zorg-live serve --workers N`` (or ``workers N`` in <server>): a
supervising parent binds the sockets once and runs N worker processes on
them (server/workers.py). Tested with real processes: a worker killed
(SIGKILL) mid-chat is started again, its pages move to the other worker
(adoption through the Redis broker), nothing answered is lost or doubled;
SIGTERM to the parent stops every worker cleanly. More than one worker on
a FileStorage is refused with a message that points at ZEO/RelStorage.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from zorg.live.tests import chatcheck, readme
from zorg.live.tests.pgfixture import postgres  # noqa: F401 (fixture)
from zorg.live.tests.redisfixture import redisServer  # noqa: F401
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.zeofixture import zeoServer  # noqa: F401 (fixture)

WORKER = re.compile(r'worker (\d+) started \(pid (\d+)\)')


def workers(server):
    """{slot: pid} of the running workers, from the parent's log."""
    found = {}
    for match in WORKER.finditer(server.log()):
        found[int(match.group(1))] = int(match.group(2))
    return found


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(') ')[1][0] != 'Z'
    except FileNotFoundError:
        return False


def waitFor(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def serveOnce(config, *args):
    return subprocess.run(
        [sys.executable, '-m', 'zorg.live', 'serve', config] + list(args),
        capture_output=True, text=True, timeout=120)


def test_several_workers_on_a_filestorage_are_refused(tmp_path):
    server = RunningServer(tmp_path / 'a')
    result = serveOnce(server.config, '--workers', '2')
    assert result.returncode == 2, result.stderr
    assert '2 workers cannot share a <filestorage>' in result.stderr
    assert 'ZEO (<zeoclient>' in result.stderr
    assert 'RelStorage (<relstorage>' in result.stderr


def test_several_workers_need_the_redis_broker(tmp_path, zeoServer):
    server = RunningServer(tmp_path / 'a', zodb=zeoServer.zodbSection(),
                           broker='memory://')
    result = serveOnce(server.config, '--workers', '2')
    assert result.returncode == 2, result.stderr
    assert '2 workers need the Redis broker' in result.stderr


@pytest.mark.redis
def test_workers_serve_wsgi_http_on_the_same_socket(
        tmp_path, zeoServer, redisServer):
    """Both server types run in every worker on the parent's sockets."""
    import urllib.request
    server = RunningServer(tmp_path / 'a', zodb=zeoServer.zodbSection(),
                           types=('LiveServerHTTP', 'WSGI-HTTP'),
                           broker=redisServer.url, args=['--workers', '2'])
    with server:
        waitFor(lambda: len(workers(server)) == 2, 'two workers')
        for port in server.ports:
            for _ in range(6):
                with urllib.request.urlopen(
                        server.url('livepage.html', port), timeout=30) as r:
                    assert r.status == 200
        assert server.stop() == 0, server.log()


def test_workers_in_zope_conf_must_agree(tmp_path):
    server = RunningServer(tmp_path / 'a', types=('LiveServerHTTP',
                                                  'WSGI-HTTP'))
    with open(server.config) as f:
        text = f.read()
    text = text.replace('  type LiveServerHTTP\n',
                        '  type LiveServerHTTP\n  workers 3\n')
    text = text.replace('  type WSGI-HTTP\n', '  type WSGI-HTTP\n  workers 2\n')
    with open(server.config, 'w') as f:
        f.write(text)
    result = serveOnce(server.config)
    assert result.returncode == 2, result.stderr
    assert 'different numbers of workers (2, 3)' in result.stderr


def test_port_moves_the_first_server(tmp_path):
    from zorg.live.tests.serverfixture import freePort
    port = freePort()
    server = RunningServer(tmp_path / 'a', args=['--port', str(port)])
    with server:
        assert server.port == port
        assert server.stop() == 0


class ReadmeWorkers(RunningServer):
    """A process whose <server> is README's ``workers 3`` example (on the
    test's port)."""

    def writeConfig(self):
        super().writeConfig()
        example = readme.block(readme.WORKERS).replace('<server>',
                                                       '<server s0>')
        example = readme.port(example, 8080, self.ports[0])
        with open(self.config) as f:
            text = f.read()
        with open(self.config, 'w') as f:
            f.write(re.sub(r'<server s0>.*?</server>\n', example, text,
                           flags=re.S))


@pytest.mark.redis
def test_a_killed_worker_is_restarted_and_its_pages_move(
        tmp_path, postgres, redisServer):
    server = ReadmeWorkers(
        tmp_path / 'site', zodb=postgres.zodbSection(),
        broker=redisServer.url, refresh_interval=1)
    with server:
        waitFor(lambda: len(workers(server)) == 3, 'three workers')
        first = workers(server)
        counts = asyncio.run(killedMidChat(server, first))
        assert counts == dict.fromkeys(counts, 0), counts
        now = workers(server)
        # The two killed workers were started again, the third not.
        assert now[0] != first[0] and now[1] != first[1]
        assert now[2] == first[2]
        assert all(alive(pid) for pid in now.values())
        assert server.stop() == 0, server.log()
        assert not any(alive(pid) for pid in now.values())
        assert 'all workers stopped' in server.log()


async def killedMidChat(server, first):
    """12 lines; worker 0 is killed after the 4th, worker 1 after the
    8th; each request of the pages is a new connection, which the kernel
    gives to any worker, so they move between workers all along."""
    async with chatcheck.session() as s:
        page = chatcheck.Page(s, server)
        writer = chatcheck.Writer(s, server)
        stop = asyncio.Event()
        reading = asyncio.ensure_future(page.run(stop))
        for n in range(12):
            if n in (4, 8):
                slot = n // 4 - 1
                os.kill(first[slot], signal.SIGKILL)
                await asyncio.to_thread(
                    waitFor, lambda: workers(server)[slot] != first[slot],
                    'worker %d was not started again' % slot)
            assert await writer.say('m%d' % n) == 200, writer.answers
        stored = await chatcheck.Page(s, server).render()
        deadline = time.monotonic() + 60
        while page.lines != stored:
            assert time.monotonic() < deadline, (page.lines, stored)
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(reading, 60)
        assert stored == ["m%d" % n for n in range(12)]
        assert page.reloads == 0    # adopted, continued from its history
        return chatcheck.tally(writer.answers, stored, [page.lines])
