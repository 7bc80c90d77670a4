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
import subprocess

import pytest

from zorg.live.tests import readme
from zorg.live.tests.redisfixture import serversOn
from zorg.live.tests.redisgroup import RedisGroup, ping
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


class RedisClusterGroup(RedisGroup):

    prefix = 'zorg-cluster-'

    def __init__(self, masters=MASTERS):
        super().__init__()
        self.cli = findRedisCli(self.executable)
        if self.cli is None:
            pytest.fail('redis-cli is not installed (Debian package '
                        'redis-tools, which redis-server depends on)',
                        pytrace=False)
        self.ports = [freePort() for _ in range(masters)]
        self.busPorts = [freePort() for _ in range(masters)]

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
        conf = os.path.join(self.folder('node%d' % i), 'redis.conf')
        with open(conf, 'w') as f:
            f.write(nodeConf(self.ports[i], self.busPorts[i],
                             os.path.dirname(conf)))
        self._run('node%d' % i, [conf])

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

    def pids(self):
        """The masters' process ids, in the order of `ports`."""
        return [self.processes['node%d' % i].pid
                for i in range(len(self.ports))]

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

    def hang(self, i):
        self.processes['node%d' % i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.processes['node%d' % i].send_signal(signal.SIGCONT)

    def kill(self, i):
        process = self.processes['node%d' % i]
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)

    def restart(self, i, timeout=60):
        self._spawn(i)
        self.waitFor(lambda: ping(self.ports[i]), 'the master did not '
                     'answer again', timeout)
        self.waitForOk(timeout)

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
    database, as redisfixture.servers makes them on one redis-server;
    `servers.cluster` is the RedisClusterGroup."""
    with serversOn(tmp_path, redisCluster.readmeSettings()['broker']) as make:
        make.cluster = redisCluster
        yield make
