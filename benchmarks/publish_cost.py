#!/usr/bin/env python3
"""Cost of one publish: LivePageManager.publish with the in-memory broker
and with the redis broker, in one process, back to back.

    python benchmarks/publish_cost.py [--count N] [--redis-url URL
                                       --redis-pid PID]

Without --redis-url it starts a redis-server of its own (free loopback
port, temp dir, no persistence) and stops it by pid at the end. Prints one
JSON object on the last line of its output. run.py runs it as the
`publish-cost` scenario.

Per broker, on a fresh LivePageManager (one listener registered, as a
server registers one; no pages, so no fan-out work), group 'bench', after
a warm-up:

- sequential: N publishes of a Custom event (the benchmark's payload) one
  after the other; wall time per publish, and this process's CPU per
  publish counted until its own reader has seen the last one (redis: the
  reader thread's XREAD and cache work included);
- redis-server CPU per publish over the same run (utime + stime from
  /proc/<pid>/stat; it also serves the reader's XREADs);
- publish -> woken: publish one event and wait (broker.waitFor) until this
  process could hand it to its waiting pages; p50 / p99 over M rounds
  (memory: at once; redis: the round trip to Redis and back through the
  reader thread);
- 4 threads: N publishes from 4 threads at once (the input path's worker
  threads); wall time / N.

With --replica it also starts a replica of that redis-server and measures
the redis broker again with ``broker-replicas 1`` (a publish checks that
the replica is in sync, then WAITs for it): what Sentinel's safety costs
per publish.
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GROUP = 'bench'


def proc_cpu(pid):
    """user + system CPU seconds of one process."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(
        os.sysconf('SC_CLK_TCK'))


def pct(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values))) - 1))
    return values[k]


def measure(make_broker, count, rounds, redis_pid=None, threads=4):
    from zorg.live.page.event import Custom
    from zorg.live.page.manager import LivePageManager

    broker = make_broker()
    calls = [0]

    def listener(group_ids):
        calls[0] += 1
    broker.addListener(listener)
    manager = LivePageManager(broker)

    def event(i):
        return Custom('bench', {'zb': [i, time.time()],
                                'text': 'hello from the benchmark'})
    try:
        broker.latest(GROUP)              # the process starts reading it
        for i in range(min(200, count)):  # warm-up (scripts loaded, ...)
            last = manager.publish(event(i), GROUP)
        broker.waitFor(GROUP, before(broker, last), 10)

        # sequential
        cpu0, rcpu0 = time.process_time(), redis_cpu(redis_pid)
        t0 = time.perf_counter()
        for i in range(count):
            last = manager.publish(event(i), GROUP)
        wall = time.perf_counter() - t0
        seen = broker.waitFor(GROUP, before(broker, last), 30)
        cpu = time.process_time() - cpu0
        rcpu = redis_cpu(redis_pid) - rcpu0 if redis_pid else None

        # publish -> woken
        woken = []
        prev = broker.latest(GROUP)
        for i in range(rounds):
            t = time.perf_counter()
            pos = manager.publish(event(i), GROUP)
            broker.waitFor(GROUP, prev, 10)
            woken.append(time.perf_counter() - t)
            prev = pos

        # several threads at once
        share = count // threads
        errors = []

        def publisher():
            try:
                for i in range(share):
                    manager.publish(event(i), GROUP)
            except Exception as e:        # counted, reported
                errors.append(repr(e))
        ts = [threading.Thread(target=publisher) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        twall = time.perf_counter() - t0
    finally:
        broker.removeListener(listener)
        close = getattr(broker, 'close', None)
        if close is not None:
            close()
    return {
        'us/publish': wall / count * 1e6,
        'CPU us/publish (this process, incl. reading it back)':
            cpu / count * 1e6,
        'redis-server CPU us/publish':
            None if rcpu is None else rcpu / count * 1e6,
        'publish -> woken us p50': pct(woken, 50) * 1e6,
        'publish -> woken us p99': pct(woken, 99) * 1e6,
        'us/publish, %d threads' % threads: twall / (share * threads) * 1e6,
        'read back': bool(seen),
        'listener calls': calls[0],
        'errors': errors[:3],
    }


def before(broker, position):
    """The position just before `position` (waitFor(after) returns once
    something newer than `after` is there)."""
    if isinstance(position, tuple):               # redis: (ms, seq)
        ms, seq = position
        return (ms, seq - 1) if seq else (ms - 1, (1 << 64) - 1)
    return position - 1


def redis_cpu(pid):
    return proc_cpu(pid) if pid else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--count', type=int, default=5000)
    p.add_argument('--rounds', type=int, default=500)
    p.add_argument('--redis-url')
    p.add_argument('--redis-pid', type=int)
    p.add_argument('--replica', action='store_true',
                   help='also measure broker-replicas 1 on a replica of '
                        'its own redis-server')
    args = p.parse_args()

    from zorg.live.broker.memory import MemoryBroker
    from zorg.live.broker.redis import RedisBroker

    own = replica = None
    import systems
    if not args.redis_url:
        own = systems.RedisProcess().start()
        args.redis_url, args.redis_pid = own.url, own.pid
    try:
        out = {'count': args.count, 'rounds': args.rounds}
        out['memory'] = measure(MemoryBroker, args.count, args.rounds)
        out['redis'] = measure(lambda: RedisBroker(args.redis_url),
                               args.count, args.rounds, args.redis_pid)
        out['redis-server RSS MB'] = round(
            rss_kb(args.redis_pid) / 1024., 1)
        if args.replica and own is not None:
            replica = systems.RedisProcess(replicaOf=own).start()
            waitInSync(args.redis_url)
            out['redis, broker-replicas 1'] = measure(
                lambda: RedisBroker(args.redis_url, replicas=1),
                args.count, args.rounds, args.redis_pid)
    finally:
        for process in (replica, own):
            if process is not None:
                process.stop()
    print(json.dumps(out))


def waitInSync(url, timeout=30):
    """Until the master at `url` has a replica online."""
    import redis
    client = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = client.info('replication')
        if info.get('slave0', {}).get('state') == 'online':
            return
        time.sleep(0.05)
    raise RuntimeError('the replica did not come online')


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


if __name__ == '__main__':
    main()
