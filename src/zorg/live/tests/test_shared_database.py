"""Issue 20, item 1: several live processes on ONE database.

Three `zorg-live serve` processes on one database -- a ZEO server
(runzeo), or RelStorage in a PostgreSQL cluster that the test makes --
and one redis-server, as README's "Running in production" shows them. Every process stores lines into the
same folder at the same time (so their transactions conflict and are
retried), while a page on every process watches:

* what is stored is the same from every process, at once after a commit
  (each transaction starts from the database's latest state: the other
  processes' invalidations reached it);
* every line that was answered 200 is stored once, nothing refused is
  stored;
* every page shows exactly the stored lines, each once, in the order of
  the commits (its HTML from its render, the rest from its stream: the
  render/subscribe rule under the other processes' commits).
"""

import asyncio
import time

import pytest

from zorg.live.tests import chatcheck, readme
from zorg.live.tests.pgfixture import PostgresCluster
from zorg.live.tests.redisfixture import redisServer  # noqa: F401
from zorg.live.tests.zeofixture import ZEOServer
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_redis_servers import session

pytestmark = pytest.mark.redis

LINES_PER_PROCESS = 8


async def say(s, server, uuid, text):
    """POST one line through `server`; its status (conflicts are retried
    by the publisher; what remains is the answer)."""
    url = server.url('@@snapshot.html/@@client/%s/input' % uuid)
    async with s.post(url, json={'handler': 'say',
                                 'arguments': [text]}) as r:
        return r.status


async def render(s, server):
    page = chatcheck.Page(s, server)
    await page.render()
    return page.lines


async def shareOneDatabase(processes):
    async with session() as s:
        readers = [chatcheck.Page(s, server) for server in processes]
        stop = asyncio.Event()
        reading = [asyncio.ensure_future(r.run(stop)) for r in readers]
        deadline = time.monotonic() + 60
        while not all(getattr(r, 'uuid', None) for r in readers):
            assert time.monotonic() < deadline, 'the pages did not render'
            await asyncio.sleep(0.05)

        # One commit, then every other process sees it at once.
        assert await say(s, processes[0], readers[0].uuid, 'first') == 200
        for server in processes[1:]:
            assert await render(s, server) == ['first']

        # Every process writes at once.
        answers = {'first': 200}

        async def write(i):
            for n in range(LINES_PER_PROCESS):
                text = 'p%d-%d' % (i, n)
                answers[text] = await say(s, processes[i], readers[i].uuid,
                                          text)
        await asyncio.gather(*(write(i) for i in range(len(processes))))
        accepted = {t for t, status in answers.items() if status == 200}
        refused = set(answers) - accepted
        # At least most writes get through the conflicts (retried).
        assert len(accepted) > len(answers) // 2, answers

        stored = [await render(s, server) for server in processes]
        assert stored[0] == stored[1] == stored[2]
        assert sorted(stored[0]) == sorted(accepted)
        assert not refused & set(stored[0])
        assert len(set(stored[0])) == len(stored[0])

        deadline = time.monotonic() + 60
        while any(r.lines != stored[0] for r in readers):
            assert time.monotonic() < deadline, (
                [r.lines for r in readers], stored[0])
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*reading), 60)
        return stored[0]


@pytest.fixture(params=['zeo', 'relstorage'])
def database(request, tmp_path):
    """The <zodb> section of a database that processes share, as README
    shows it (with the test's port), with its server running."""
    if request.param == 'zeo':
        server = ZEOServer(tmp_path / 'zeo').start()
        section = readme.port(readme.block(readme.ZEO), 8100, server.port)
    else:
        server = PostgresCluster().start()
        section = readme.port(readme.block(readme.RELSTORAGE), 5432,
                              server.port)
        assert section == server.zodbSection()
    try:
        yield section
    finally:
        server.cleanup() if request.param == 'zeo' else server.stop()


