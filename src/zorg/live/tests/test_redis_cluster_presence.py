"""Presence across live processes on a Redis Cluster: the same tests as
on one redis-server (test_redis_presence_servers.py), on three masters.
A group's presence lives on its shard; whoIsOnline asks every shard, and
a process killed on one leaves on all."""

import pytest

from zorg.live.tests import test_redis_presence_servers as onOneServer
from zorg.live.tests.clusterfixture import (  # noqa: F401
    clusterServers, redisCluster)

pytestmark = pytest.mark.redis


@pytest.fixture
def fastServers(clusterServers):   # noqa: F811
    """`clusterServers` with test_redis_presence_servers' FAST settings."""
    def make(name, **settings):
        return clusterServers(name, **dict(onOneServer.FAST, **settings))
    return make


test_two_processes_share_presence = (
    onOneServer.test_two_processes_share_presence)
test_three_processes_agree_and_a_killed_one_leaves = (
    onOneServer.test_three_processes_agree_and_a_killed_one_leaves)
