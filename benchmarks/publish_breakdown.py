#!/usr/bin/env python3
"""Where redis-server's time per publish goes: INFO commandstats over N
publishes of one process that reads them back (its reader thread).

    python benchmarks/publish_breakdown.py [--count N] [--transaction]

Starts a redis-server of its own; prints a markdown table (calls and
microseconds per publish, by command; the script's own line includes the
commands it runs) and redis-server's whole CPU per publish (/proc), so the
difference -- reading requests, writing answers, the event loop -- shows.

With --transaction each publish is a transaction's, as a handler's
publish in a request is: its vote (PUBLISH, pending), its finish
(RESOLVE, the confirmation marker) and the request's mark (MARK).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from publish_cost import before, proc_cpu  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--count', type=int, default=3000)
    p.add_argument('--transaction', action='store_true',
                   help='vote, finish and mark per publish')
    args = p.parse_args()
    import redis
    import systems
    from zorg.live.broker.redis import RedisBroker
    from zorg.live.page.event import Custom, encode
    from zorg.live.page.manager import LivePageManager

    own = systems.RedisProcess().start()
    try:
        broker = RedisBroker(own.url)
        manager = LivePageManager(broker)
        broker.latest('bench')

        def encoder(event):
            return lambda event_id: encode(event, event_id)

        def event(i):
            return Custom('bench', {'zb': [i, time.time()],
                                    'text': 'hello from the benchmark'})
        for i in range(200):            # warm-up
            last = manager.publish(event(i), 'bench')
        broker.waitFor('bench', before(broker, last), 10)
        client = redis.Redis.from_url(own.url, decode_responses=True)
        client.config_resetstat()
        cpu0 = proc_cpu(own.pid)
        for i in range(args.count):
            if args.transaction:
                broker.mark()
                token = 'bench-%d' % i
                last, = broker.publishMany(
                    [('bench', encoder(event(i)), None)], inFlight=token)
                broker.finished(token, committed=True)
            else:
                last = manager.publish(event(i), 'bench')
        broker.waitFor('bench', before(broker, last), 30)
        cpu = (proc_cpu(own.pid) - cpu0) / args.count * 1e6
        stats = client.info('commandstats')
        broker.close()
    finally:
        own.stop()
    n = args.count
    rows = sorted(((name[len('cmdstat_'):], v['calls'], v['usec'])
                   for name, v in stats.items()
                   if 'resetstat' not in name), key=lambda r: -r[2])
    print('| command | calls per publish | µs per publish | µs per call |')
    print('|---|---|---|---|')
    for name, calls, usec in rows:
        print('| %s | %.2f | %.1f | %.2f |' % (name, calls / n, usec / n,
                                               usec / calls))
    print()
    print('redis-server CPU per publish (/proc): %.1f µs; load average %s'
          % (cpu, ' '.join(open('/proc/loadavg').read().split()[:3])))


if __name__ == '__main__':
    main()
