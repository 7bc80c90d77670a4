#!/usr/bin/env python3
"""What a live page adds to rendering its template: server CPU per GET of
one template served as a plain view and as a LivePage, in the same run.

    python benchmarks/render_cost.py [--count N] [--rounds R]
                                     [--broker memory|redis] [--out FILE]

Starts the benchmark site (zorglive_site.zcml) with LiveServerHTTP and
GETs ``render-plain.html`` and ``render-live.html`` (``render.pt``: a
title, 30 messages, a form) over one keep-alive connection, in
alternating batches of N, R rounds each; the server's CPU (/proc, user +
system) per GET is the cost. A live render also registers the page (its
record, the group's bounds, the mark when the request entered), which is
what the ratio shows. Issue 21's goal: live <= 1.3x plain.
"""
import argparse
import http.client
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import systems  # noqa: E402


def batch(conn, path, count):
    for _ in range(count):
        conn.request('GET', path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit('%s answered %d: %s' % (path, response.status,
                                                      body[:200]))
    return body


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--count', type=int, default=500)
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--broker', choices=('memory', 'redis'),
                   default='memory')
    p.add_argument('--out', help='also write the markdown table here')
    args = p.parse_args()
    redis = None
    settings = {}
    if args.broker == 'redis':
        redis = systems.RedisProcess().start()
        settings['broker'] = redis.url
    port = systems.free_port()
    server = systems.start_zorglive('liveserver-http', port, **settings)
    try:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        paths = {'plain': '/@@render-plain.html',
                 'live': '/@@render-live.html'}
        for path in paths.values():                 # warm-up
            body = batch(conn, path, 100)
        assert b'data-client-url' in body, 'not a live page'
        cpu = {name: 0.0 for name in paths}
        for _round in range(args.rounds):
            for name, path in paths.items():
                before = systems.cpu_s(server.pids)
                batch(conn, path, args.count)
                cpu[name] += systems.cpu_s(server.pids) - before
        conn.close()
    finally:
        server.stop()
        if redis is not None:
            redis.stop()
    n = args.count * args.rounds
    us = {name: total / n * 1e6 for name, total in cpu.items()}
    lines = [
        '| broker | plain view, server CPU µs per GET | LivePage, µs per '
        'GET | live / plain |',
        '|---|---|---|---|',
        '| %s | %.0f | %.0f | %.2f |' % (args.broker, us['plain'],
                                          us['live'],
                                          us['live'] / us['plain']),
        '',
        '%d GETs of each, %d rounds alternating; load average %s' % (
            n, args.rounds,
            ' '.join(open('/proc/loadavg').read().split()[:3])),
    ]
    print('\n'.join(lines))
    if args.out:
        with open(args.out, 'a') as f:
            f.write('\n'.join(lines) + '\n\n')


if __name__ == '__main__':
    main()
