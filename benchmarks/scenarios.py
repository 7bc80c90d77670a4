"""The scenarios. Each takes a Ctx (system, pool, settings, log) and returns
{metric name: value}; plot data goes to ctx.plot. Every scenario starts a
fresh server for each size so memory and state do not leak between them.
"""
import asyncio
import json
import os
import random
import statistics
import sys
import time

import loadgen
import systems


class Ctx:
    def __init__(self, system, pool, settings, log):
        self.system, self.pool, self.s, self.log = system, pool, settings, log
        self.plot = {}


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values))) - 1))
    return values[k]


def ms(x):
    return None if x is None else x * 1000.0


class Session:
    """A fresh server of ctx.system with n pages open (async with)."""

    def __init__(self, ctx, n, reconnect=False, timeout=None):
        self.ctx, self.n, self.reconnect = ctx, n, reconnect
        self.timeout = timeout or ctx.s['open_timeout']

    async def __aenter__(self):
        ctx = self.ctx
        self.port = systems.free_port()
        self.server = await ctx.system.start(self.port)
        try:
            await ctx.pool.configure(ctx.system.adapter,
                                     self.server.endpoints,
                                     ctx.system.adapter_options(self.server))
            await asyncio.sleep(0.3)
            self.rss0 = self.server.rss_kb()
            self.aux_rss0 = {name: systems.rss_kb([pid]) for name, pid
                             in self.server.aux_pids().items()}
            t0 = time.time()
            self.opened = await ctx.pool.open(self.n, self.timeout,
                                              self.reconnect)
        except BaseException:
            self.server.stop()
            raise
        last_live = max((a['last_live'] for a in self.opened), default=0.0)
        self.open_time = last_live - t0 if last_live else None
        self.live = sum(a['live'] for a in self.opened)
        self.errors = {}
        for a in self.opened:
            for k, v in a['errors'].items():
                self.errors[k] = self.errors.get(k, 0) + v
        per = ''
        if len(self.server.endpoints) > 1:
            per = ' (%s per process)' % '/'.join(
                str(sum(x)) for x in zip(*(a['live_by_endpoint']
                                           for a in self.opened)))
        ctx.log('  %d/%d pages live%s in %s%s' % (
            self.live, self.n, per,
            '%.2fs' % self.open_time if self.open_time is not None else '–',
            ' errors %s' % self.errors if self.errors else ''))
        return self

    async def __aexit__(self, *exc):
        try:
            await self.ctx.pool.close_pages()
        finally:
            self.server.stop()
        await asyncio.sleep(0.2)


async def capacity(ctx):
    out = {}
    for n in ctx.s['capacity_sizes']:
        ctx.log(' capacity N=%d' % n)
        async with Session(ctx, n) as sess:
            await asyncio.sleep(1.0)
            status = await ctx.pool.all('status')
            held = sum(a['live'] for a in status)
            rss1 = sess.server.rss_kb()
            per = (rss1 - sess.rss0) / float(n)
            out['pages held @%d' % n] = held
            out['failures @%d' % n] = n - held
            out['open time s @%d' % n] = (None if sess.open_time is None
                                          else round(sess.open_time, 2))
            out['server RSS KB/page @%d' % n] = round(per, 1)
            ctx.plot.setdefault('memory', []).append((n, per))
            aux = ''
            for name, pid in sess.server.aux_pids().items():
                # not in the server's KB/page: a process of its own
                # (redis-server), its RSS after the pages opened
                a1 = systems.rss_kb([pid])
                out['%s RSS MB @%d' % (name, n)] = round(a1 / 1024., 1)
                aux += '; %s RSS %.1f -> %.1f MB' % (
                    name, sess.aux_rss0.get(name, 0) / 1024., a1 / 1024.)
            ctx.log('  held %d, RSS %.0f -> %.0f MB, %.1f KB/page%s' % (
                held, sess.rss0 / 1024., rss1 / 1024., per, aux))
    return out


async def publish_and_wait(ctx, pub, seq, timeout):
    ok, t = await pub.publish(seq)
    await ctx.pool.all('await', seq, timeout)
    answers = await ctx.pool.all('collect', seq, seq)
    return ok, t, loadgen.latencies(answers, seq), answers


