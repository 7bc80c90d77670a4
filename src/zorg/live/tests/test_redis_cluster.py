"""The Redis Cluster broker (broker/rediscluster.py) on a real 3-master
cluster: transactions over several shards, and shards that hang or die.
The broker contract suite runs on the cluster too
(test_broker_contract.py)."""

import time

import pytest

from zorg.live.broker.rediscluster import ClusterBroker, logKey, pageKey
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.tests.clusterfixture import redisCluster  # noqa

pytestmark = pytest.mark.redis

PREFIX = 'zorg:live:'


def text(body):
    return lambda event_id: '{"id":"%s","data":"%s"}' % (event_id, body)


def shown(broker, group, after):
    return [body.split('"data":"')[1][:-2]
            for _p, body, _a in broker.read(group, after, 100)[0]]


def shownOrNone(broker, group, after):
    """`shown`, or None while the broker answers 503 (a read asks Redis
    while the group's reader is away, and Redis may be failing over)."""
    try:
        return shown(broker, group, after)
    except BrokerUnavailable:
        return None


def until(condition, limit=30):
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, 'not in %ds' % limit
        time.sleep(0.02)


def onShards(cluster, key, count, avoid=()):
    """`count` names whose keys (key % name) are on `count` different
    masters, none of them in `avoid`: [(name, master index), ...]."""
    found, used = [], set(avoid)
    for n in range(1000):
        name = 'n%d' % n
        shard = cluster.shardOf(key % name)
        if shard not in used:
            used.add(shard)
            found.append((name, shard))
            if len(found) == count:
                return found
    raise AssertionError('the cluster has fewer shards')


def groupsAndPage(cluster):
    """Two groups and a page id, each on a shard of its own."""
    (ga, sa), (gb, sb) = onShards(cluster, logKey(PREFIX, '%s'), 2)
    (page, sp), = onShards(cluster, pageKey(PREFIX, '%s'), 1, (sa, sb))
    return (ga, sa), (gb, sb), (page, sp)


def test_the_broker_knows_every_master_and_where_keys_are(redisCluster):
    broker = ClusterBroker(redisCluster.url)
    try:
        assert len(broker.shards) == 3
        ports = sorted(s.node.port for s in broker.shards.values())
        assert ports == sorted(redisCluster.ports)
        for n in range(20):
            group = 'g%d' % n
            index = redisCluster.shardOf(logKey(PREFIX, group))
            assert broker.shardOf(group).node.port == \
                redisCluster.ports[index]
        # Each shard's own keys (its in-flight set...) are on it.
        for shard in broker.shards.values():
            index = redisCluster.shardOf(shard._inFlightKey())
            assert redisCluster.ports[index] == shard.node.port
    finally:
        broker.close()


def test_a_transaction_on_three_shards_is_shown_by_another_process(
        redisCluster):
    """Events of two groups and an input record, each on its own shard,
    are pending on all three until the finish, then shown by another
    process (its own broker) in both groups."""
    (ga, _), (gb, _), (page, _) = groupsAndPage(redisCluster)
    a, b = ClusterBroker(redisCluster.url), ClusterBroker(redisCluster.url)
    try:
        sa, sb = b.latest(ga), b.latest(gb)
        heard = []
        b.addListener(heard.append)
        a.savePage(page, {'group': ga}, 600)   # the page is open
        assert a.claimInput(page, 'in', 'tok', 60) == (None, True)
        mark = a.mark()
        positions = a.publishMany(
            [(ga, text('one'), None), (gb, text('two'), None)],
            inputs=[(page, 'in', 'tok', 'answer', 3, 60)], inFlight='t')
        assert len(positions) == 2 and min(positions) > mark
        # Pending: not shown, a resend waits, marks stay before it.
        assert shown(b, ga, sa) == [] and shown(b, gb, sb) == []
        assert b.claimInput(page, 'in', 'other', 60) == (None, False)
        assert b.mark() < min(positions)
        assert a.finished('t') is True
        until(lambda: shown(b, ga, sa) == ['one']
              and shown(b, gb, sb) == ['two'])
        assert b.claimInput(page, 'in', 'other', 60) == ('answer', False)
        until(lambda: {ga, gb} <= {g for groups in heard for g in groups})
        until(lambda: b.mark() > max(positions))
    finally:
        a.close()
        b.close()