def startProcesses(tmp_path, zodb, count=3, **settings):
    processes = []
    try:
        for i in range(count):
            processes.append(RunningServer(
                tmp_path / ('p%d' % i), zodb=zodb, refresh_interval=1,
                **settings).start())
    except BaseException:
        stopProcesses(processes)
        raise
    return processes


def stopProcesses(processes):
    for server in processes:
        server.kill()
        server.output.close()


def test_three_processes_on_one_database(tmp_path, database, redisServer):
    broker = readme.settings(readme.port(readme.block(readme.REDIS), 6379,
                                         redisServer.port))
    processes = startProcesses(tmp_path, database, **broker)
    try:
        lines = asyncio.run(shareOneDatabase(processes))
        assert len(lines) > 1 + LINES_PER_PROCESS
        for server in processes:
            assert server.stop() == 0, server.log()
    finally:
        stopProcesses(processes)


def serveOnce(config, *args):
    import subprocess
    import sys
    return subprocess.run(
        [sys.executable, '-m', 'zorg.live', 'serve', config] + list(args),
        capture_output=True, text=True, timeout=120)


def test_a_second_process_on_a_filestorage_is_told_of_zeo_and_relstorage(
        tmp_path):
    with RunningServer(tmp_path / 'a') as first:
        result = serveOnce(first.config, '--port', '0')
    assert result.returncode == 2, result.stderr
    assert 'in use by another process' in result.stderr
    assert '<zeoclient>' in result.stderr and '<relstorage>' in result.stderr
    assert 'its own <zodb>' not in result.stderr


def test_the_shared_storages_parse_in_zope_conf():
    """<relstorage> parses without ``%import relstorage`` (and with it);
    README's ZEO section, and ZODB's own <zeoclient>, parse too."""
    import io
    import ZConfig
    from zorg.live.server.config import schema, unsharedStorages
    conf = """
site-definition /nowhere/site.zcml
%s
<eventlog>
  <logfile>
    path STDOUT
  </logfile>
</eventlog>
"""
    inside = RELSTORAGE_EXAMPLE
    for text in (conf % inside, '%import relstorage\n' + conf % inside):
        options, _ = ZConfig.loadConfigFile(schema(), io.StringIO(text))
        storage = options.databases[0].config.storage
        assert storage.config.getSectionType() == 'relstorage'
        assert storage.config.adapter.config.dsn.startswith("dbname='zodb'")
    zeo = readme.block(readme.ZEO)
    zeoclient = ('<zodb>\n  <zeoclient>\n    server 127.0.0.1:8100\n'
                 '  </zeoclient>\n</zodb>\n')
    for text, kind in ((zeo, 'clientstorage'), (zeoclient, 'zeoclient')):
        options, _ = ZConfig.loadConfigFile(schema(), io.StringIO(
            conf % text))
        storage = options.databases[0].config.storage
        assert storage.config.getSectionType() == kind
        assert not unsharedStorages(options)


RELSTORAGE_EXAMPLE = readme.block(readme.RELSTORAGE)


@pytest.fixture
def relstorageServers(tmp_path, redisServer):
    """The `servers` fixture of redisfixture.py, on one RelStorage
    database instead of ZEO."""
    cluster = PostgresCluster().start()
    made = []

    def make(name, **settings):
        settings.setdefault('broker', redisServer.url)
        settings.setdefault('zodb', cluster.zodbSection())
        server = RunningServer(tmp_path / name, **settings).start()
        made.append(server)
        return server
    try:
        yield make
    finally:
        stopProcesses(made)
        cluster.stop()


def test_between_vote_and_finish_on_another_process_on_relstorage(
        relstorageServers, redisServer):
    """test_exactness's rule-10 scenario on RelStorage: a page rendered
    on B while A's transaction is between vote and finish (A holds
    PostgreSQL's commit lock) shows the line on its stream, once."""
    from zorg.live.tests import test_exactness
    test_exactness.test_between_vote_and_finish_on_another_process(
        relstorageServers, redisServer)