async def fanout(ctx):
    out = {}
    for n in ctx.s['fanout_sizes']:
        ctx.log(' fan-out N=%d x %d' % (n, ctx.s['fanout_repeats']))
        async with Session(ctx, n) as sess:
            pub = sess.server.publisher()
            lasts, p50s, missing = [], [], 0
            await publish_and_wait(ctx, pub, 0, 5.0)          # warm-up
            cpu0 = sum(a['cpu'] for a in await ctx.pool.all('status'))
            scpu0 = sess.server.cpu_s()
            for i in range(1, ctx.s['fanout_repeats'] + 1):
                ok, t, lat, _ = await publish_and_wait(ctx, pub, i, 10.0)
                missing += sess.live - len(lat)
                if lat:
                    lasts.append(max(lat))
                    p50s.append(statistics.median(lat))
                await asyncio.sleep(0.2)
            pub.close()
            cpu = sum(a['cpu'] for a in await ctx.pool.all('status')) - cpu0
            scpu = sess.server.cpu_s() - scpu0
        delivered = ctx.s['fanout_repeats'] * sess.live - missing
        out['last page ms p50 @%d' % n] = ms(pct(lasts, 50))
        out['last page ms p99 @%d' % n] = ms(pct(lasts, 99))
        out['median delivery ms @%d' % n] = ms(pct(p50s, 50))
        out['missed deliveries @%d' % n] = missing
        out['generator CPU us/delivery @%d' % n] = round(
            cpu / max(1, delivered) * 1e6, 1)
        # server CPU over the repeats (with 0.2 s pauses: idle work such as
        # heartbeats counts too), per page reached; redis-server's is in
        # publish-cost (too little here for /proc's 10 ms ticks)
        out['server CPU us/delivery @%d' % n] = round(
            scpu / max(1, delivered) * 1e6, 1)
        ctx.plot.setdefault('fanout', []).append((n, ms(pct(lasts, 50))))
        ctx.log('  last page p50 %.1f ms p99 %.1f ms, missed %d' % (
            ms(pct(lasts, 50)) or -1, ms(pct(lasts, 99)) or -1, missing))
    return out


async def sustained(ctx):
    """Steady publish rate ladder; stops after two rates not kept up."""
    n = ctx.s['sustained_size']
    ctx.log(' sustained N=%d rates %s ev/s' % (n, ctx.s['sustained_rates']))
    best = None
    seq = misses = 0
    async with Session(ctx, n) as sess:
        # up to 4 publishes in flight (nchan answers a publisher only once
        # its subscribers have the message)
        pubs = [sess.server.publisher() for _ in range(4)]
        idle = asyncio.Queue()
        for p in pubs:
            idle.put_nowait(p)
        pub = pubs[0]
        await publish_and_wait(ctx, pub, seq, 5.0)
        for rate in ctx.s['sustained_rates']:
            seq += 1
            first = seq
            times = {}
            cpu0 = [a['cpu'] for a in await ctx.pool.all('status')]
            t_start = time.time()
            count = int(rate * ctx.s['sustained_seconds'])
            tasks = []

            async def one(p, s):
                ok, times[s] = await p.publish(s)
                idle.put_nowait(p)
            for k in range(count):
                delay = t_start + k / float(rate) - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(await idle.get(),
                                                       seq)))
                seq += 1
            await asyncio.gather(*tasks)
            seq -= 1
            pub_rate = count / max(1e-6, time.time() - t_start)
            await ctx.pool.all('await', seq, ctx.s['drain_timeout'])
            await asyncio.sleep(0.2)       # publishes may arrive reordered
            answers = await ctx.pool.all('collect', first, seq)
            cpu = [a['cpu'] - c for a, c in zip(answers, cpu0)]
            lat, last_recv = [], t_start
            for s in range(first, seq + 1):
                ls = loadgen.latencies(answers, s)
                lat.extend(ls)
                if ls:
                    last_recv = max(last_recv, times[s] + max(ls))
            span = max(1e-6, last_recv - times[first])
            if not lat:         # nothing arrived: CPU over the wall time
                span = max(1e-6, time.time() - t_start)
            expected = count * sess.live
            got = len(lat)
            dps = got / span
            gen_cpu = max(cpu) / span * 100.0
            ctx.log('  %g ev/s (published %.1f/s): %d/%d delivered, %.0f '
                    'deliveries/s, p50 %.1f ms p99 %.1f ms, busiest '
                    'generator worker %.0f%% CPU' % (
                        rate, pub_rate, got, expected, dps,
                        ms(pct(lat, 50)) or -1, ms(pct(lat, 99)) or -1,
                        gen_cpu))
            kept_up = (got >= 0.99 * expected and pub_rate >= 0.9 * rate
                       and (pct(lat, 99) or 9) < 1.0)
            row = {'rate': rate, 'pub_rate': pub_rate, 'dps': dps, 'p50': ms(pct(lat, 50)),
                   'p99': ms(pct(lat, 99)), 'gen_cpu': gen_cpu,
                   'kept_up': kept_up}
            if best is None or dps > best['dps']:
                best = row
            misses = 0 if kept_up else misses + 1
            if misses >= 2:          # two rates in a row not kept up
                break
        for p in pubs:
            p.close()
    return {'pages': n,
            'max deliveries/s': round(best['dps']),
            'at publish rate ev/s (asked)': best['rate'],
            'publish rate ev/s (achieved)': round(best['pub_rate'], 1),
            'latency ms p50 there': best['p50'],
            'latency ms p99 there': best['p99'],
            'kept up with all rates': 'yes' if best['kept_up'] and
            best['rate'] == ctx.s['sustained_rates'][-1] else 'no',
            'busiest generator CPU %': round(best['gen_cpu'])}


