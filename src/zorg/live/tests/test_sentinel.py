"""Issue 20, item 4: the Redis broker on Redis Sentinel.

``broker redis+sentinel://host:port,host:port,host:port/live/0`` with
``broker-replicas 1``: one master, one replica and three sentinels on
loopback, started by the test. The master is SIGKILLed in the middle of a
chat between two live processes (one ZEO database): the sentinels
promote the replica, both processes follow it, the commits in the gap
are refused with 503 (the client sends them again, with their input ids,
until they pass), and afterwards nothing answered 200 is lost, nothing is
stored twice, nothing is shown that was not stored, and every page shows
every stored line (from the stream's history, or by a reload).

``broker-replicas 1`` makes each publish WAIT for the replica before the
transaction commits: what Redis's asynchronous replication could lose
when the master dies (what it had not sent yet) was never answered 200.
"""

import asyncio
import signal
import time

import pytest

from zorg.live.broker.redis import RedisBroker
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.tests import chatcheck
from zorg.live.tests.redisfixture import redisServer  # noqa: F401
from zorg.live.tests.sentinelfixture import sentinels  # noqa: F401
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.zeofixture import zeoServer  # noqa: F401

pytestmark = pytest.mark.redis


def encode(text):
    return lambda event_id: '{"id":"%s","t":"%s"}' % (event_id, text)


def test_a_publish_without_its_replica_is_refused_and_not_written(
        redisServer):
    """broker-replicas 1 on a Redis without a replica: every publish
    fails (503) before it writes, instead of committing what no replica
    has."""
    broker = RedisBroker(redisServer.url, replicas=1, timeout=0.4)
    try:
        start = broker.latest('g')
        with pytest.raises(BrokerUnavailable) as refused:
            broker.publishMany([('g', encode('x'), None)])
        assert '0 of 1 replicas are in sync' in str(refused.value)
        time.sleep(broker.failFast)
        assert broker.latest('g') == start
        # An immediate publish (a script's, the health probe's) promises
        # nothing stored: it goes out, so the processes stay healthy.
        assert broker.publish('g', encode('now')) > start
    finally:
        broker.close()


def test_a_hung_replica_refuses_publishes_until_it_is_back(sentinels):
    broker = RedisBroker(sentinels.url, replicas=1, timeout=1.0)
    replica = sentinels.processes['replica']
    try:
        first = broker.publishMany([('g', encode('a'), None)])
        replica.send_signal(signal.SIGSTOP)
        try:
            # Once the replica's last acknowledgement is older than
            # replicaLag, publishes are refused before they write.
            deadline = time.monotonic() + 30
            with pytest.raises(BrokerUnavailable) as refused:
                while time.monotonic() < deadline:
                    broker.publishMany([('g', encode('b'), None)])
            assert 'replicas are in sync' in str(refused.value)
        finally:
            replica.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:
            try:
                later = broker.publishMany([('g', encode('c'), None)])
                break
            except BrokerUnavailable:
                assert time.monotonic() < deadline, 'no recovery'
                time.sleep(0.2)
        assert later > first
    finally:
        broker.close()


def test_the_master_killed_mid_chat_fails_over_and_loses_nothing(
        tmp_path, sentinels, zeoServer):
    processes = []
    try:
        for name in ('a', 'b'):
            processes.append(RunningServer(
                tmp_path / name, zodb=zeoServer.zodbSection(),
                refresh_interval=1, **sentinels.readmeSettings()).start())
        result = asyncio.run(failoverChat(processes, sentinels))
    finally:
        for server in processes:
            server.kill()
            server.output.close()
    counts, writers, failover = result
    print('failover took %.1f s' % failover)
    assert counts == dict.fromkeys(counts, 0), counts
    # The gap was seen: commits in it were refused (and sent again).
    assert sum(w.refusals for w in writers) > 0
    assert failover < 30


async def failoverChat(processes, sentinels, lines=24):
    async with chatcheck.session() as s:
        pages = [chatcheck.Page(s, server) for server in processes]
        writers = [chatcheck.Writer(s, server, name)
                   for server, name in zip(processes, 'ab')]
        stop = asyncio.Event()
        reading = [asyncio.ensure_future(p.run(stop)) for p in pages]
        failover = None
        for n in range(lines):
            if n == lines // 3:
                sentinels.killMaster()
                # Writing goes on meanwhile: the gap gets 503s until the
                # replica is promoted and the old master, started again
                # (as systemd would), is its replica.
                waiting = asyncio.ensure_future(
                    asyncio.to_thread(sentinels.failBack))
            await writers[n % 2].say('m%d' % n)
            if n == 2 * lines // 3:
                failover = await waiting
        stored = await chatcheck.Page(s, processes[0]).render()
        answers = dict(writers[0].answers, **writers[1].answers)
        deadline = time.monotonic() + 60
        while any(set(p.lines) != set(stored) for p in pages):
            if time.monotonic() > deadline:
                break       # counted as missing below
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*reading), 60)
        counts = chatcheck.tally(answers, stored, [p.lines for p in pages])
        counts['not-200'] = sum(1 for a in answers.values() if a != 200)
        return counts, writers, failover
