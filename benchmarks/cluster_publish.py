#!/usr/bin/env python3
"""Publishes per shard: the Redis broker on one redis-server against the
Redis Cluster broker on a 3-master cluster, short runs, one process.

    python benchmarks/cluster_publish.py [--count N] [--groups G]

Starts its own redis-server and its own 3-master cluster (loopback, temp
dirs, no persistence; the test suite's fixture) and stops them by pid.
Prints a markdown report and, on its last line, one JSON object.

For each broker, one process publishes N events round robin to G groups
(G/3 per shard on the cluster, by their hash slots), all watched by its
reader(s), as a server with pages in every group would:

- immediate publishes (`publish`, one PUBLISH call each);
- transactions (`publishMany` with a token, then `finished`: the vote and
  the finish), of one group; and, on the cluster, of two groups on two
  shards (one vote and one finish per shard);
- the same publishes through one ShardBroker (the cluster broker's part
  for one master) on the plain redis-server: the design's own cost,
  without redis-server's cluster mode;
- `mark()` latency (one round trip; on the cluster one per shard, at once).

redis-server CPU (utime + stime from /proc) is counted per server over
each run, read back by the readers included: per publish, and the
*capacity* it implies for one shard, 1e6 / (CPU µs per publish): the
publishes/s at which that redis-server would be busy all the time. The
wall rate is bound by this one Python client, not by the servers.
"""
import argparse
import collections
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'src'))

from publish_cost import proc_cpu  # noqa: E402


def text(event_id):
    return ('{"id":"%s","event":"custom","name":"bench","data":'
            '{"text":"hello from the benchmark"}}' % event_id)


def commandTime(client):
    """Microseconds redis-server spent in commands since the last
    CONFIG RESETSTAT (INFO commandstats; a script's line includes the
    commands it runs, so only top-level calls count)."""
    return sum(v['usec'] for name, v in client.info('commandstats').items()
               if 'resetstat' not in name)


def run(broker, groups, count, kind, pids, shardOf, clients=None):
    """Publishes of one `kind` round robin over `groups`; wall, CPU per
    server, publishes per server, command µs per server."""
    per = dict.fromkeys(pids, 0)
    last = {}
    for client in (clients or {}).values():
        client.config_resetstat()
    cpu0 = {pid: proc_cpu(pid) for pid in pids}
    started = time.perf_counter()
    for n in range(count):
        if kind == 'publish':
            group = groups[n % len(groups)]
            last[group] = broker.publish(group, text)
            per[shardOf(group)] += 1
        elif kind == 'transaction':
            group = groups[n % len(groups)]
            token = 'b%d' % n
            last[group], = broker.publishMany([(group, text, None)],
                                              inFlight=token)
            broker.finished(token)
            per[shardOf(group)] += 1
        else:   # two groups on two shards
            pair = groups[n % len(groups)], groups[(n + 1) % len(groups)]
            token = 'b%d' % n
            positions = broker.publishMany([(g, text, None) for g in pair],
                                           inFlight=token)
            last.update(zip(pair, positions))
            broker.finished(token)
            for g in pair:
                per[shardOf(g)] += 1
    wall = time.perf_counter() - started
    # Until the readers have it all (their CPU counts on the servers).
    for group, position in last.items():
        deadline = time.monotonic() + 30
        while (broker.latestLocal(group) or (0, 0)) < position:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    cpu = {pid: proc_cpu(pid) - cpu0[pid] for pid in pids}
    commands = {pid: commandTime(client)
                for pid, client in (clients or {}).items()}
    return wall, cpu, per, commands


def markLatency(broker, rounds=300):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        broker.mark()
        times.append(time.perf_counter() - t)
    times.sort()
    return (statistics.median(times) * 1e6,
            times[int(len(times) * 0.99) - 1] * 1e6)