async def chat(ctx):
    n, m = ctx.s['chat_receivers'], ctx.s['chat_senders']
    rate, secs = ctx.s['chat_rate'], ctx.s['chat_seconds']
    ctx.log(' chat: %d senders x %g msg/s -> %d receivers, %gs' % (
        m, rate, n, secs))
    async with Session(ctx, n) as sess:
        counter = iter(range(1, 10 ** 9))
        sent = []
        stop_at = time.time() + secs

        async def sender():
            pub = sess.server.publisher()
            await asyncio.sleep(random.uniform(0, 1.0 / rate))
            while time.time() < stop_at:
                seq = next(counter)
                ok, t = await pub.publish(seq)
                if ok:
                    sent.append(seq)
                await asyncio.sleep(random.expovariate(rate))
            pub.close()
        await asyncio.gather(*(sender() for _ in range(m)))
        last = max(sent) if sent else 1
        await ctx.pool.all('await', last, ctx.s['drain_timeout'])
        await asyncio.sleep(0.2)
        answers = await ctx.pool.all('collect', 1, last)
        lat = []
        for s in sent:
            lat.extend(loadgen.latencies(answers, s))
        expected = len(sent) * sess.live
    ctx.log('  %d messages, %d/%d deliveries, p50 %.1f ms p99 %.1f ms' % (
        len(sent), len(lat), expected, ms(pct(lat, 50)) or -1,
        ms(pct(lat, 99)) or -1))
    return {'receivers': n, 'senders': m, 'messages': len(sent),
            'latency ms p50': ms(pct(lat, 50)),
            'latency ms p99': ms(pct(lat, 99)),
            'missed deliveries': expected - len(lat)}


async def reconnect(ctx):
    out = {}
    for n in ctx.s['reconnect_sizes']:
        ctx.log(' reconnect storm N=%d' % n)
        async with Session(ctx, n, reconnect=True) as sess:
            await ctx.pool.all('reset')
            t_kill = time.time()
            await sess.server.restart()          # SIGKILL, same port(s)
            t_up = time.time()
            pub = sess.server.publisher()
            published, seq = [], 0
            deadline = t_up + ctx.s['reconnect_timeout']
            all_live_at = None
            while time.time() < deadline:
                seq += 1
                ok, t = await pub.publish(seq)
                if ok:
                    published.append(seq)
                live = await ctx.pool.live()
                if live >= sess.live and all_live_at is None:
                    all_live_at = time.time()
                if all_live_at and time.time() > all_live_at + 1.0:
                    break
                await asyncio.sleep(0.1)
            pub.close()
            await ctx.pool.all('await', seq, 3.0)
            status = await ctx.pool.all('wait_live', 0.1, t_up)
            answers = await ctx.pool.all('collect', 1, seq)
            nrecv = [c for a in answers for c in a['nrecv']]
            last_live = max(a['last_live'] for a in status)
            live = sum(a['live'] for a in status)
            missed = sum(max(0, len(published) - c) for c in nrecv)
            short = sum(1 for c in nrecv if c < len(published))
            errors = {}
            for a in status:
                for k, v in a['errors'].items():
                    errors[k] = errors.get(k, 0) + v
        took = (last_live - t_up) if live >= sess.live else None
        out['live again @%d' % n] = live
        out['s from restart to all live @%d' % n] = \
            round(took, 2) if took is not None else 'not all'
        out['s to kill + restart server @%d' % n] = round(t_up - t_kill, 2)
        out['events published @%d' % n] = len(published)
        out['deliveries missed @%d' % n] = missed
        out['pages that missed some @%d' % n] = short
        ctx.log('  %d/%d live again, %s s after restart (restart took '
                '%.2fs); %d events, %d deliveries missed on %d pages%s' % (
                    live, sess.live, out['s from restart to all live @%d' % n],
                    t_up - t_kill, len(published), missed, short,
                    ' errors %s' % errors if errors else ''))
    return out


_publish_cost_done = []


