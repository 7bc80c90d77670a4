#!/usr/bin/env python3
"""A simulated site, to check capacity.py's model against: PAGES live
pages in GROUPS groups on PROCESSES zorg.live processes and one Redis (or
a Redis Cluster of SHARDS masters), all on this machine.

    python benchmarks/simulate.py [--pages 100000] [--processes 4]
        [--groups 997] [--per-connection 100] [--shards 3] [--rounds 5]
        [--workers 4] [--out FILE]

Pages are WebSocket pages (the zorg-ws adapter of the load generator:
each connection renders its pages, then attaches them), PER-CONNECTION of
them to a connection (the tabs of a browser; max-connection-pages), the
connections spread over the processes in turn; page n is in group
``sim-<n mod GROUPS>``, so a group's pages are spread over the processes
as a round-robin balancer spreads them (997 groups by default, a prime:
with 1,000 and 100 pages per connection a group's pages would all fall
on the same half of the processes). Then ROUNDS fan-outs: one event
published to every group (this process publishes, through the broker),
awaited by every page.

It reports what it measured beside what the model (capacity.Plan) says
for the same site: memory per page, server CPU per delivery, processes
reading a publish, Redis CPU per publish (per shard). A 2-core machine
bounds the fan-out's speed; the memory and the per-delivery costs are the
figures that carry over.
"""
import argparse
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import capacity  # noqa: E402
import loadgen  # noqa: E402
import systems  # noqa: E402


def log(text):
    print(time.strftime('%H:%M:%S'), text, flush=True)


class Brokers:
    """The Redis side: one redis-server, or a cluster of `shards`
    masters (the test suite's cluster fixture)."""

    def __init__(self, shards):
        self.shards = shards
        self.cluster = None
        self.single = None

    def start(self):
        if self.shards > 1:
            from zorg.live.tests.clusterfixture import RedisClusterGroup
            self.cluster = RedisClusterGroup(masters=self.shards)
            self.cluster.start()
            self.url = self.cluster.url
            self.pids = self.cluster.pids()
        else:
            self.single = systems.RedisProcess().start()
            self.url = self.single.url
            self.pids = [self.single.pid]
        return self

    def cpu_s(self):
        return [systems.cpu_s([pid]) for pid in self.pids]

    def stop(self):
        if self.cluster is not None:
            self.cluster.stop()
        if self.single is not None:
            self.single.stop()


def publisher(url):
    from zorg.live.page.manager import LivePageManager
    from zorg.live.server.config import makeBroker
    from zorg.live.server.settings import Settings
    broker = makeBroker(url, Settings(broker=url))
    return broker, LivePageManager(broker)


