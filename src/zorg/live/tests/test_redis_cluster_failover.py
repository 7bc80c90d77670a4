"""The Redis Cluster broker when a master fails over to its replica: the
processes follow the slots to the promoted node without a restart, the
log's history is still there, and nothing answered is lost."""

import asyncio
import time

import pytest
import redis

from zorg.live.broker.rediscluster import ClusterBroker, logKey
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.testing import SNAPSHOT_GROUP
from zorg.live.tests.clusterfixture import replicatedCluster  # noqa
from zorg.live.tests.redisfixture import serversOn
from zorg.live.tests.test_sentinel import failoverChat
from zorg.live.tests.test_redis_cluster import (
    PREFIX, onShards, shown, shownOrNone, text, until)

pytestmark = pytest.mark.redis


def publishes(broker, group, body):
    try:
        broker.publish(group, text(body))
    except BrokerUnavailable:
        return False
    return True


def test_a_master_failed_over_is_followed_without_a_restart(
        replicatedCluster):
    cluster = replicatedCluster
    (group, index), = onShards(cluster, logKey(PREFIX, '%s'), 1)
    a = ClusterBroker(cluster.url, timeout=1)
    b = ClusterBroker(cluster.url, timeout=1)
    try:
        base = a.latest(group)
        b.latest(group)
        b.publish(group, text('before'))
        until(lambda: shown(a, group, base) == ['before'])
        # On the replica before the master dies (asynchronous replication
        # is broker-replicas' matter, tested with the servers).
        assert redis.Redis(port=cluster.ports[index]).execute_command(
            'WAIT', 1, 5000) == 1
        cluster.kill(index)
        promoted = cluster.waitForFailover(index)
        assert promoted != index
        # Both processes follow the slots: publishes pass again, and A's
        # reader shows what B publishes on the promoted master.
        until(lambda: publishes(b, group, 'after'))
        until(lambda: shownOrNone(a, group, base) == ['before', 'after'])
        entries, recovered = a.readStored(group, base)
        assert recovered and len(entries) == 2
        until(lambda: a.health()['connected'] and b.health()['connected'])
        a.mark()
        assert ('127.0.0.1:%d' % cluster.ports[promoted]) in a.shards
    finally:
        a.close()
        b.close()


class FailingMaster:
    """test_sentinel's failover chat, on a Redis Cluster: `killMaster()`
    SIGKILLs the master of the chat's group; `failBack()` waits until its
    replica took its slots, starts it again (it rejoins as that replica's
    replica) and waits until it is in sync; it returns the seconds of the
    failover alone."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.index = cluster.shardOf(logKey(PREFIX, SNAPSHOT_GROUP))

    def killMaster(self):
        self.started = time.monotonic()
        self.cluster.kill(self.index)

    def failBack(self):
        promoted = self.cluster.waitForFailover(self.index)
        seconds = time.monotonic() - self.started
        self.cluster.restart(self.index)
        self.cluster.waitForReplica(promoted)
        return seconds


def test_a_master_killed_mid_chat_fails_over_and_loses_nothing(
        tmp_path, replicatedCluster):
    """Two processes on one ZEO database, README's broker-replicas 1 (a
    transaction's events are on a replica before it commits): the master
    of the chat's group is SIGKILLed; commits in the gap are refused and
    sent again, and afterwards nothing is lost, doubled, shown unstored or
    missing from a page."""
    master = FailingMaster(replicatedCluster)
    with serversOn(tmp_path, replicatedCluster.url) as servers:
        processes = [servers(name, broker_replicas=1, refresh_interval=1)
                     for name in ('a', 'b')]
        counts, writers, failover = asyncio.run(
            failoverChat(processes, master))
    print('failover took %.1f s' % failover)
    assert counts == dict.fromkeys(counts, 0), (
        counts, [w.answers for w in writers])
    assert sum(w.refusals for w in writers) > 0