def test_a_vote_with_a_hung_shard_fails_whole(redisCluster):
    """One of the vote's shards hangs (SIGSTOP): the vote fails within
    the broker's timeout, the shards that took their part cancel it, and
    when the hung one wakes it writes nothing (past its deadline): nothing
    is shown anywhere, the input was not recorded."""
    (ga, _), (gb, hung), (page, _) = groupsAndPage(redisCluster)
    broker = ClusterBroker(redisCluster.url, timeout=1)
    other = ClusterBroker(redisCluster.url)
    try:
        sa, sb = other.latest(ga), other.latest(gb)
        broker.savePage(page, {'group': ga}, 600)   # the page is open
        assert broker.claimInput(page, 'in', 'tok', 60) == (None, True)
        redisCluster.hang(hung)
        try:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                broker.publishMany(
                    [(ga, text('lost'), None), (gb, text('lost'), None)],
                    inputs=[(page, 'in', 'tok', 'answer', 3, 60)],
                    inFlight='t')
            assert time.monotonic() - started < 5
            # Cancelled already where it was taken: the input may run.
            assert other.claimInput(page, 'in', 'again', 60) == (None,
                                                                  True)
            other.releaseInput(page, 'in', 'again')
        finally:
            redisCluster.resume(hung)
        other.publish(ga, text('after'))
        until(lambda: shownOrNone(other, ga, sa) == ['after'])
        until(lambda: _publishes(other, gb))
        until(lambda: shownOrNone(other, gb, sb) == ['after'])
        assert other.claimInput(page, 'in', 'again', 60) == (None, True)
    finally:
        broker.close()
        other.close()


def _publishes(broker, group):
    try:
        broker.publish(group, text('after'))
    except BrokerUnavailable:
        return False
    return True


def test_a_killed_shard_answers_503_then_comes_back(redisCluster):
    """A master dies: calls on its groups and every mark fail (503), the
    other shards' groups go on; started again (empty), it serves again,
    and its reader follows it."""
    (gone, index), (alive, _) = onShards(
        redisCluster, logKey(PREFIX, '%s'), 2)
    broker = ClusterBroker(redisCluster.url, timeout=1)
    try:
        broker.latest(gone)
        redisCluster.kill(index)
        # The error names the master (the URL names the whole cluster).
        with pytest.raises(BrokerUnavailable, match='master 127.0.0.1:%d'
                           % redisCluster.ports[index]):
            broker.publish(gone, text('x'))
        with pytest.raises(BrokerUnavailable):
            broker.mark()
        start = broker.latest(alive)
        broker.publish(alive, text('alive'))
        until(lambda: shownOrNone(broker, alive, start) == ['alive'])
        until(lambda: not broker.health()['connected'])
        redisCluster.restart(index)
        until(lambda: _publishes(broker, gone))
        until(lambda: broker.health()['connected'])
        broker.mark()
        start = broker.latest(gone)
        broker.publish(gone, text('back'))
        until(lambda: shownOrNone(broker, gone, start) == ['back'])
    finally:
        broker.close()


def test_cluster_urls_are_checked(redisCluster):
    with pytest.raises(ValueError):
        ClusterBroker(redisCluster.url + '/2')
    with pytest.raises(ValueError):
        ClusterBroker(redisCluster.url, prefix='a{b}:')
    with pytest.raises(ValueError):
        ClusterBroker(redisCluster.url, replicas=-1)


