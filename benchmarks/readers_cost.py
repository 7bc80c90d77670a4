#!/usr/bin/env python3
"""redis-server CPU per publish against the number of processes that read
the group: the broker's cost per shard in the capacity model.

    python benchmarks/readers_cost.py [--count N] [--readers 1,4]

Starts a redis-server of its own (free loopback port, no persistence).
For each number K of readers: K RedisBrokers in this process (each with
its reader thread, as K live processes would have) watch group 'bench';
N publishes, one after the other, each waited for until every reader has
it; redis-server CPU (utime + stime from /proc) / N. Each K is run twice,
alternating. A line fit over the means gives the cost of the publish
itself (at K = 0) and of each reading process. Prints one JSON object.

Publishes one at a time make each XREAD return one entry: the cost per
reader is an upper bound (under load an XREAD returns several entries).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from publish_cost import before, proc_cpu  # noqa: E402

GROUP = 'bench'


def measure(url, pid, readers, count):
    from zorg.live.broker.redis import RedisBroker
    from zorg.live.page.event import Custom
    from zorg.live.page.manager import LivePageManager

    brokers = [RedisBroker(url) for _ in range(readers)]
    manager = LivePageManager(brokers[0])

    def event(i):
        return Custom('bench', {'zb': [i, time.time()],
                                'text': 'hello from the benchmark'})
    try:
        for broker in brokers:
            broker.latest(GROUP)
        for i in range(200):        # warm-up
            last = manager.publish(event(i), GROUP)
        for broker in brokers:
            broker.waitFor(GROUP, before(broker, last), 10)
        cpu0 = proc_cpu(pid)
        for i in range(count):
            last = manager.publish(event(i), GROUP)
        for broker in brokers:
            if not broker.waitFor(GROUP, before(broker, last), 30):
                raise RuntimeError('a reader did not see the last publish')
        return (proc_cpu(pid) - cpu0) / count * 1e6
    finally:
        for broker in brokers:
            broker.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--count', type=int, default=3000)
    p.add_argument('--readers', default='1,4')
    args = p.parse_args()
    counts = [int(k) for k in args.readers.split(',')]
    import systems
    own = systems.RedisProcess().start()
    try:
        runs = {k: [] for k in counts}
        for _round in range(2):
            for k in counts:
                runs[k].append(measure(own.url, own.pid, k, args.count))
    finally:
        own.stop()
    means = {k: sum(v) / len(v) for k, v in runs.items()}
    (k0, c0), (k1, c1) = sorted(means.items())[0], sorted(means.items())[-1]
    perReader = (c1 - c0) / (k1 - k0)
    print(json.dumps({
        'count': args.count,
        'redis-server CPU us/publish by readers': {
            k: [round(x, 1) for x in v] for k, v in runs.items()},
        'publish us (fit, 0 readers)': round(c0 - k0 * perReader, 1),
        'per reading process us (fit)': round(perReader, 1),
        'load average': open('/proc/loadavg').read().split()[:3],
    }))


if __name__ == '__main__':
    main()
