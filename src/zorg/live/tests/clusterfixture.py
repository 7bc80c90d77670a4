"""Redis Cluster for tests: three masters on loopback (and, for
`replicatedCluster`, a replica of each), each a real redis-server process
in a folder of a temp dir, joined by ``redis-cli --cluster create``.

Each master runs README's configuration ("Running in production", Redis
Cluster) with the test's ports, and `url` is README's broker setting for
them (``redis+cluster://...``);
`shardOf(key)` the index of the master that serves a key; `hang(i)` /
`resume(i)` SIGSTOP / SIGCONT master i, `kill(i)` SIGKILLs it and
`restart(i)` starts it again on its port and folder (its nodes.conf keeps
its slots, its data are gone, as after a crash without persistence).
With replicas, `waitForFailover(i)` waits until master i's replica has
taken its slots, and a master started again after that rejoins as the
new master's replica (`waitForReplica(i)`).
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


def nodeConf(port, busPort, folder, nodeTimeout=None):
    """README's configuration of a master, on `port` (and `busPort` for
    the cluster's own bus), on loopback, in `folder`; `nodeTimeout`: the
    test's cluster-node-timeout (ms) instead of README's."""
    text = readme.port(readme.block(readme.CLUSTER_CONF), README_PORTS[0],
                       port)
    assert 'cluster-enabled yes' in text
    if nodeTimeout is not None:
        # The later line wins: a failover in seconds, not README's 15.
        text += 'cluster-node-timeout %d\n' % nodeTimeout
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

    def __init__(self, masters=MASTERS, replicas=0, nodeTimeout=None):
        super().__init__()
        self.replicas = replicas
        self.nodeTimeout = nodeTimeout
        self.cli = findRedisCli(self.executable)
        if self.cli is None:
            pytest.fail('redis-cli is not installed (Debian package '
                        'redis-tools, which redis-server depends on)',
                        pytrace=False)
        # The masters first, then their replicas (redis-cli --cluster
        # create takes the first ones given as masters).
        nodes = masters * (1 + replicas)
        self.ports = [freePort() for _ in range(nodes)]
        self.busPorts = [freePort() for _ in range(nodes)]

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
                             os.path.dirname(conf), self.nodeTimeout))
        self._run('node%d' % i, [conf])

    def start(self, timeout=60):
        for i in range(len(self.ports)):
            self._spawn(i)
        self.waitFor(lambda: all(map(ping, self.ports)),
                     'the servers did not answer', timeout)
        done = subprocess.run(
            [self.cli, '--cluster', 'create']
            + ['127.0.0.1:%d' % port for port in self.ports]
            + ['--cluster-replicas', str(self.replicas), '--cluster-yes'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout)
        if done.returncode:
            raise RuntimeError('redis-cli --cluster create failed:\n%s'
                               % done.stdout.decode(errors='replace'))
        self.waitForOk(timeout)
        self.keys = {}
        for n in range(1000):
            self.keys.setdefault(self.shardOf('k%d' % n), 'k%d' % n)
        if self.replicas:
            for i in range(len(self.ports) // (1 + self.replicas)):
                self.waitForReplica(i, timeout)
        return self

    def info(self, port):
        import redis
        try:
            return redis.Redis(port=port, decode_responses=True,
                               socket_timeout=1).info('replication')
        except redis.RedisError:
            return {}

    def replicaOf(self, i):
        """The port of the node that replicates node i (None: none)."""
        for port in self.ports:
            info = self.info(port)
            if (info.get('role') == 'slave'
                    and info.get('master_port') == self.ports[i]
                    and info.get('master_link_status') == 'up'):
                return port
        return None

    def waitForReplica(self, i, timeout=60):
        """Until node i is a master with a replica in sync, or the replica
        of one, in sync."""
        def ready():
            info = self.info(self.ports[i])
            if info.get('role') == 'slave':
                return info.get('master_link_status') == 'up'
            return self.replicaOf(i) is not None
        self.waitFor(ready, 'node %d has no replica in sync' % i, timeout)

    def waitForFailover(self, i, timeout=60):
        """After kill(i): until another node serves master i's slots and
        every node alive says cluster_state:ok; returns its index."""
        key = self.keyOn(i)
        found = []

        def done():
            alive = [n for n, port in enumerate(self.ports)
                     if n != i and ping(port)]
            if not all(self.state(self.ports[n]) == 'ok' for n in alive):
                return False
            found[:] = [n for n in alive if self.serves(n, key)]
            return bool(found)
        self.waitFor(done, 'no failover of node %d' % i, timeout)
        return found[0]

    def keyOn(self, i):
        """A key that master i served when the cluster was made."""
        return self.keys[i]

    def serves(self, n, key):
        """Whether node n answers for `key` (not MOVED, not down)."""
        import redis
        try:
            redis.Redis(port=self.ports[n], socket_timeout=1).exists(key)
        except redis.RedisError:
            return False
        return True

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
        for i in range(len(self.ports)):
            if self.serves(i, key):
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
def replicatedCluster():
    """A started Redis Cluster of 3 masters and a replica of each, whose
    nodes fail a master over after 3 s (README's: 15 s)."""
    group = RedisClusterGroup(replicas=1, nodeTimeout=3000)
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
