"""A real redis-server for tests, on a free loopback port, in a temp dir.

Use the `redisServer` fixture (import it into the test module) or
RedisServer directly. Nothing is skipped: without redis-server the tests
fail and say how to get it.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from zorg.live.tests.serverfixture import freePort

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


class RedisServer:
    """One redis-server process without persistence; stop() ends it by
    its pid, start() again starts it empty on the same port."""

    def __init__(self, directory=None, port=None):
        self.executable = findRedisServer()
        if self.executable is None:
            pytest.fail(MISSING, pytrace=False)
        self._tmp = None
        if directory is None:
            directory = self._tmp = tempfile.mkdtemp(prefix='zorg-redis-')
        self.dir = str(directory)
        self.port = port or freePort()
        self.process = None

    @property
    def url(self):
        return 'redis://127.0.0.1:%d/0' % self.port

    def start(self, timeout=10):
        self.log = open(os.path.join(self.dir, 'redis.log'), 'ab')
        self.process = subprocess.Popen(
            [self.executable, '--port', str(self.port),
             '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--dir', self.dir, '--protected-mode', 'yes'],
            cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError('redis-server exited with %s; see %s'
                                   % (self.process.returncode,
                                      os.path.join(self.dir, 'redis.log')))
            try:
                with socket.create_connection(('127.0.0.1', self.port),
                                              0.5) as sock:
                    sock.sendall(b'PING\r\n')
                    if sock.recv(64).startswith(b'+PONG'):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('redis-server did not answer on port %d'
                                   % self.port)
            time.sleep(0.02)
        return self

    def hang(self):
        """SIGSTOP: the server keeps its sockets and answers nothing (calls
        hang rather than fail)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        """Kill the server (as a crash would) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.process is not None:
            self.log.close()
        self.process = None

    def cleanup(self):
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


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
    from zorg.live.tests.serverfixture import RunningServer
    from zorg.live.tests.zeofixture import ZEOServer
    made = []
    zeo = ZEOServer(tmp_path / 'zeo').start()

    def make(name, **settings):
        settings.setdefault('broker', redisServer.url)
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
