"""Redis Cluster for tests: three masters on loopback, no replicas, each a
real redis-server process in a folder of a temp dir, joined by
``redis-cli --cluster create``.

Each master runs README's configuration ("Running in production", Redis
Cluster) with the test's ports, and `url` is README's broker setting for
them (``redis+cluster://...``);
`shardOf(key)` the index of the master that serves a key; `hang(i)` /
`resume(i)` SIGSTOP / SIGCONT master i, `kill(i)` SIGKILLs it and
`restart(i)` starts it again on its port and folder (its nodes.conf keeps
its slots, its data are gone, as after a crash without persistence).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from zorg.live.tests import readme
from zorg.live.tests.redisfixture import MISSING, findRedisServer
from zorg.live.tests.serverfixture import freePort

MASTERS = 3
README_PORTS = (7000, 7001, 7002)


def nodeConf(port, busPort, folder):
    """README's configuration of a master, on `port` (and `busPort` for
    the cluster's own bus), on loopback, in `folder`."""
    text = readme.port(readme.block(readme.CLUSTER_CONF), README_PORTS[0],
                       port)
    assert 'cluster-enabled yes' in text
    return text + ('cluster-port %d\nbind 127.0.0.1\nprotected-mode yes\n'
                   'save ""\nappendonly no\ndir %s\n' % (busPort, folder))


def findRedisCli(server):
    found = shutil.which('redis-cli')
    if found:
        return found
    beside = os.path.join(os.path.dirname(server), 'redis-cli')
    return beside if os.access(beside, os.X_OK) else None


def ping(port, timeout=0.5):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout) as sock:
            sock.sendall(b'PING\r\n')
            return sock.recv(64).startswith(b'+PONG')
    except OSError:
        return False


class RedisClusterGroup:

    def __init__(self, masters=MASTERS):
        self.executable = findRedisServer()
        if self.executable is None:
            pytest.fail(MISSING, pytrace=False)
        self.cli = findRedisCli(self.executable)
        if self.cli is None:
            pytest.fail('redis-cli is not installed (Debian package '
                        'redis-tools, which redis-server depends on)',
                        pytrace=False)
        self.dir = tempfile.mkdtemp(prefix='zorg-cluster-')
        self.ports = [freePort() for _ in range(masters)]
        self.busPorts = [freePort() for _ in range(masters)]
        self.processes = [None] * masters
        self.logs = []

    def readmeSettings(self):
        """README's <zorg-live> example for these masters, as
        RunningServer's settings."""
        text = readme.block(readme.CLUSTER)
        for old, new in zip(README_PORTS, self.ports):
            text = readme.port(text, old, new)
        return readme.settings(text)

    @property
    def url(self):
        return self.readmeSettings()['broker']

    def _spawn(self, i):
        folder = os.path.join(self.dir, 'node%d' % i)
        os.makedirs(folder, exist_ok=True)
        log = open(os.path.join(folder, 'redis.log'), 'ab')
        self.logs.append(log)
        conf = os.path.join(folder, 'redis.conf')
        with open(conf, 'w') as f:
            f.write(nodeConf(self.ports[i], self.busPorts[i], folder))
        self.processes[i] = subprocess.Popen(
            [self.executable, conf], cwd=folder, stdout=log, stderr=subprocess.STDOUT)

    def start(self, timeout=60):
        for i in range(len(self.ports)):
            self._spawn(i)
        self.waitFor(lambda: all(map(ping, self.ports)),
                     'the servers did not answer', timeout)
        done = subprocess.run(
            [self.cli, '--cluster', 'create']
            + ['127.0.0.1:%d' % port for port in self.ports]
            + ['--cluster-replicas', '0', '--cluster-yes'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout)
        if done.returncode:
            raise RuntimeError('redis-cli --cluster create failed:\n%s'
                               % done.stdout.decode(errors='replace'))
        self.waitForOk(timeout)
        return self

    def state(self, port):
        import redis
        try:
            return redis.Redis(port=port, decode_responses=True,
                               socket_timeout=1).cluster('info').get(
                                   'cluster_state')
        except redis.RedisError:
            return None

    def waitForOk(self, timeout=60):
        """Until every master says cluster_state:ok."""
        self.waitFor(lambda: all(self.state(port) == 'ok'
                                 for port in self.ports),
                     'the cluster is not ok', timeout)

    def shardOf(self, key):
        """The index of the master that serves `key` (the others answer
        MOVED)."""
        import redis
        for i, port in enumerate(self.ports):
            try:
                redis.Redis(port=port, socket_timeout=1).exists(key)
            except redis.ResponseError:
                continue
            return i
        raise LookupError(key)

    def waitFor(self, condition, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError('%s in %ds:\n%s' % (what, timeout,
                                                       self.log()))
            time.sleep(0.05)

    def hang(self, i):
        self.processes[i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.processes[i].send_signal(signal.SIGCONT)

    def kill(self, i):
        process = self.processes[i]
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)

    def restart(self, i, timeout=60):
        self._spawn(i)
        self.waitFor(lambda: ping(self.ports[i]), 'the master did not '
                     'answer again', timeout)
        self.waitForOk(timeout)

    def log(self):
        text = []
        for i in range(len(self.ports)):
            path = os.path.join(self.dir, 'node%d' % i, 'redis.log')
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    text.append('== node%d\n%s' % (i, f.read()[-1500:]))
        return '\n'.join(text)

    def stop(self):
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(10)
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def redisCluster():
    """A started 3-master Redis Cluster of its own for one test."""
    group = RedisClusterGroup()
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def clusterServers(tmp_path, redisCluster):
    """servers(name, **settings): a started `zorg-live serve` process on
    the test's Redis Cluster (README's broker setting) and its one ZEO
    database, as redisfixture.servers makes them on one redis-server."""
    from zorg.live.tests.serverfixture import RunningServer
    from zorg.live.tests.zeofixture import ZEOServer
    made = []
    zeo = ZEOServer(tmp_path / 'zeo').start()
    readmeBroker = redisCluster.readmeSettings()['broker']

    def make(name, **settings):
        settings.setdefault('broker', readmeBroker)
        settings.setdefault('zodb', zeo.zodbSection(name))
        server = RunningServer(tmp_path / name, **settings).start()
        made.append(server)
        return server
    make.zeo = zeo
    make.cluster = redisCluster
    try:
        yield make
    finally:
        for server in made:
            server.kill()
            server.output.close()
        zeo.cleanup()