async def run(args):
    from zorg.live.page.event import Custom
    brokers = Brokers(args.shards).start()
    servers = []
    pool = None
    broker = None
    out = {}
    try:
        log('broker %s (%d shard%s); starting %d processes'
            % (brokers.url, args.shards, 's' if args.shards > 1 else '',
               args.processes))
        for _ in range(args.processes):
            servers.append(systems.start_zorglive(
                'liveserver-http', systems.free_port(), broker=brokers.url,
                max_connection_pages=args.per_connection,
                # One load generator at one address holds every page:
                # lift the share one network prefix may hold.
                max_prefix_share=1.0,
                client_timeout=600, refresh_interval=60))
        pids = [pid for s in servers for pid in s.pids]
        endpoints = [('127.0.0.1', s.server.ports[0]) for s in servers]
        broker, manager = publisher(brokers.url)
        pool = loadgen.Pool(args.workers)
        await pool.configure('zorg-ws', endpoints, {
            'page_url': '/@@sim.html?n={n}&groups=%d' % args.groups,
            'pages': args.per_connection})
        rss0 = systems.rss_kb(pids)
        connections = args.pages // args.per_connection
        log('opening %d connections of %d pages (%d pages)'
            % (connections, args.per_connection, args.pages))
        t0 = time.time()
        opening = asyncio.ensure_future(pool.open(
            connections, args.open_timeout, concurrency=32))
        while not opening.done():
            await asyncio.sleep(10)
            if not opening.done():
                live = sum(s['live'] for s in await pool.all('status'))
                log('  %d pages live' % live)
        await opening
        statuses = await pool.all('status')
        live = sum(s['live'] for s in statuses)
        errors = {}
        for status in statuses:
            for name, count in status['errors'].items():
                errors[name] = errors.get(name, 0) + count
        log('%d pages live after %.0f s%s' % (
            live, time.time() - t0, '; errors: %s' % errors if errors
            else ''))
        waiting = {}
        for status in statuses:
            for step, count in status['not_live'].items():
                waiting[step] = waiting.get(step, 0) + count
        if waiting:
            # (scenarios.describe's words: attach unanswered, ...)
            log('NOT LIVE: %s' % waiting)
            out['pages not live, by the step they waited at'] = str(waiting)
        if not live:
            raise SystemExit('no page came live: %s' % errors)
        await asyncio.sleep(3)
        rss1 = systems.rss_kb(pids)
        out['pages live'] = live
        out['server RSS MB, all processes, before / with the pages'] = (
            '%.0f / %.0f' % (rss0 / 1024, rss1 / 1024))
        out['server RSS KB per page (measured)'] = round(
            (rss1 - rss0) / max(1, live), 2)
        for g in range(args.groups):           # watched: first publish
            broker.latest('sim-%d' % g)
        seq = 0
        lasts, cpus, redis = [], [], []
        for round_ in range(args.rounds + 1):
            seq += 1
            await pool.all('reset')
            c0, r0 = systems.cpu_s(pids), brokers.cpu_s()
            t = time.time()
            for g in range(args.groups):
                manager.publish(Custom('bench', systems.payload(seq, t)),
                                'sim-%d' % g)
            done = await pool.all('await', seq, 120)
            t1 = time.time()
            got = sum(d['count'] for d in done)
            c1, r1 = systems.cpu_s(pids), brokers.cpu_s()
            if round_ == 0:
                continue                         # warm-up
            lasts.append(t1 - t)
            cpus.append((c1 - c0) / max(1, got) * 1e6)
            redis.append([(b - a) / args.groups * args.shards * 1e6
                          for a, b in zip(r0, r1)])
            log('fan-out %d: %d of %d pages in %.2f s, server CPU %.1f us '
                'per delivery' % (round_, got, live, t1 - t, cpus[-1]))
        cpu = sorted(cpus)[len(cpus) // 2]
        out['fan-out to every page, s (median)'] = round(
            sorted(lasts)[len(lasts) // 2], 2)
        out['server CPU us per delivery (measured, median)'] = round(cpu, 1)
        perShard = [sorted(r[i] for r in redis)[len(redis) // 2]
                    for i in range(len(brokers.pids))]
        out['Redis CPU us per publish on its shard (measured, median, '
            'per shard)'] = ' / '.join('%.0f' % v for v in perShard)
        groupSize = args.pages / args.groups
        model = dict(capacity.Plan(args.pages, groupSize, 1).values)
        # The model's placement rule at this process count (round robin:
        # a group's pages at random over the processes).
        p = args.processes
        out['model: processes reading a publish'] = round(
            p * (1 - (1 - 1 / p) ** groupSize), 2)
        # Page n is on connection n // per-connection, which went to
        # process (connection mod processes): the processes each group's
        # pages are on.
        K = args.per_connection
        readers = sum(len({(n // K) % p for n in range(g, args.pages,
                                                         args.groups)})
                      for g in range(args.groups)) / args.groups
        out['simulation: processes reading a publish'] = round(readers, 2)
        perPage = (model['kb_per_registered_page']
                   + model['kb_per_connection'] / args.per_connection
                   + model['kb_per_further_page']
                   * (args.per_connection - 1) / args.per_connection)
        out['model: RSS KB per page at %d pages per connection'
            % args.per_connection] = round(perPage, 2)
        out['model: server CPU us per delivery'] = model[
            'cpu_us_per_delivery']
        out['model: Redis CPU us per publish with %g readers' % readers] = \
            round(model['redis_publish_us'] + readers
                  * model['redis_read_us'], 1)
        out['load average'] = ' '.join(
            open('/proc/loadavg').read().split()[:3])
    finally:
        if pool is not None:
            await pool.shutdown()
        if broker is not None and hasattr(broker, 'close'):
            broker.close()
        for s in servers:
            s.stop()
        brokers.stop()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pages', type=int, default=100000)
    p.add_argument('--processes', type=int, default=4)
    p.add_argument('--groups', type=int, default=997)
    p.add_argument('--per-connection', type=int, default=100)
    p.add_argument('--shards', type=int, default=3)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--open-timeout', type=float, default=1800)
    p.add_argument('--out', help='append the markdown table here')
    args = p.parse_args()
    out = asyncio.run(run(args))
    lines = ['| figure | value |', '|---|---|']
    lines += ['| %s | %s |' % (k, v) for k, v in out.items()]
    text = ('`simulate.py --pages %d --processes %d --groups %d '
            '--per-connection %d --shards %d --rounds %d`\n\n'
            % (args.pages, args.processes, args.groups, args.per_connection,
               args.shards, args.rounds)) + '\n'.join(lines) + '\n'
    print(text)
    if args.out:
        with open(args.out, 'a') as f:
            f.write(text + '\n')
    print(json.dumps(out))


if __name__ == '__main__':
    main()
