"""A real redis-server for tests, on a free loopback port, in a temp dir.

Use the `redisServer` fixture (import it into the test module) or
RedisServer directly. Nothing is skipped: without redis-server the tests
fail and say how to get it.
"""

import contextlib
import os
import shutil
import socket

import pytest

from zorg.live.tests.daemon import Daemon

MISSING = ('redis-server is not installed (looked for it on PATH and in '
           '/usr/bin, /usr/local/bin): `make test` installs it (Debian '
           'package redis-server), or install it yourself')


def findRedisServer():
    found = shutil.which('redis-server')
    if found:
        return found
    for path in ('/usr/bin/redis-server', '/usr/local/bin/redis-server'):
        if os.access(path, os.X_OK):
            return path
    return None


class RedisServer(Daemon):
    """One redis-server process without persistence; stop() ends it by
    its pid, start() again starts it empty on the same port."""

    prefix = 'zorg-redis-'

    def __init__(self, directory=None, port=None):
        self.executable = findRedisServer()
        if self.executable is None:
            pytest.fail(MISSING, pytrace=False)
        super().__init__(directory, port)

    @property
    def url(self):
        return 'redis://127.0.0.1:%d/0' % self.port

    def start(self, timeout=10):
        return self.spawn(
            [self.executable, '--port', str(self.port),
             '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--dir', self.dir, '--protected-mode', 'yes'],
            os.path.join(self.dir, 'redis.log'), self.answers, timeout,
            'redis-server')

    def answers(self):
        try:
            with socket.create_connection(('127.0.0.1', self.port),
                                          0.5) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(64).startswith(b'+PONG')
        except OSError:
            return False


@pytest.fixture
def redisServer(tmp_path):
    """A running, empty redis-server of its own for one test."""
    directory = tmp_path / 'redis'
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def servers(tmp_path, redisServer):
    """servers(name, **settings): a started `zorg-live serve` process on
    the test's redis-server and its one ZEO database, shared by every
    process of the test as production processes share theirs (settings
    as RunningServer takes them); all are killed at the end of the test.
    `servers.zeo` is the ZEOServer (read what was stored with its
    `open()`)."""
    with serversOn(tmp_path, redisServer.url) as make:
        yield make


@contextlib.contextmanager
def serversOn(tmp_path, broker):
    """The `servers` fixture's function, on the broker URL `broker`."""
    from zorg.live.tests.serverfixture import RunningServer
    from zorg.live.tests.zeofixture import ZEOServer
    made = []
    zeo = ZEOServer(tmp_path / 'zeo').start()

    def make(name, **settings):
        settings.setdefault('broker', broker)
        settings.setdefault('zodb', zeo.zodbSection(name))
        server = RunningServer(tmp_path / name, **settings).start()
        made.append(server)
        return server
    make.zeo = zeo
    try:
        yield make
    finally:
        for server in made:
            server.kill()
            server.output.close()
        zeo.cleanup()
