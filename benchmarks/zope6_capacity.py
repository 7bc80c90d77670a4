#!/usr/bin/env python3
"""Capacity on Zope 6: N pages hold live output while ordinary pages answer.

    python benchmarks/zope6_capacity.py [--pages 1000] [--threads 2]

One real Zope 6 instance (``mkwsgiinstance``, the example's ``@@live-chat``
on the root folder), started with ``runwsgi etc/zope.ini`` twice:

- ``zope6-zorg``: ``[server:main] use = egg:zorg.live#main`` (LiveServerHTTP
  in front of Zope's WSGI pipeline), ``threads`` worker threads;
- ``zope6-waitress``: Zope 6's default server, waitress, with the same
  ``threads`` (the output requests are long-polls served by the Zope view,
  in waitress's threads);

and, for the memory per page, the BlueBream-style test site on
LiveServerHTTP (``bluebream-zorg``, ``zorg-live serve``).

For each: render N pages (anonymous visitors, so no per-user cap), then
send every page's output request at once and keep them open; while they
are held, time ordinary page requests (``@@live-items``, a Zope page that
opens the ZODB) one after another, each with a deadline. Reported: pages
whose output is held, ordinary requests answered within the deadline and
their latency, server RSS per page (held waits included). Writes
results/zope6-capacity.md.
"""

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import aiohttp  # noqa: E402

from systems import rss_kb  # noqa: E402
from zorg.live.tests.serverfixture import RunningServer  # noqa: E402
from zorg.live.zope6.tests.instance import ZopeInstance  # noqa: E402

CLIENT_URL = re.compile(r'data-client-url="([^"]+)"')
T0 = time.time()


def log(msg):
    print('[%6.1fs] %s' % (time.time() - T0, msg), flush=True)


class BlueBream(RunningServer):
    """The BlueBream-style test site, with the same interface."""

    page = '/@@livepage.html'
    ordinary = '/@@test-stats'

    @property
    def pid(self):
        return self.process.pid


class Zope(ZopeInstance):
    page = '/@@live-chat'
    ordinary = '/@@live-items'

    @property
    def pid(self):
        return self.process.pid


async def openPages(session, server, n, concurrency=8):
    """Render n pages; returns their output URLs."""
    sem = asyncio.Semaphore(concurrency)
    urls = []

    async def one():
        async with sem:
            async with session.get(server.url(server.page)) as r:
                html = await r.text()
                assert r.status == 200, (r.status, html[:500])
                urls.append(CLIENT_URL.search(html).group(1) + '/output')
    await asyncio.gather(*(one() for _ in range(n)))
    return urls


async def scenario(name, server, n, ordinary_count, deadline):
    result = {'system': name, 'pages': n}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout) as session:
        rss0 = rss_kb([server.pid])
        t = time.monotonic()
        urls = await openPages(session, server, n)
        result['render s'] = round(time.monotonic() - t, 1)
        log('%s: %d pages rendered in %.1fs' % (name, n,
                                               result['render s']))
        answered = []

        async def hold(url):
            try:
                async with session.get(url, params={'outputNum': '0'}) as r:
                    await r.read()
                    answered.append(r.status)
            except (aiohttp.ClientError, asyncio.CancelledError):
                pass
        holds = [asyncio.ensure_future(hold(u)) for u in urls]
        # Let every output request reach the server.
        await asyncio.sleep(3)
        latencies, failed = [], 0
        for _ in range(ordinary_count):
            t = time.monotonic()
            try:
                async with session.get(
                        server.url(server.ordinary),
                        timeout=aiohttp.ClientTimeout(total=deadline)) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if ok:
                latencies.append((time.monotonic() - t) * 1000)
            else:
                failed += 1
        held = sum(1 for h in holds if not h.done())
        rss1 = rss_kb([server.pid])
        for h in holds:
            h.cancel()
        await asyncio.gather(*holds, return_exceptions=True)
    result['output unanswered'] = held
    result['output answered early'] = len(answered)
    result['ordinary answered'] = '%d/%d' % (len(latencies), ordinary_count)
    result['ordinary ms p50'] = (round(statistics.median(latencies), 1)
                                 if latencies else '-')
    result['ordinary ms max'] = (round(max(latencies), 1)
                                 if latencies else '-')
    result['RSS KB/page'] = round((rss1 - rss0) / n, 1)
    log('%s: %r' % (name, result))
    return result


def table(results, pages, threads, deadline):
    keys = ['pages', 'render s', 'output unanswered', 'output answered early',
            'ordinary answered', 'ordinary ms p50', 'ordinary ms max',
            'RSS KB/page']
    names = [r['system'] for r in results]
    lines = ['# Zope 6 capacity: %d pages, %d worker threads' % (
        pages, threads), '',
        '- date: %s' % time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
        '- machine: %d CPUs, Python %s; load average at end: %s' % (
            os.cpu_count(), sys.version.split()[0],
            ' '.join(open('/proc/loadavg').read().split()[:3])),
        '- command: `python benchmarks/zope6_capacity.py --pages %d '
        '--threads %d`' % (pages, threads),
        '- ordinary requests: one after another while the output requests '
        'are held, each with a %gs deadline' % deadline, '',
        '| metric | %s | zope6-zorg / zope6-waitress |' % ' | '.join(names),
        '|---|%s---|' % ('---|' * len(names))]
    by = {r['system']: r for r in results}
    for key in keys:
        row = [str(by[n].get(key, '-')) for n in names]
        ratio = '-'
        a, b = by.get('zope6-zorg', {}).get(key), by.get(
            'zope6-waitress', {}).get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            ratio = '%.2f' % (a / b)
        lines.append('| %s | %s | %s |' % (key, ' | '.join(row), ratio))
    lines += [
        '',
        '- *output unanswered*: output requests still open when the '
        'ordinary requests are done. On LiveServerHTTP each is a page held '
        'in the event loop; on waitress only `threads` of them are in Zope '
        'at a time (each holding a worker thread and a ZODB connection '
        'until its refresh interval ends), the others wait in waitress\'s '
        'queue -- so are the ordinary requests, which therefore time out.',
        '- *output answered early*: answered before the end (waitress: the '
        'ones whose worker thread reached the refresh interval, 25s).',
        '- *RSS KB/page*: growth of the server process from before the '
        'pages were rendered to while their output is held, per page. '
        'waitress\'s is small because the queued requests are not read '
        'yet: they cost the kernel, not Zope.',
        '- ordinary page: `@@live-items` on Zope 6 (ZPublisher, one ZODB '
        'connection), `@@test-stats` on the BlueBream site.']
    return '\n'.join(lines) + '\n'


async def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pages', type=int, default=1000)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--ordinary', type=int, default=10)
    p.add_argument('--deadline', type=float, default=5.0)
    p.add_argument('--out', default=os.path.join(HERE, 'results',
                                                 'zope6-capacity.md'))
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # Waits longer than the measurement: held output stays held.
        zope = Zope(os.path.join(tmp, 'zope6'), threads=args.threads,
                    refresh_interval=120)
        for kind in ('zorg.live', 'waitress'):
            zope.server = kind
            with zope:
                results.append(await scenario(
                    'zope6-zorg' if kind == 'zorg.live' else 'zope6-waitress',
                    zope, args.pages, args.ordinary, args.deadline))
        site = BlueBream(os.path.join(tmp, 'bluebream'), threads=args.threads,
                         refresh_interval=120)
        with site:
            results.append(await scenario('bluebream-zorg', site, args.pages,
                                          args.ordinary, args.deadline))
    text = table(results, args.pages, args.threads, args.deadline)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)


if __name__ == '__main__':
    asyncio.run(main())