def test_broker_replicas_on_a_cluster_without_replicas(redisCluster):
    """broker-replicas 1 on masters that have no replica: a transaction's
    publish is refused (nothing written), an immediate one is not."""
    broker = ClusterBroker(redisCluster.url, replicas=1, timeout=1)
    try:
        with pytest.raises(BrokerUnavailable, match='replicas'):
            broker.publishMany([('g', text('x'), None)], inFlight='t')
        start = broker.latest('g')
        broker.publish('g', text('y'))
        until(lambda: shown(broker, 'g', start) == ['y'])
    finally:
        broker.close()


def test_a_reader_behind_its_wake_stream_reads_every_log(redisCluster):
    """A shard's reader learns which logs changed from the shard's wake
    stream, which keeps about WAKE_LENGTH entries: a reader that fell
    further behind (here: driven by hand, after 10 publishes to one group
    and 1,100 to another) lost the entries that named the first group,
    and still reads it, because a full answer makes it read every log."""
    from zorg.live.broker.rediscluster import WAKE_LENGTH
    (first, index), = onShards(redisCluster, logKey(PREFIX, '%s'), 1)
    second = next('m%d' % n for n in range(1000)
                  if redisCluster.shardOf(logKey(PREFIX, 'm%d' % n))
                  == index)
    reader = ClusterBroker(redisCluster.url)
    writer = ClusterBroker(redisCluster.url)
    try:
        shard = reader.shardOf(first)
        shard._stopping.set()        # its thread stops; the test reads
        shard._kick()
        shard._thread.join(10)
        assert not shard._thread.is_alive()
        shard.block = 0.05
        start = reader.latest(first)
        reader.latest(second)
        # The control stream says: read them all; then nothing is new.
        for _ in range(3):
            shard._readOnce()
        assert not shard._readAll
        for _ in range(10):
            writer.publish(first, text('first'))
        for _ in range(WAKE_LENGTH + 100):
            writer.publish(second, text('second'))
        oldest = shard._redis.xrange(shard._tagged('wake'), count=1)
        assert logKey(PREFIX, first) not in oldest[0][1]['k'], \
            'the wake stream was not trimmed past the first group'
        shard._readOnce()
        shard._readOnce()
        assert len(reader.readLocal(first, start, 100)[0]) == 10
    finally:
        reader.close()
        writer.close()


def test_a_transaction_on_three_shards_never_finished_is_unknown(
        redisCluster):
    """A process dies between its vote (on three shards: two groups and
    an input record) and its finish: each shard sweeps its part at the
    deadline as unknown; both groups' pages are told to reload in place
    of its events, what followed is shown, and the input's resend is
    answered input-unknown."""
    from zorg.live.interfaces import InputUnknown
    (ga, _), (gb, _), (page, _) = groupsAndPage(redisCluster)
    broker = ClusterBroker(redisCluster.url)
    dead = ClusterBroker(redisCluster.url, commitTimeout=0.5)
    try:
        starts = {g: broker.latest(g) for g in (ga, gb)}
        dead.savePage(page, {'group': ga}, 600)   # the page is open
        assert dead.claimInput(page, 'in', 'tok', 60) == (None, True)
        dead.publishMany([(ga, text('ghost'), None),
                          (gb, text('ghost'), None)],
                         inputs=[(page, 'in', 'tok', 'answer', 3, 60)],
                         inFlight='t')
        dead.close()      # it never finishes; 'broker' sweeps it
        for group, start in starts.items():
            broker.publish(group, text('after'))
            until(lambda: len(broker.read(group, start, 10)[0]) == 2)
            first, second = [body for _p, body, _a
                             in broker.read(group, start, 10)[0]]
            assert '"reload"' in first and 'ghost' not in first
            assert '"recovered":false' in first
            assert 'after' in second
        with pytest.raises(InputUnknown):
            broker.claimInput(page, 'in', 'again', 60)
    finally:
        broker.close()