async def publish_cost(ctx):
    """publish_cost.py: LivePageManager.publish with the memory broker and
    with the redis broker, in one process, back to back (median of a few
    runs). Not per system: measured once, under the first redis system
    (its column holds both brokers' figures); None for the others."""
    if not ctx.system.name.startswith('zorg-redis') or \
            ctx.system.name in _publish_cost_done or \
            any(n.startswith('zorg-redis') for n in _publish_cost_done):
        if not _publish_cost_done:
            ctx.log(' publish-cost: measured once, under the first '
                    'zorg-redis system')
            _publish_cost_done.append('(said)')
        return None
    _publish_cost_done.append(ctx.system.name)
    count, rounds = ctx.s['publish_count'], ctx.s['publish_rounds']
    runs = []
    for i in range(ctx.s['publish_runs']):
        ctx.log(' publish-cost run %d: %d publishes per broker' % (
            i + 1, count))
        red = systems.RedisProcess()
        await asyncio.get_running_loop().run_in_executor(None, red.start)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, os.path.join(systems.HERE, 'publish_cost.py'),
                '--count', str(count), '--rounds', str(rounds),
                '--redis-url', red.url, '--redis-pid', str(red.pid),
                stdout=asyncio.subprocess.PIPE)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 300)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise
        finally:
            red.stop()
        if proc.returncode != 0:
            raise systems.NotAvailable('publish_cost.py failed (exit %s)'
                                       % proc.returncode)
        runs.append(json.loads(out.decode().strip().splitlines()[-1]))

    def med(broker, key):
        values = [r[broker][key] for r in runs
                  if r[broker].get(key) is not None]
        return statistics.median(values) if values else None

    out = {'publishes per broker and run': count,
           'runs (median of)': len(runs)}
    rows = [('us/publish', 'us/publish (one thread)'),
            ('us/publish, 4 threads', 'us/publish (4 threads at once)'),
            ('CPU us/publish (this process, incl. reading it back)',
             'process CPU us/publish (incl. reading it back)'),
            ('publish -> woken us p50', 'publish -> own process woken us '
             'p50'),
            ('publish -> woken us p99', 'publish -> own process woken us '
             'p99')]
    for key, title in rows:
        m, r = med('memory', key), med('redis', key)
        out['%s, memory broker' % title] = m
        out['%s, redis broker' % title] = r
        out['%s, redis / memory' % title] = (round(r / m, 1) if m and r
                                             else None)
    out['redis-server CPU us/publish'] = med('redis',
                                             'redis-server CPU us/publish')
    errors = [e for r in runs for b in ('memory', 'redis')
              for e in r[b]['errors']]
    if errors or not all(r[b]['read back'] for r in runs
                         for b in ('memory', 'redis')):
        out['errors'] = '; '.join(errors[:2]) or 'not read back'
    ctx.log('  us/publish: memory %.1f, redis %.1f (x%.1f); 4 threads: '
            'memory %.1f, redis %.1f; redis-server CPU %.1f us/publish' % (
                med('memory', 'us/publish'), med('redis', 'us/publish'),
                med('redis', 'us/publish') / med('memory', 'us/publish'),
                med('memory', 'us/publish, 4 threads'),
                med('redis', 'us/publish, 4 threads'),
                out['redis-server CPU us/publish'] or -1))
    return out


SCENARIOS = {'capacity': capacity, 'fanout': fanout, 'sustained': sustained,
             'chat': chat, 'reconnect': reconnect,
             'publish-cost': publish_cost}

QUICK = dict(capacity_sizes=[1000, 5000], fanout_sizes=[1000, 5000],
             fanout_repeats=5, sustained_size=2000,
             sustained_rates=[5, 10, 20, 40, 80], sustained_seconds=1.5,
             chat_receivers=1000, chat_senders=5, chat_rate=2.0,
             chat_seconds=3.0, reconnect_sizes=[2000], reconnect_timeout=20,
             drain_timeout=8.0, open_timeout=30.0,
             publish_count=2000, publish_rounds=300, publish_runs=3)
FULL = dict(capacity_sizes=[1000, 5000, 10000, 15000],
            fanout_sizes=[1000, 5000, 10000, 15000], fanout_repeats=20,
            sustained_size=10000, sustained_rates=[1, 2, 5, 10, 20, 40],
            sustained_seconds=4.0, chat_receivers=1000, chat_senders=10,
            chat_rate=2.0, chat_seconds=10.0, reconnect_sizes=[5000, 10000],
            reconnect_timeout=40, drain_timeout=15.0, open_timeout=90.0,
            publish_count=10000, publish_rounds=2000, publish_runs=3)
