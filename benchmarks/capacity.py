#!/usr/bin/env python3
"""A capacity model of a zorg.live site, fed with measured constants.

    python benchmarks/capacity.py [--pages 100000,1000000]
                                  [--group-size 100] [--rate 1]

How many live server processes, Redis shards and machines a site needs for
N open pages, in groups of `group-size` pages, each group published to
`rate` times a second (a chat room, a page of an object being edited).
Every constant is a figure of benchmarks/results/ (MEASURED, with where it
comes from) or an assumption said as such (ASSUMED); change them with
--set name=value.

The rules:

* a process is one event loop on one core: deliveries cost
  `cpu_us_per_delivery` each, and a process runs at `headroom` of its core;
  it holds at most `connections_per_process` connections (open files) and
  `memory_mb_per_process` of pages (a registered page, its connection or
  its share of a connection's tabs);
* a publish reaches every page of its group (deliveries/s = pages x rate);
* with round-robin balancing a group's pages are spread over the
  processes, and every process holding one of them reads each publish of
  the group from Redis: a publish costs Redis `redis_publish_us` plus
  `redis_read_us` for each such process (the expected number of distinct
  processes among `group-size` pages placed at random);
* a Redis shard is one core at `headroom`; the groups spread evenly over
  the shards (Redis Cluster with a group's keys in one slot -- not built
  yet: today one Redis, or Sentinel, is one shard);
* a machine has `cores_per_machine` cores and `memory_gb_per_machine`: it
  runs one process per core, less the cores its shards take.

    >>> redis = dict(redis_publish_us=75.6, redis_read_us=16.1)
    >>> plan = Plan(pages=100000, groupSize=100, rate=1, **redis)
    >>> plan.deliveries, plan.processes, plan.shards, plan.machines
    (100000, 6, 1, 1)
    >>> plan.bound
    'connections'
    >>> big = Plan(pages=1000000, groupSize=100, rate=1, **redis)
    >>> big.processes, round(big.readersPerPublish), big.shards
    (52, 45, 16)
    >>> Plan(pages=1000000, groupSize=100, rate=1, affinity=1,
    ...      **redis).shards
    2

The second shows what bounds a big site: each publish is read by nearly
every process, so Redis's cost grows with processes x publishes. Sending
a group's pages to the same few processes (affinity at the balancer)
would cut it; the model's --set affinity=1 assumes that.
"""

import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, 'results')


def _readers():
    """The fit of results/issue20-readers-cost.json (readers_cost.py)."""
    with open(os.path.join(RESULTS, 'issue20-readers-cost.json')) as f:
        data = json.load(f)
    return (data['publish us (fit, 0 readers)'],
            data['per reading process us (fit)'])


_PUBLISH_US, _READ_US = _readers()

MEASURED = {
    'cpu_us_per_delivery': (
        18.9, 'issue13-ws.md: fan-out to 10,000 WebSocket pages, server '
              'CPU us per delivery (5.6 when several events share a frame)'),
    'kb_per_connection': (
        9.6, 'issue13-ws.md: idle WebSocket connection with its page, '
             'server RSS KB'),
    'kb_per_registered_page': (
        9.8, 'issue13-ws.md: a page registered (rendered: its client, '
             'record and delivery state), before any stream, RSS KB at '
             '5,000 pages (10.4 at 10,000)'),
    'kb_per_further_page': (
        0.5, 'issue13-ws.md: each further page on a shared connection, '
             'RSS KB'),
    'redis_publish_us': (
        _PUBLISH_US, 'issue20-readers-cost.json: redis-server CPU per '
                     'publish, fit at 0 readers (load average ~10)'),
    'redis_read_us': (
        _READ_US, 'issue20-readers-cost.json: redis-server CPU per publish '
                  'for each process reading the group (one entry per '
                  'XREAD: an upper bound)'),
}

ASSUMED = {
    'headroom': 0.5,            # share of a core used at the peak
    'tabs_per_connection': 1,   # pages per browser connection (tabs share)
    'connections_per_process': 19500,   # open-file limit 20,000 less 500
    'memory_mb_per_process': 4096,
    'cores_per_machine': 16,
    'memory_gb_per_machine': 64,
    'affinity': 0,              # 1: a group's pages on as few processes
}


class Plan:
    """What a site of `pages` pages needs (see the module's docstring)."""

    def __init__(self, pages, groupSize, rate, **changes):
        values = {k: v for k, (v, _why) in MEASURED.items()}
        values.update(ASSUMED)
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError('unknown constants: %s' % ', '.join(unknown))
        values.update(changes)
        self.values = c = values
        self.pages, self.groupSize, self.rate = pages, groupSize, rate
        groups = pages / groupSize
        self.publishes = groups * rate
        self.deliveries = round(pages * rate)
        connections = pages / c['tabs_per_connection']
        byCpu = self.deliveries * c['cpu_us_per_delivery'] * 1e-6 \
            / c['headroom']
        byConnections = connections / c['connections_per_process']
        byMemory = (pages * c['kb_per_registered_page']
                    + connections * c['kb_per_connection']
                    + (pages - connections) * c['kb_per_further_page']) \
            / 1024 / c['memory_mb_per_process']
        needs = {'cpu': byCpu, 'connections': byConnections,
                 'memory': byMemory}
        self.bound = max(needs, key=needs.get)
        self.processes = max(1, math.ceil(needs[self.bound]))
        p = self.processes
        if c['affinity']:
            perProcess = pages / p
            readers = min(p, math.ceil(groupSize / perProcess))
        else:
            readers = p * (1 - (1 - 1 / p) ** groupSize)
        self.readersPerPublish = readers
        self.redisUsPerPublish = (c['redis_publish_us']
                                  + readers * c['redis_read_us'])
        self.shards = max(1, math.ceil(
            self.publishes * self.redisUsPerPublish * 1e-6 / c['headroom']))
        cores = p + self.shards
        memory = p * c['memory_mb_per_process'] / 1024
        self.machines = max(math.ceil(cores / c['cores_per_machine']),
                            math.ceil(memory / c['memory_gb_per_machine']))

    def row(self):
        return ('| %s | %s | %s | %s | %s | %.1f | %.0f | %s | %s |' % (
            '{:,}'.format(self.pages), '{:,}'.format(round(self.publishes)),
            '{:,}'.format(self.deliveries), self.processes, self.bound,
            self.readersPerPublish, self.redisUsPerPublish, self.shards,
            self.machines))


HEAD = ('| pages | publishes/s | deliveries/s | processes | bound by | '
        'processes reading a publish | Redis us/publish | Redis shards | '
        'machines |\n|---|---|---|---|---|---|---|---|---|')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pages', default='100000,1000000')
    p.add_argument('--group-size', type=int, default=100)
    p.add_argument('--rate', type=float, default=1.0,
                   help='publishes per second to each group')
    p.add_argument('--set', action='append', default=[],
                   metavar='NAME=VALUE')
    args = p.parse_args()
    changes = {}
    for item in args.set:
        name, value = item.split('=', 1)
        changes[name] = float(value)
    print(HEAD)
    for pages in args.pages.split(','):
        print(Plan(int(pages), args.group_size, args.rate, **changes).row())
    print()
    for name, (value, why) in MEASURED.items():
        print('- %s = %s (%s)' % (name, round(value, 1), why))
    for name, value in ASSUMED.items():
        print('- %s = %s (assumed)' % (name, changes.get(name, value)))


if __name__ == '__main__':
    main()