def measure(name, broker, groups, count, pids, shardOf, kinds, clients):
    rows = []
    for group in groups:
        broker.latest(group)                      # watched
    run(broker, groups, min(300, count), 'publish', pids, shardOf)  # warm
    for kind in kinds:
        events = count * (2 if kind == 'two shards' else 1)
        wall, cpu, per, commands = run(broker, groups, count, kind, pids,
                                       shardOf, clients)
        total = sum(cpu.values())
        shards = []
        for pid in pids:
            us = cpu[pid] / per[pid] * 1e6 if per[pid] else None
            shards.append({'events': per[pid],
                           'CPU us/event': us and round(us, 1),
                           'capacity events/s': us and int(1e6 / us),
                           'command us/event': per[pid] and round(
                               commands[pid] / per[pid], 1)})
        rows.append({'broker': name, 'kind': kind, 'count': count,
                     'events': events,
                     'wall events/s': int(events / wall),
                     'CPU us/event, all servers': round(
                         total / events * 1e6, 1),
                     'shards': shards})
    p50, p99 = markLatency(broker)
    return rows, {'broker': name, 'mark us p50': round(p50),
                  'mark us p99': round(p99)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--count', type=int, default=3000)
    p.add_argument('--groups', type=int, default=30)
    args = p.parse_args()
    import redis
    import systems
    from zorg.live.broker.redis import RedisBroker
    from zorg.live.broker.rediscluster import ClusterBroker, ShardBroker
    from zorg.live.broker.redisurl import ClusterURL
    from zorg.live.tests.clusterfixture import RedisClusterGroup

    groups = ['bench-%d' % n for n in range(args.groups)]
    single = systems.RedisProcess().start()
    cluster = RedisClusterGroup().start()
    rows, marks = [], []
    try:
        broker = RedisBroker(single.url)
        try:
            r, m = measure('redis (1 server)', broker, groups, args.count,
                           [single.proc.pid], lambda g: single.proc.pid,
                           ['publish', 'transaction'],
                           {single.proc.pid: redis.Redis.from_url(
                               single.url, decode_responses=True)})
        finally:
            broker.close()
        rows += r
        marks.append(m)
        # The shard's way (wake stream, XRANGE reader, script head) on the
        # same plain redis-server: what the design costs without cluster
        # mode.
        node = collections.namedtuple('Node', 'host port name')(
            '127.0.0.1', single.port, 'plain')
        broker = ShardBroker(node, 'zl0', single.url,
                             ClusterURL([], None, None), prefix='shard:')
        try:
            r, _m = measure('ShardBroker on the 1 server', broker, groups,
                            args.count, [single.proc.pid],
                            lambda g: single.proc.pid, ['publish'],
                            {single.proc.pid: redis.Redis.from_url(
                                single.url, decode_responses=True)})
        finally:
            broker.close()
        rows += r
        broker = ClusterBroker(cluster.url)
        pids = {s.node.port: p.pid for s in broker._order
                for port, p in zip(cluster.ports, cluster.processes)
                if port == s.node.port}
        try:
            # Round robin over groups sorted by shard: consecutive groups
            # of 'two shards' are on two shards (but at the wrap).
            ordered = sorted(groups, key=lambda g: broker.shardOf(
                g).node.port)
            byShard = [[g for g in ordered
                        if broker.shardOf(g).node.port == port]
                       for port in sorted(pids)]
            mixed = [g for trio in zip(*byShard) for g in trio]
            r, m = measure('redis+cluster (3 masters)', broker, mixed,
                           args.count, [pids[port] for port in sorted(pids)],
                           lambda g: pids[broker.shardOf(g).node.port],
                           ['publish', 'transaction', 'two shards'],
                           {pids[port]: redis.Redis(port=port,
                                                    decode_responses=True)
                            for port in pids})
        finally:
            broker.close()
        rows += r
        marks.append(m)
    finally:
        cluster.stop()
        single.stop()
    load = os.getloadavg()
    print('| broker | kind | events | wall events/s | redis-server CPU '
          'µs/event (all) | per shard: CPU µs/event (commands µs), '
          'capacity events/s |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        print('| %s | %s | %d | %d | %.1f | %s |' % (
            row['broker'], row['kind'], row['events'],
            row['wall events/s'], row['CPU us/event, all servers'],
            '; '.join('%s (%s) µs, %s/s' % (s['CPU us/event'],
                                            s['command us/event'],
                                            s['capacity events/s'])
                      for s in row['shards'])))
    print()
    for m in marks:
        print('- %s: mark() p50 %d µs, p99 %d µs' % (
            m['broker'], m['mark us p50'], m['mark us p99']))
    print('- load average: %.2f %.2f %.2f' % load)
    print(json.dumps({'rows': rows, 'marks': marks,
                      'loadavg': load}))


if __name__ == '__main__':
    main()
