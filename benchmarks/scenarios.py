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
import urllib.request

import loadgen
import systems

HERE = os.path.dirname(os.path.abspath(__file__))


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


# a process at or above this share of one core is the limit
BUSY = 0.90


class CpuWindow:
    """Who used the CPU during a window: the generator's worker processes
    (the pages) and the coordinator (this process: the publishers), the
    server's processes, its helpers (redis-server) and the whole machine
    (/proc/stat), to tell whether the load generator, not the server, was
    the limit. start() / stop() may be called several times: the windows
    add up (fan-out: one window per repeat)."""

    def __init__(self, ctx, server):
        self.ctx, self.server = ctx, server
        self.wall = 0.0
        self.workers = None
        self.coord = self.aux = self.busy = self.irq = 0.0
        self.server_procs = {}

    def _aux(self):
        return sum(systems.cpu_s([pid])
                   for pid in self.server.aux_pids().values())

    async def start(self):
        status = await self.ctx.pool.all('status')
        self._w0 = [a['cpu'] for a in status]
        self._c0 = time.process_time()
        self._s0 = self.server.cpu_by_process()
        self._a0 = self._aux()
        self._m0 = systems.machine_cpu()
        self._t0 = time.time()

    def stop(self, answers):
        """answers: the workers' answers at the end of the window (each
        with 'cpu', their time.process_time())."""
        t1 = time.time()
        m1 = systems.machine_cpu()
        s1 = self.server.cpu_by_process()
        w = [a['cpu'] - c for a, c in zip(answers, self._w0)]
        self.workers = w if self.workers is None else [
            x + y for x, y in zip(self.workers, w)]
        self.coord += time.process_time() - self._c0
        for pid, c in s1.items():
            self.server_procs[pid] = self.server_procs.get(pid, 0.0) + \
                c - self._s0.get(pid, 0.0)
        self.aux += self._aux() - self._a0
        busy, total = m1[0] - self._m0[0], m1[1] - self._m0[1]
        self.busy += busy / max(1e-9, total) * (t1 - self._t0)
        self.irq += (m1[2] - self._m0[2]) / max(1e-9, total) * (
            t1 - self._t0)
        self.wall += t1 - self._t0

    def figures(self):
        wall = max(1e-6, self.wall)
        nproc = os.cpu_count() or 1
        gen = (sum(self.workers or [0]) + self.coord) / wall
        server = sum(self.server_procs.values()) / wall
        busy = self.busy / wall * nproc
        return {
            'busiest generator process CPU %': round(100 * max(
                (self.workers or [0]) + [self.coord]) / wall),
            'generator CPU cores (pages + publishers)': round(gen, 2),
            'server CPU cores': round(server, 2),
            'busiest server process CPU %': round(100 * max(
                list(self.server_procs.values()) or [0]) / wall),
            'redis-server CPU cores': round(self.aux / wall, 2)
            if self.server.aux_pids() else None,
            'machine idle cores (of %d)' % nproc: round(nproc - busy, 2),
            # other engineers' tests on the shared machine
            'interrupts CPU cores (loopback traffic)': round(
                self.irq / wall * nproc, 2),
            'other processes CPU cores': round(max(
                0.0, busy - self.irq / wall * nproc - gen - server -
                self.aux / wall), 2),
        }

    def limit(self, publishers_short=False):
        """What bounded the figure: 'load generator', 'server',
        'publishers' or None (none of them at its limit)."""
        f = self.figures()
        nproc = os.cpu_count() or 1
        idle = f['machine idle cores (of %d)' % nproc]
        if f['busiest server process CPU %'] >= 100 * BUSY:
            return 'server (its busiest process %d %% of a core)' % (
                f['busiest server process CPU %'])
        if f['busiest generator process CPU %'] >= 100 * BUSY:
            return 'load generator (its busiest process %d %% of a ' \
                'core)' % f['busiest generator process CPU %']
        gen = f['generator CPU cores (pages + publishers)']
        others = f['other processes CPU cores']
        if idle <= (1 - BUSY) * nproc and others >= max(0.25, gen):
            return 'other processes (the machine is saturated; they take ' \
                '%.2f of its %d cores, the generator %.2f, the server ' \
                '%.2f)' % (others, nproc, gen, f['server CPU cores'])
        if idle <= (1 - BUSY) * nproc and gen >= 0.25:
            return 'load generator (the machine is saturated; the ' \
                'generator takes %.2f of its %d cores, the server %.2f)' % (
                    gen, nproc, f['server CPU cores'])
        if publishers_short:
            return 'publishers (all in flight, rate not reached)'
        return None


class Session:
    """A fresh server of ctx.system with n pages open (async with)."""

    def __init__(self, ctx, n, reconnect=False, timeout=None, options=None):
        self.ctx, self.n, self.reconnect = ctx, n, reconnect
        self.timeout = timeout or ctx.s['open_timeout']
        self.options = options or {}        # adapter options (pages=5)

    async def __aenter__(self):
        ctx = self.ctx
        self.port = systems.free_port()
        self.server = await ctx.system.start(self.port)
        try:
            await ctx.pool.configure(ctx.system.adapter,
                                     self.server.endpoints,
                                     dict(ctx.system.adapter_options(
                                         self.server), **self.options))
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
        self.not_live = {}
        for a in self.opened:
            for k, v in a['errors'].items():
                self.errors[k] = self.errors.get(k, 0) + v
            for k, v in a.get('not_live', {}).items():
                self.not_live[k] = self.not_live.get(k, 0) + v
        per = ''
        if len(self.server.endpoints) > 1:
            per = ' (%s per process)' % '/'.join(
                str(sum(x)) for x in zip(*(a['live_by_endpoint']
                                           for a in self.opened)))
        ctx.log('  %d/%d pages live%s in %s%s' % (
            self.live, self.n, per,
            '%.2fs' % self.open_time if self.open_time is not None else '–',
            ' errors %s' % self.errors if self.errors else ''))
        self.server_steps = None
        if self.live < self.n:
            ctx.log('  NOT LIVE at the open timeout: %d pages%s'
                    % (self.n - self.live, ', by the step they stopped at '
                       '(WebSocket pages): %s' % describe(self.not_live)
                       if self.not_live else ''))
            self.server_steps = await serverSteps(ctx, self.server)
            if self.server_steps:
                ctx.log('  the server(s) received / answered: %s'
                        % describeServer(self.server_steps))
        self.timeout_live = self.live
        self.late = None
        patience = ctx.s.get('open_patience', 0)
        if self.live < self.n and patience:
            await self.wait_on(t0, patience)
        self.end_live = self.end_not_live = None
        return self

    async def wait_on(self, t0, patience, quiet=10.0):
        """Slow or lost? After the open timeout, wait on while pages
        still come live (at most `patience` seconds, and `quiet` seconds
        without one), so that a loaded machine's run is measured with all
        its pages; the time to open them is then the time it took."""
        ctx = self.ctx
        t1 = quiet_since = time.time()
        live = self.live
        while time.time() - t1 < patience:
            statuses = await ctx.pool.all('wait_live', 2.0, t0)
            now = sum(a['live'] for a in statuses)
            if now > live:
                live, quiet_since = now, time.time()
            if live >= self.n or time.time() - quiet_since > quiet:
                break
        self.late = live - self.live
        last_live = max((a['last_live'] for a in statuses), default=0.0)
        if live > self.live and last_live:
            self.open_time = last_live - t0
        self.live = live
        ctx.log('  %d more pages live in %.0f s more (open_patience): '
                '%d/%d live, in %.2fs' % (
                    self.late, time.time() - t1, live, self.n,
                    self.open_time or 0))

    async def __aexit__(self, *exc):
        try:
            if self.timeout_live < self.n:
                # Were they slow (answered after the open timeout) or
                # lost (no answer by the end of the scenario)?
                statuses = await self.ctx.pool.all('status')
                self.end_live = sum(a['live'] for a in statuses)
                self.end_not_live = {}
                for a in statuses:
                    for k, v in a.get('not_live', {}).items():
                        self.end_not_live[k] = \
                            self.end_not_live.get(k, 0) + v
                self.ctx.log('  at the end of the scenario: %d/%d pages '
                             'live%s' % (self.end_live, self.n, (
                                 '; still not live: %s'
                                 % describe(self.end_not_live))
                                 if self.end_not_live else ''))
            await self.ctx.pool.close_pages()
        finally:
            self.server.stop()
        await asyncio.sleep(0.2)

    def rows(self):
        """The pages that were not live when the open timeout ended, by
        the step they waited at (WebSocket pages: an attach or a handshake
        without an answer), and how many of them came live later: a
        benchmark whose pages never attached says so in its table."""
        n = self.n
        out = {'pages not live at the open timeout @%d' % n:
               n - self.timeout_live}
        if self.not_live:
            out['... by the step they waited at @%d' % n] = describe(
                self.not_live)
        if self.server_steps:
            out['... the server then: received / answered @%d' % n] = \
                describeServer(self.server_steps)
        if self.late is not None:
            out['... live after waiting on (open_patience) @%d' % n] = \
                self.late
        if self.end_live is not None:
            out['... live by the end of the scenario @%d' % n] = \
                self.end_live - self.timeout_live
            if self.end_not_live:
                out['... never live (step at the end) @%d' % n] = \
                    describe(self.end_not_live)
        return out


# What wsclient.WsConn.step names (the step a connection waits at).
STEP_NAMES = {'attach-sent': 'attach unanswered',
              'handshake-sent': 'handshake unanswered',
              'open': 'open, attach not sent',
              'render-sent': 'render unanswered',
              'render-connecting': 'render connecting',
              'ws-connecting': 'WebSocket connecting',
              'new': 'not started'}


async def serverSteps(ctx, server):
    """zorg.live: the WebSocket handshakes and attaches its processes
    received and answered (@@live-health's "websocket"), summed; None
    for a peer or when a process does not answer."""
    if ctx.system.kind != 'zorg':
        return None

    def fetch(host, port):
        with urllib.request.urlopen('http://%s:%d/@@live-health'
                                    % (host, port), timeout=10) as r:
            return json.loads(r.read()).get('websocket', {})
    total = {}
    loop = asyncio.get_running_loop()
    for host, port in server.endpoints:
        try:
            steps = await loop.run_in_executor(None, fetch, host, port)
        except (OSError, ValueError) as e:
            if getattr(e, 'code', None) != 503:   # (503: still a body)
                return None
            steps = json.loads(e.read()).get('websocket', {})
        for k, v in steps.items():
            total[k] = total.get(k, 0) + v
    return total


def describeServer(steps):
    """'handshakes 10000 / 10000, attaches 9990 / 9990 (2 refused)'."""
    g = steps.get
    return ('handshakes %d / %d (%d refused, %d gone), attaches %d / %d '
            '(%d refused, %d gone)' % (
                g('handshakes', 0), g('opened', 0) + g('handshakes-refused',
                                                       0)
                + g('handshakes-gone', 0),
                g('handshakes-refused', 0), g('handshakes-gone', 0),
                g('attaches', 0),
                g('attached', 0) + g('attaches-refused', 0)
                + g('attaches-gone', 0), g('attaches-refused', 0),
                g('attaches-gone', 0)))


def describe(steps):
    """'12 attach unanswered, 3 dead: handshake unanswered' from
    {step: count} (a 'dead:' step gave up: its connection was lost or
    refused, see the errors)."""
    def name(step):
        if step.startswith('attach-refused-'):
            return 'attach refused (%s)' % step[len('attach-refused-'):]
        return STEP_NAMES.get(step, step)
    return ', '.join('%d %s%s' % (v, 'dead: ' if k.startswith('dead:')
                                  else '', name(k.split(':')[-1]))
                     for k, v in sorted(steps.items(), key=lambda kv:
                                        -kv[1]))


async def settled_rss(server, least=1.0, most=5.0):
    """Server RSS (kB) once it has stopped moving, (as read, after
    collecting): sampled every 0.25 s after `least` seconds, until two
    samples in a row differ by less than 0.5 % (or `most` seconds); then
    the Python servers collect their garbage and trim their heaps
    (memprobe/) and RSS is read again."""
    await asyncio.sleep(least)
    t_end = time.time() + most - least
    prev = server.rss_kb()
    while time.time() < t_end:
        await asyncio.sleep(0.25)
        now = server.rss_kb()
        if abs(now - prev) <= 0.005 * max(now, 1):
            break
        prev = now
    else:
        now = prev
    traced = await asyncio.get_running_loop().run_in_executor(
        None, server.collect_memory)
    if traced is not None:
        TRACED.append(traced)
    return now, server.rss_kb()


TRACED = []     # capacity_tracemalloc: bytes traced at each step


async def capacity(ctx):
    """N pages held open; memory per page in two parts for zorg.live.

    Measured in steps on one fresh server: (1) warm-up: WARM pages opened
    in full and closed (the first requests' lazy imports, caches and
    thread arenas are not the pages'); baseline RSS once settled; (2)
    zorg.live only: N pages registered (rendered, no stream), RSS once
    settled -> KB per registered page; (3) their N streams opened, RSS
    once settled -> KB per open stream. The peers have no registration:
    step 3 alone (per open stream = per page)."""
    out = {}
    warm = ctx.s.get('capacity_warmup', 300)
    # requests in flight per generator worker: each one queued in the
    # server holds request objects; 256 per worker left ~10 MB of freed
    # memory in the server after the burst, which RSS counts and the next
    # step reuses
    conc = ctx.s.get('capacity_concurrency', 64)
    passes = [(n, False) for n in ctx.s['capacity_sizes']]
    traced_n = ctx.s.get('capacity_tracemalloc', 0)
    if traced_n and ctx.system.kind == 'zorg':
        # once more with tracemalloc in the server (1: at the largest
        # size, N > 1: at N pages; slow): Python's bytes per registered
        # page and per stream (RSS cannot tell them apart: the streams
        # reuse memory the renders freed)
        passes.append((max(ctx.s['capacity_sizes']) if traced_n == 1
                       else traced_n, True))
    for n, trace in passes:
        ctx.log(' capacity N=%d%s' % (n, ' (tracemalloc)' if trace else ''))
        port = systems.free_port()
        if trace:       # slower, but counts Python's bytes
            os.environ['PYTHONTRACEMALLOC'] = '1'
        try:
            server = await ctx.system.start(port)
        finally:
            os.environ.pop('PYTHONTRACEMALLOC', None)
        del TRACED[:]
        try:
            await ctx.pool.configure(ctx.system.adapter, server.endpoints,
                                     ctx.system.adapter_options(server))
            await asyncio.sleep(0.3)
            rss_start = server.rss_kb()
            if 'wsgi' in ctx.system.name:
                # its long-polls would hold its few threads past the
                # warm-up: registrations only
                await ctx.pool.register(warm, ctx.s['open_timeout'], conc)
            else:
                await ctx.pool.open(warm, ctx.s['open_timeout'],
                                    concurrency=conc)
            await ctx.pool.close_pages()
            rss0r, rss0 = await settled_rss(server)
            t0 = time.time()
            zorg = ctx.system.kind == 'zorg'
            rss_reg_r, rss_reg = rss0r, rss0
            registered = n
            if zorg:
                regs = await ctx.pool.register(n, ctx.s['open_timeout'],
                                               conc)
                registered = sum(a['registered'] for a in regs)
                t_reg = max((a['last_registered'] for a in regs),
                            default=t0) - t0
                rss_reg_r, rss_reg = await settled_rss(server)
                t1 = time.time()
                scpu1 = server.cpu_s()
                opened = await ctx.pool.all('stream', ctx.s['open_timeout'],
                                            conc)
            else:
                t_reg = 0.0
                t1 = time.time()
                scpu1 = server.cpu_s()
                opened = await ctx.pool.open(n, ctx.s['open_timeout'],
                                             concurrency=conc)
            # the server's CPU for opening the streams (WebSocket: the
            # handshake and, for zorg.live, attaching the page rendered
            # before), per stream that became live
            scpu_open = server.cpu_s() - scpu1
            last_live = max((a['last_live'] for a in opened), default=0.0)
            t_stream = last_live - t1 if last_live else None
            await asyncio.sleep(1.0)
            status = await ctx.pool.all('status')
            held = sum(a['live'] for a in status)
            rss1r, rss1 = await settled_rss(server, least=0.0)
            aux = {name: systems.rss_kb([pid])
                   for name, pid in server.aux_pids().items()}
        finally:
            try:
                await ctx.pool.close_pages()
            finally:
                server.stop()
            await asyncio.sleep(0.2)
        if trace:
            if len(TRACED) == 3:
                out['server Python KB per registered page (tracemalloc) '
                    '@%d' % n] = round((TRACED[1] - TRACED[0]) / 1024. / n, 1)
                out['server Python KB per open stream (tracemalloc) @%d'
                    % n] = round((TRACED[2] - TRACED[1]) / 1024. /
                                 max(1, held), 1)
                ctx.log('  tracemalloc: %.1f KB per registered page, %.1f '
                        'KB per open stream' % (
                            (TRACED[1] - TRACED[0]) / 1024. / n,
                            (TRACED[2] - TRACED[1]) / 1024. / max(1, held)))
            continue
        per = (rss1 - rss0) / float(n)
        out['pages held @%d' % n] = held
        out['failures @%d' % n] = n - held
        out['open time s (register + streams) @%d' % n] = (
            None if t_stream is None else round(t_reg + t_stream, 2))
        live_n = sum(a['live'] for a in opened) if opened and \
            'live' in opened[0] else held
        out['server CPU ms per stream opened (WebSocket: handshake + '
            'attach) @%d' % n] = round(scpu_open / max(1, live_n) * 1e3, 3)
        out['server RSS KB/page (registered + stream) @%d' % n] = \
            round(per, 1)
        # RSS steps: per registered page (upper bound: it holds memory
        # the renders freed) and per stream (lower bound: streams reuse
        # it); the tracemalloc pass splits them exactly
        out['server RSS KB per registered page (RSS step) @%d' % n] = (
            round((rss_reg - rss0) / float(registered), 1) if zorg and
            registered else None)
        out['server RSS KB per open stream (RSS step) @%d' % n] = round(
            (rss1 - rss_reg) / float(max(1, held)), 1)
        # the old figure: RSS as read, baseline 0.3 s after the start
        # (before any page: the first requests' imports and caches and
        # the garbage of the renders counted as the pages')
        out['server RSS KB/page, old way (as read, baseline at start) @%d'
            % n] = round((rss1r - rss_start) / float(n), 1)
        out['server RSS MB at start / after warm-up / registered / '
            'streams (as read -> collected) @%d' % n] = \
            '%.0f / %.0f->%.0f / %.0f->%.0f / %.0f->%.0f' % (
                rss_start / 1024., rss0r / 1024., rss0 / 1024.,
                rss_reg_r / 1024., rss_reg / 1024., rss1r / 1024.,
                rss1 / 1024.)
        ctx.plot.setdefault('memory', []).append((n, per))
        note = ''
        for name, kb in aux.items():
            # not in the server's KB/page: a process of its own
            # (redis-server), its RSS after the pages opened
            out['%s RSS MB @%d' % (name, n)] = round(kb / 1024., 1)
            note += '; %s RSS %.1f MB' % (name, kb / 1024.)
        ctx.log('  held %d; RSS MB at start / after %d warm-up pages / '
                'registered / streams (as read -> collected): %s; %.1f '
                'KB/page = %s registered + %.1f stream (old way %.1f)%s' % (
                    held, warm, out['server RSS MB at start / after warm-up '
                                    '/ registered / streams (as read -> '
                                    'collected) @%d' % n], per,
                    out['server RSS KB per registered page (RSS step) @%d'
                        % n],
                    out['server RSS KB per open stream (RSS step) @%d' % n],
                    out['server RSS KB/page, old way (as read, baseline at '
                        'start) @%d' % n], note))
    return out


async def publish_and_wait(ctx, pub, seq, timeout, window=None):
    if window is not None:
        await window.start()
    ok, t = await pub.publish(seq)
    done = await ctx.pool.all('await', seq, timeout)
    if window is not None:
        window.stop(done)
    answers = await ctx.pool.all('collect', seq, seq)
    return ok, t, loadgen.latencies(answers, seq), answers


def mark(out, row, limit):
    """Mark a figure of the table with what bounded it (report.py prints
    it beside the figure and its ratios)."""
    if limit:
        out.setdefault('_marks', {})[row] = 'bound by the ' + limit.split(
            ' (')[0]
        out.setdefault('_notes', []).append('%s: bound by the %s' % (
            row, limit))


async def fanout_rounds(ctx, server, live, repeats):
    """`repeats` events published one after the other (after a warm-up
    event) to the `live` pages open on `server`, each awaited by every
    page (10 s at most). Returns (last-page times, median latencies,
    deliveries missed, the CpuWindow of the fan-outs, generator CPU s,
    server CPU s)."""
    pub = server.publisher()
    lasts, p50s, missing = [], [], 0
    await publish_and_wait(ctx, pub, 0, 5.0)          # warm-up
    cpu0 = sum(a['cpu'] for a in await ctx.pool.all('status'))
    scpu0 = server.cpu_s()
    # CPU during the fan-outs only (publish until every page has
    # it): was the generator the limit?
    window = CpuWindow(ctx, server)
    for i in range(1, repeats + 1):
        ok, t, lat, _ = await publish_and_wait(ctx, pub, i, 10.0, window)
        missing += live - len(lat)
        if lat:
            lasts.append(max(lat))
            p50s.append(statistics.median(lat))
        await asyncio.sleep(0.2)
    pub.close()
    cpu = sum(a['cpu'] for a in await ctx.pool.all('status')) - cpu0
    return lasts, p50s, missing, window, cpu, server.cpu_s() - scpu0


async def fanout(ctx):
    out = {}
    for n in ctx.s['fanout_sizes']:
        ctx.log(' fan-out N=%d x %d' % (n, ctx.s['fanout_repeats']))
        async with Session(ctx, n) as sess:
            lasts, p50s, missing, window, cpu, scpu = await fanout_rounds(
                ctx, sess.server, sess.live, ctx.s['fanout_repeats'])
        delivered = ctx.s['fanout_repeats'] * sess.live - missing
        out.update(sess.rows())
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
        for k, v in window.figures().items():
            out['%s, during fan-out @%d' % (k, n)] = v
        limit = window.limit()
        out['bound by @%d' % n] = limit.split(' (')[0] if limit else '–'
        for row in ('last page ms p50 @%d' % n, 'last page ms p99 @%d' % n):
            mark(out, row, limit)
        ctx.plot.setdefault('fanout', []).append((n, ms(pct(lasts, 50))))
        ctx.log('  last page p50 %.1f ms p99 %.1f ms, missed %d; %s' % (
            ms(pct(lasts, 50)) or -1, ms(pct(lasts, 99)) or -1, missing,
            'bound by the ' + limit if limit else 'no limit reached'))
    return out


async def sustained(ctx):
    """Steady publish rate ladder; stops after two rates not kept up.

    Up to publish_slots publishes in flight (nchan answers a publisher
    only once its subscribers have the message, so 4 capped nchan at ~10
    events/s); each step records who used the CPU (CpuWindow) and whether
    the publishers ran short."""
    n = ctx.s['sustained_size']
    slots = ctx.s.get('publish_slots', 16)
    ctx.log(' sustained N=%d rates %s ev/s, %d publishes in flight at '
            'most' % (n, ctx.s['sustained_rates'], slots))
    best = None
    seq = misses = 0
    async with Session(ctx, n) as sess:
        pubs = [sess.server.publisher() for _ in range(slots)]
        idle = asyncio.Queue()
        for p in pubs:
            idle.put_nowait(p)
        pub = pubs[0]
        await publish_and_wait(ctx, pub, seq, 5.0)
        for rate in ctx.s['sustained_rates']:
            seq += 1
            first = seq
            times = {}
            window = CpuWindow(ctx, sess.server)
            await window.start()
            t_start = time.time()
            count = int(rate * ctx.s['sustained_seconds'])
            tasks = []
            starved = 0         # a publish waited for a free slot

            async def one(p, s):
                ok, times[s] = await p.publish(s)
                idle.put_nowait(p)
            for k in range(count):
                delay = t_start + k / float(rate) - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if idle.empty():
                    starved += 1
                tasks.append(asyncio.ensure_future(one(await idle.get(),
                                                       seq)))
                seq += 1
            await asyncio.gather(*tasks)
            seq -= 1
            # achieved rate: between the first and the last publish sent
            # (count - 1 intervals; count / elapsed overstated it)
            pub_rate = (count - 1) / max(1e-6, times[seq] - times[first]) \
                if count > 1 else float(rate)
            done = await ctx.pool.all('await', seq, ctx.s['drain_timeout'])
            window.stop(done)
            await asyncio.sleep(0.2)       # publishes may arrive reordered
            answers = await ctx.pool.all('collect', first, seq)
            lat, last_recv = [], t_start
            for s in range(first, seq + 1):
                ls = loadgen.latencies(answers, s)
                lat.extend(ls)
                if ls:
                    last_recv = max(last_recv, times[s] + max(ls))
            span = max(1e-6, last_recv - times[first])
            if not lat:         # nothing arrived: over the wall time
                span = max(1e-6, time.time() - t_start)
            expected = count * sess.live
            got = len(lat)
            dps = got / span
            fig = window.figures()
            short = pub_rate < 0.9 * rate and starved > 0
            limit = window.limit(publishers_short=short)
            ctx.log('  %g ev/s (published %.1f/s): %d/%d delivered, %.0f '
                    'deliveries/s, p50 %.1f ms p99 %.1f ms; CPU: busiest '
                    'generator process %d%%, generator %.2f cores, server '
                    '%.2f cores, idle %.2f; %s' % (
                        rate, pub_rate, got, expected, dps,
                        ms(pct(lat, 50)) or -1, ms(pct(lat, 99)) or -1,
                        fig['busiest generator process CPU %'],
                        fig['generator CPU cores (pages + publishers)'],
                        fig['server CPU cores'],
                        fig['machine idle cores (of %d)' % (
                            os.cpu_count() or 1)],
                        'bound by the ' + limit if limit else 'no limit '
                        'reached'))
            kept_up = (got >= 0.99 * expected and pub_rate >= 0.9 * rate
                       and (pct(lat, 99) or 9) < 1.0)
            row = {'rate': rate, 'pub_rate': pub_rate, 'dps': dps,
                   'p50': ms(pct(lat, 50)), 'p99': ms(pct(lat, 99)),
                   'fig': fig, 'limit': limit, 'kept_up': kept_up,
                   'server_us': sum(window.server_procs.values()) /
                   max(1, got) * 1e6}
            if best is None or dps > best['dps']:
                best = row
            misses = 0 if kept_up else misses + 1
            if misses >= 2:          # two rates in a row not kept up
                break
        for p in pubs:
            p.close()
    out = {'pages': n,
           'max deliveries/s': round(best['dps']),
           'bound by': best['limit'].split(' (')[0] if best['limit']
           else '–',
           'at publish rate ev/s (asked)': best['rate'],
           'publish rate ev/s (achieved)': round(best['pub_rate'], 1),
           'publishes in flight at most': slots,
           'latency ms p50 there': best['p50'],
           'latency ms p99 there': best['p99'],
           'kept up with all rates': 'yes' if best['kept_up'] and
           best['rate'] == ctx.s['sustained_rates'][-1] else 'no',
           'server CPU us/delivery there': round(best['server_us'], 1)}
    out.update(best['fig'])
    out.update(sess.rows())
    mark(out, 'max deliveries/s', best['limit'])
    return out


async def chat_traffic(ctx, sess, secs):
    """The chat's traffic on `sess` for `secs`: senders at chat_rate, each
    message awaited by every page. (latencies, messages sent, deliveries
    expected, the CPU window)."""
    rate = ctx.s['chat_rate']
    counter = iter(range(1, 10 ** 9))
    sent = []
    # who used the CPU while the messages went out and arrived
    window = CpuWindow(ctx, sess.server)
    await window.start()
    stop_at = time.time() + secs

    async def sender():
        pub = systems.chat_publisher(ctx.system, sess.server)
        await asyncio.sleep(random.uniform(0, 1.0 / rate))
        while time.time() < stop_at:
            seq = next(counter)
            ok, t = await pub.publish(seq)
            if ok:
                sent.append(seq)
            await asyncio.sleep(random.expovariate(rate))
        pub.close()
    await asyncio.gather(*(sender() for _ in range(ctx.s['chat_senders'])))
    last = max(sent) if sent else 1
    window.stop(await ctx.pool.all('await', last, ctx.s['drain_timeout']))
    await asyncio.sleep(0.2)
    answers = await ctx.pool.all('collect', 1, last)
    lat = []
    for s in sent:
        lat.extend(loadgen.latencies(answers, s))
    return lat, sent, len(sent) * sess.live, window


async def chat(ctx):
    n, m = ctx.s['chat_receivers'], ctx.s['chat_senders']
    rate, secs = ctx.s['chat_rate'], ctx.s['chat_seconds']
    ctx.log(' chat: %d senders x %g msg/s -> %d receivers, %gs' % (
        m, rate, n, secs))
    async with Session(ctx, n) as sess:
        lat, sent, expected, window = await chat_traffic(ctx, sess, secs)
    limit = window.limit()
    ctx.log('  %d messages, %d/%d deliveries, p50 %.1f ms p99 %.1f ms; %s'
            % (len(sent), len(lat), expected, ms(pct(lat, 50)) or -1,
               ms(pct(lat, 99)) or -1, 'bound by the ' + limit if limit
               else 'no limit reached'))
    out = {'receivers': n, 'senders': m, 'messages': len(sent),
           'input': 'over the socket' if websocket(ctx) else 'HTTP POST',
           'latency ms p50': ms(pct(lat, 50)),
           'latency ms p99': ms(pct(lat, 99)),
           'missed deliveries': expected - len(lat),
           'bound by': limit.split(' (')[0] if limit else '–'}
    out.update(window.figures())
    out.update(sess.rows())
    for row in ('latency ms p50', 'latency ms p99'):
        mark(out, row, limit)
    return out


async def health_watch(port, stop, answers, counted, interval=0.5):
    """GET @@live-health every `interval` (a new connection each, from
    the trusted 127.0.0.1) until `stop` is set: (status, seconds) each;
    a timeout or refused connection is status 0. `counted`: its last
    'refused'."""
    request = (b'GET /@@live-health HTTP/1.1\r\nHost: 127.0.0.1\r\n'
               b'Connection: close\r\n\r\n')
    while not stop.is_set():
        t = time.perf_counter()
        status = 0
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection('127.0.0.1', port), 10)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), 10)
            status = int(answer.split(b' ', 2)[1])
            writer.close()
            body = json.loads(answer.split(b'\r\n\r\n', 1)[1])
            # what the server slowed, closed or refused, by reason
            counted.clear()
            counted.update(body.get('refused', {}))
        except (OSError, asyncio.TimeoutError, IndexError, ValueError):
            pass
        answers.append((status, time.perf_counter() - t))
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


ABUSE_FLOODS = ['ping', 'input', 'attach-detach', 'requests', 'connections']
if os.environ.get('ABUSE_FLOODS'):
    ABUSE_FLOODS = os.environ['ABUSE_FLOODS'].split(',')


async def abuse(ctx):
    """Issue 22: the chat's normal traffic beside each flood of one
    attacker (benchmarks/abuse_flood.py, from 127.0.0.2, reconnecting
    whenever it is closed) for abuse_seconds, against the same traffic
    with no flood; @@live-health polled twice a second throughout."""
    if ctx.system.kind != 'zorg':
        return None
    n, secs = ctx.s['chat_receivers'], ctx.s['abuse_seconds']
    out = {'receivers': n, 'senders': ctx.s['chat_senders'],
           'seconds per run': secs}
    quiet = None
    for flood in ['none'] + ABUSE_FLOODS:
        ctx.log(' abuse: flood %s beside the chat (%d receivers), %gs'
                % (flood, n, secs))
        async with Session(ctx, n) as sess:
            attacker = None
            if flood != 'none':
                # ABUSE_NICE: the attacker's process at that niceness, as
                # if it ran elsewhere (its own CPU is not the server's).
                nice = int(os.environ.get('ABUSE_NICE', '0'))
                attacker = await asyncio.create_subprocess_exec(
                    sys.executable, os.path.join(HERE, 'abuse_flood.py'),
                    '--port', str(sess.port), '--kind', flood,
                    '--seconds', str(secs + 5), '--page',
                    sess.server.page_url, stdout=asyncio.subprocess.PIPE,
                    preexec_fn=(lambda: os.nice(nice)) if nice else None)
                await asyncio.sleep(2)     # the flood is under way
            stop, answers, counted = asyncio.Event(), [], {}
            watch = asyncio.ensure_future(health_watch(sess.port, stop,
                                                       answers, counted))
            try:
                lat, sent, expected, window = await chat_traffic(
                    ctx, sess, secs)
            finally:
                stop.set()
                await watch
                stats = {}
                if attacker is not None:
                    try:
                        data, _ = await asyncio.wait_for(
                            attacker.communicate(), secs + 30)
                        stats = json.loads(data or b'{}')
                    except asyncio.TimeoutError:
                        attacker.kill()
                        await attacker.wait()
        limit = window.limit()
        p50, p99 = ms(pct(lat, 50)), ms(pct(lat, 99))
        bad = [a for a in answers if a[0] != 200]
        row = '%s: ' % ('no flood' if flood == 'none' else 'flood ' + flood)
        out[row + 'latency ms p50'] = p50
        out[row + 'latency ms p99'] = p99
        out[row + 'missed deliveries'] = expected - len(lat)
        out[row + 'health answers (not 200)'] = '%d (%d)' % (
            len(answers), len(bad))
        out[row + 'health ms max'] = round(ms(max(
            (a[1] for a in answers), default=0)), 1)
        out[row + 'bound by'] = limit.split(' (')[0] if limit else '–'
        mark(out, row + 'latency ms p99', limit)
        if flood == 'none':
            quiet = p99
        else:
            out[row + 'p99 / quiet p99'] = (round(p99 / quiet, 2)
                                            if p99 and quiet else None)
            out[row + 'attacker'] = ', '.join(
                '%s %s' % (k, v) for k, v in sorted(stats.items())
                if k != 'kind')
            out[row + 'server refused'] = ', '.join(
                '%s %s' % kv for kv in sorted(counted.items())) or '–'
        ctx.log('  p50 %.1f ms p99 %.1f ms, %d/%d deliveries; health %d '
                'answers, %d not 200, max %.0f ms; %s; attacker %s' % (
                    p50 or -1, p99 or -1, len(lat), expected, len(answers),
                    len(bad), out[row + 'health ms max'],
                    'bound by the ' + limit if limit else 'no limit',
                    stats))
        ctx.log('  server: %s' % counted)
    return out


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


# --- WebSocket (issue 13) ----------------------------------------------------

def websocket(ctx):
    return ctx.system.adapter.endswith('-ws')


async def ws_server(ctx, options, trace=False):
    """A fresh server of ctx.system, the generator configured with the
    adapter options (pages per connection), warmed up (like capacity:
    capacity_warmup connections opened in full and closed; zorg.live:
    their further pages attached too) and its baseline RSS (settled,
    collected). trace: with tracemalloc in the server."""
    port = systems.free_port()
    if trace:
        os.environ['PYTHONTRACEMALLOC'] = '1'
    try:
        server = await ctx.system.start(port)
    finally:
        os.environ.pop('PYTHONTRACEMALLOC', None)
    try:
        await ctx.pool.configure(ctx.system.adapter, server.endpoints,
                                 dict(ctx.system.adapter_options(server),
                                      **options))
        await asyncio.sleep(0.3)
        conc = ctx.s.get('capacity_concurrency', 64)
        await ctx.pool.open(ctx.s.get('capacity_warmup', 300),
                            ctx.s['open_timeout'], concurrency=conc)
        await ctx.pool.all('attach', options.get('pages', 1),
                           ctx.s['open_timeout'])
        await ctx.pool.close_pages()
        del TRACED[:]
        rss0 = (await settled_rss(server))[1]
    except BaseException:
        server.stop()
        raise
    return server, rss0


async def ws_stop(ctx, server):
    try:
        await ctx.pool.close_pages()
    finally:
        server.stop()
    await asyncio.sleep(0.2)


async def shared_pages(ctx):
    """What a further page attached to a shared connection costs
    (zorg.live WebSocket only: the peers open a connection per page).

    On one fresh server, warmed up: N connections' pages rendered
    (shared_pages each), RSS; the N connections opened, no page attached,
    RSS; their first page attached, RSS; their other pages attached, RSS
    (each settled and collected, as capacity). Per registered page, per
    connection, per first page and per further page are the steps
    divided by their counts. Then once more with tracemalloc in the
    server (shared_tracemalloc: 1 with as many connections, N > 1 with
    N): Python's bytes of each step."""
    if ctx.system.kind != 'zorg' or not websocket(ctx):
        return None
    k = ctx.s['shared_pages']
    conc = ctx.s.get('capacity_concurrency', 64)
    timeout = ctx.s['open_timeout']
    out = {'connections': ctx.s['shared_connections'],
           'pages per connection': k}
    passes = [(ctx.s['shared_connections'], False)]
    traced_n = ctx.s.get('shared_tracemalloc', 0)
    if traced_n:        # 1: as many connections, N > 1: N of them
        passes.append((ctx.s['shared_connections'] if traced_n == 1
                       else traced_n, True))
    for n, trace in passes:
        ctx.log(' shared connection: %d connections x %d pages%s' % (
            n, k, ' (tracemalloc)' if trace else ''))
        server, rss0 = await ws_server(ctx, {'pages': k, 'attach': 0},
                                       trace)
        try:
            regs = await ctx.pool.register(n, timeout, conc)
            registered = sum(a['registrations'] for a in regs)
            rss1 = (await settled_rss(server))[1]
            opened = await ctx.pool.all('stream', timeout, conc)
            conns = sum(a['live_conns'] for a in opened)
            rss_bare = (await settled_rss(server))[1]
            await ctx.pool.all('attach', 1, timeout)
            first = await ctx.pool.live()
            rss2 = (await settled_rss(server))[1]
            done = await ctx.pool.all('attach', k, timeout)
            held = sum(a['live'] for a in done)
            errors = {}
            for a in done:
                for key, v in a['errors'].items():
                    errors[key] = errors.get(key, 0) + v
            rss3 = (await settled_rss(server))[1]
        finally:
            await ws_stop(ctx, server)
        further = max(1, held - first)
        if trace:
            if len(TRACED) == 5:       # baseline and the four steps
                out['tracemalloc pass: connections'] = n
                t = [x / 1024. for x in TRACED]
                out['server Python KB per registered page (tracemalloc)'] \
                    = round((t[1] - t[0]) / max(1, registered), 1)
                out['server Python KB per connection, no page attached '
                    '(tracemalloc)'] = round((t[2] - t[1]) / max(1, conns),
                                             1)
                out['server Python KB per first page attached '
                    '(tracemalloc)'] = round((t[3] - t[2]) / max(1, first),
                                             1)
                out['server Python KB per connection with its first page '
                    '(tracemalloc)'] = round((t[3] - t[1]) / max(1, first),
                                             1)
                out['server Python KB per further page attached '
                    '(tracemalloc)'] = round((t[4] - t[3]) / further, 1)
            continue
        out['pages registered'] = registered
        out['pages attached (of %d)' % (n * k)] = held
        out['failures'] = n * k - held
        if errors:
            out['errors'] = ', '.join('%s %d' % kv for kv in errors.items())
        out['server RSS KB per registered page (RSS step)'] = round(
            (rss1 - rss0) / float(max(1, registered)), 1)
        out['connections opened'] = conns
        out['server RSS KB per connection, no page attached (RSS step)'] = \
            round((rss_bare - rss1) / float(max(1, conns)), 1)
        out['server RSS KB per first page attached (RSS step)'] = round(
            (rss2 - rss_bare) / float(max(1, first)), 1)
        out['server RSS KB per connection with its first page (RSS step)'] \
            = round((rss2 - rss1) / float(max(1, first)), 1)
        out['server RSS KB per further page attached (RSS step)'] = round(
            (rss3 - rss2) / float(further), 1)
        out['server RSS MB baseline / registered / connected / first '
            'pages / all attached'] = '%.0f / %.0f / %.0f / %.0f / %.0f' % (
                rss0 / 1024., rss1 / 1024., rss_bare / 1024., rss2 / 1024.,
                rss3 / 1024.)
        ctx.log('  %d registered, %d connections, %d first pages, %d '
                'attached; KB per registered page %.1f, per connection '
                '%.1f, per first page %.1f, per further page %.1f%s' % (
                    registered, conns, first, held,
                    out['server RSS KB per registered page (RSS step)'],
                    out['server RSS KB per connection, no page attached '
                        '(RSS step)'],
                    out['server RSS KB per first page attached (RSS step)'],
                    out['server RSS KB per further page attached (RSS '
                        'step)'], ' errors %s' % errors if errors else ''))
    return out


async def tabs(ctx):
    """tabs_browsers browsers with tabs_per_browser tabs each: zorg.live
    with one connection per browser carrying its tabs' pages, against
    one connection per tab (zorg.live's per-tab WebSocket, and the peers,
    which have no other way). Per layout, on a fresh warmed-up server:
    every tab opened (zorg.live: rendered and attached), the server's RSS
    over its baseline (settled, collected), then tabs_repeats fan-outs to
    all the tabs (time until the last tab has the event)."""
    if not websocket(ctx):
        return None
    b, t = ctx.s['tabs_browsers'], ctx.s['tabs_per_browser']
    conc = ctx.s.get('capacity_concurrency', 64)
    # [browser]: the b x t tabs as each system opens them (zorg.live: a
    # connection per browser; a peer: a connection per tab, its only
    # way); [tab]: a WebSocket per tab
    shared, per_tab = '[browser]', '[tab]'
    layouts = [(per_tab, b * t, 1)]
    if ctx.system.kind == 'zorg':
        layouts.insert(0, (shared, b, t))
    out = {}
    for title, conns, k in layouts:
        ctx.log(' tabs: %d connections x %d pages' % (conns, k))
        server, rss0 = await ws_server(ctx, {'pages': k})
        try:
            t0 = time.time()
            opened = await ctx.pool.open(conns, ctx.s['open_timeout'],
                                         concurrency=conc)
            last = max((a['last_live'] for a in opened), default=0.0)
            live = sum(a['live'] for a in opened)
            errors = {}
            for a in opened:
                for key, v in a['errors'].items():
                    errors[key] = errors.get(key, 0) + v
            rss1 = (await settled_rss(server))[1]
            lasts, p50s, missing, window, _, _ = await fanout_rounds(
                ctx, server, live, ctx.s['tabs_repeats'])
        finally:
            await ws_stop(ctx, server)
        limit = window.limit()
        rows = {'layout': '%d connections x %d pages' % (conns, k),
                'connections': conns,
                'tabs held (of %d)' % (b * t): live,
                'errors while opening': ', '.join(
                    '%s %d' % kv for kv in sorted(errors.items())) or '–',
                'open time s': round(last - t0, 2) if last else None,
                'server RSS MB over the baseline': round(
                    (rss1 - rss0) / 1024., 1),
                'server RSS KB per tab': round((rss1 - rss0) /
                                               float(max(1, live)), 1),
                'fan-out: last tab ms p50': ms(pct(lasts, 50)),
                'fan-out: last tab ms p99': ms(pct(lasts, 99)),
                'fan-out: median delivery ms': ms(pct(p50s, 50)),
                'fan-out: deliveries missed': missing,
                'fan-out: bound by': limit.split(' (')[0] if limit else '–'}
        titles = [title] if k > 1 or ctx.system.kind == 'zorg' else \
            [shared, per_tab]       # a peer: the same connections
        for tt in titles:
            for key, v in rows.items():
                out['%s %s' % (key, tt)] = v
            for key in ('fan-out: last tab ms p50', 'fan-out: last tab ms '
                        'p99'):
                mark(out, '%s %s' % (key, tt), limit)
        ctx.log('  %d/%d tabs live%s; %.1f KB per tab; fan-out last tab '
                'p50 %.1f ms, missed %d; %s' % (
                    live, b * t, ' errors %s' % errors if errors else '',
                    rows['server RSS KB per tab'],
                    rows['fan-out: last tab ms p50'] or -1, missing,
                    'bound by the ' + limit if limit else 'no limit '
                    'reached'))
    if ctx.system.kind == 'zorg':
        a = out.get('server RSS MB over the baseline %s' % shared)
        c = out.get('server RSS MB over the baseline %s' % per_tab)
        out['server RSS shared / per-tab'] = round(a / c, 2) if a and c \
            else None
    return out


# --- slow-redis ---------------------------------------------------------------

class Phases:
    """Named time spans of a scenario; figures are attributed to the
    phase(s) they fall in."""

    def __init__(self):
        self.spans = []           # (name, t0, t1)

    def begin(self, name):
        if self.spans and self.spans[-1][2] is None:
            self.end()
        self.spans.append([name, time.time(), None])

    def end(self):
        self.spans[-1][2] = time.time()

    def at(self, t):
        for name, t0, t1 in self.spans:
            if t0 <= t < (t1 or 1e300):
                return name
        return None

    def overlapping(self, a, b):
        return [name for name, t0, t1 in self.spans
                if a < (t1 or 1e300) and b > t0]


async def idle_stream(port, path, beats, stop, log):
    """One idle SSE stream (a page of a group nothing is published to):
    records the arrival time of every heartbeat in `beats` until `stop`
    is set. Reconnects (bounded by `stop`) if the server ends it."""
    client = systems.HttpClient(port)
    from adapters import CLIENT_URL_RE, _path
    while not stop.is_set():
        status, body = await client.request('GET', path, timeout=15.0)
        m = CLIENT_URL_RE.search(body) if status == 200 else None
        if not m:
            await asyncio.sleep(0.5)
            continue
        url = _path(m.group(1).decode()) + '/events'
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                systems.HOST, port), 5.0)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.5)
            continue
        writer.write(('GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: '
                      'text/event-stream\r\n\r\n' % (
                          url, systems.HOST, port)).encode())
        try:
            while not stop.is_set():
                try:
                    line = await asyncio.wait_for(reader.readline(), 0.5)
                except asyncio.TimeoutError:
                    continue
                if not line:
                    break
                if b': heartbeat' in line:
                    beats.append(time.time())
        except OSError:
            pass
        finally:
            writer.close()
    client.close()


async def slow_redis(ctx):
    """Redis answering slowly, then hung: does work that needs no broker
    keep its latency? zorg-redis-* only.

    Two zorg.live processes reach a redis-server of their own through
    delayproxy.py (heartbeat-interval 1 s). Load: slow_pages pages of the
    system's transport in group 'bench', events published to them
    (slow_rate ev/s, one in flight, through the processes' input in
    turn), a page rendered and its stream opened and closed again every
    0.2 s (registration and beginStream need the broker). Probes: idle
    SSE streams of a group of their own (`quiet.html`; only heartbeats
    reach them), half on each process, and GET /@@live-health on each
    process every 0.2 s. Phases of slow_phase_seconds each: normal;
    slow (every Redis answer slow_delay late); normal again; hung
    (redis-server SIGSTOPped, its pid, for slow_hung_seconds, then
    SIGCONT); after."""
    if not ctx.system.name.startswith('zorg-redis'):
        return None
    n = ctx.s['slow_pages']
    phase_s, hung_s = ctx.s['slow_phase_seconds'], ctx.s['slow_hung_seconds']
    delay = ctx.s['slow_delay']
    ctx.log(' slow-redis: %d pages, phases of %gs, answers %g ms late, '
            'then redis-server stopped %gs' % (n, phase_s, delay * 1000,
                                               hung_s))
    server = systems.ZorgRedisServer(systems.free_port(), proxy=True,
                                     heartbeat_interval=1)
    server.proxy.delay = delay
    await server.start()
    phases = Phases()
    stop = asyncio.Event()
    tasks = []
    beats = []
    health = []          # (t sent, status, seconds)
    opens = []           # (t, ok, seconds)
    published = []       # (seq, t)
    try:
        await ctx.pool.configure(ctx.system.adapter, server.endpoints,
                                 ctx.system.adapter_options(server))
        await ctx.pool.open(n, ctx.s['open_timeout'])
        live = await ctx.pool.live()
        ctx.log('  %d/%d pages live' % (live, n))
        for i in range(ctx.s['slow_probes']):
            b = []
            beats.append(b)
            tasks.append(asyncio.ensure_future(idle_stream(
                server.ports[i % len(server.ports)], '/@@quiet.html', b,
                stop, ctx.log)))

        async def poll_health(port):
            client = systems.HttpClient(port)
            while not stop.is_set():
                t = time.time()
                status, _ = await client.request('GET', '/@@live-health',
                                                 timeout=5.0)
                health.append((t, status, time.time() - t))
                await asyncio.sleep(max(0.0, 0.2 - (time.time() - t)))
            client.close()

        async def churn(port):
            client = systems.HttpClient(port)
            from adapters import CLIENT_URL_RE, _path
            while not stop.is_set():
                t = time.time()
                ok = False
                status, body = await client.request('GET', server.page_url,
                                                    timeout=10.0)
                m = CLIENT_URL_RE.search(body) if status == 200 else None
                if m:
                    url = _path(m.group(1).decode()) + '/events'
                    try:
                        r, w = await asyncio.wait_for(
                            asyncio.open_connection(systems.HOST, port), 5)
                        w.write(('GET %s HTTP/1.1\r\nHost: x\r\nAccept: '
                                 'text/event-stream\r\n\r\n' % url
                                 ).encode())
                        head = await asyncio.wait_for(r.readuntil(
                            b'\r\n\r\n'), max(0.1, 10 - (time.time() - t)))
                        ok = b' 200 ' in head.split(b'\r\n', 1)[0]
                        w.close()
                    except (OSError, asyncio.TimeoutError,
                            asyncio.IncompleteReadError):
                        pass
                opens.append((t, ok, time.time() - t))
                await asyncio.sleep(0.2)
            client.close()

        async def publish():
            pubs = [server.publisher() for _ in server.ports]
            seq = 0
            while not stop.is_set():
                seq += 1
                p = pubs[seq % len(pubs)]
                t = time.time()
                try:
                    ok, t = await asyncio.wait_for(p.publish(seq), 10.0)
                except asyncio.TimeoutError:
                    ok = False
                    p.close()
                if ok:
                    published.append((seq, t))
                await asyncio.sleep(max(0.0, 1.0 / ctx.s['slow_rate'] -
                                        (time.time() - t)))
            for p in pubs:
                p.close()

        for port in server.ports:
            tasks.append(asyncio.ensure_future(poll_health(port)))
            tasks.append(asyncio.ensure_future(churn(port)))
        tasks.append(asyncio.ensure_future(publish()))
        await asyncio.sleep(2.0)            # probes connected, first beats
        for name, action, secs in [
                ('normal Redis', None, phase_s),
                ('Redis answers %d ms late' % (delay * 1000),
                 lambda: server.proxy.slow(True), phase_s),
                ('normal again', lambda: server.proxy.slow(False), phase_s),
                ('redis-server stopped (SIGSTOP)', server.redis.pause,
                 hung_s),
                ('after SIGCONT', server.redis.resume, phase_s)]:
            if action is not None:
                action()
            phases.begin(name)
            ctx.log('  phase: %s (%gs)' % (name, secs))
            await asyncio.sleep(secs)
        phases.end()
        server.redis.resume()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks,
                                              return_exceptions=True), 15)
        last = published[-1][0] if published else 0
        await ctx.pool.all('await', last, 5.0)
        answers = await ctx.pool.all('collect', 1, last)
        live = await ctx.pool.live()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        server.redis.resume()
        try:
            await ctx.pool.close_pages()
        finally:
            server.stop()
        await asyncio.sleep(0.2)

    out = {'pages (load)': n, 'idle SSE probe streams':
           ctx.s['slow_probes'], 'heartbeat interval s': 1}
    for name, t0, t1 in phases.spans:
        silences, gaps = [], []
        for b in beats:
            # gaps between heartbeats, each in the phase that holds its
            # middle (a stall from one phase into the next counts once)
            d = [y - x for x, y in zip(b, b[1:]) if t0 <= (x + y) / 2 < t1]
            if d:
                silences.append(max(d))
                gaps.extend(d)
        h = [(st, sec) for t, st, sec in health if t0 <= t < t1]
        o = [(ok, sec) for t, ok, sec in opens if t0 <= t < t1]
        lat = []
        nev = 0
        for seq, t in published:
            if t0 <= t < t1:
                nev += 1
                lat.extend(loadgen.latencies(answers, seq))
        p = ' [%s]' % name
        out['idle stream: longest silence ms' + p] = ms(max(silences)) \
            if silences else None
        out['idle stream: heartbeat gap ms p50' + p] = ms(pct(gaps, 50))
        out['@@live-health ms p50' + p] = ms(pct([x for _, x in h], 50))
        out['@@live-health ms max' + p] = ms(max((x for _, x in h),
                                                 default=None))
        out['@@live-health answers (200/other/no answer in 5 s)' + p] = \
            '%d/%d/%d' % (sum(1 for st, _ in h if st == 200),
                          sum(1 for st, _ in h if st not in (0, 200)),
                          sum(1 for st, _ in h if st == 0))
        out['page render + stream open ms p50 (needs the broker)' + p] = \
            ms(pct([x for ok, x in o if ok], 50))
        out['page render + stream open ms max' + p] = ms(
            max((x for _, x in o), default=None))
        out['page opens failed' + p] = '%d/%d' % (
            sum(1 for ok, _ in o if not ok), len(o))
        out['publish -> page ms p50 (needs the broker)' + p] = ms(
            pct(lat, 50))
        out['publish -> page ms p99' + p] = ms(pct(lat, 99))
        out['events published, deliveries missed' + p] = '%d, %d' % (
            nev, nev * live - len(lat))
        ctx.log('  %s: longest heartbeat silence %.0f ms, health p50 %.1f '
                'max %.0f ms (%s), open p50 %s ms, publish->page p50 %s '
                'ms' % (name, out['idle stream: longest silence ms' + p] or
                        -1, out['@@live-health ms p50' + p] or -1,
                        out['@@live-health ms max' + p] or -1,
                        out['@@live-health answers (200/other/no answer in '
                            '5 s)' + p],
                        fmt1(out['page render + stream open ms p50 (needs '
                                 'the broker)' + p]),
                        fmt1(out['publish -> page ms p50 (needs the '
                                 'broker)' + p])))
    return out


def fmt1(x):
    return '–' if x is None else '%.0f' % x


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
             'shared-pages': shared_pages, 'tabs': tabs,
             'publish-cost': publish_cost, 'slow-redis': slow_redis,
             'abuse': abuse}

QUICK = dict(capacity_sizes=[1000, 5000], fanout_sizes=[1000, 5000],
             capacity_warmup=300, capacity_concurrency=64, publish_slots=16,
             capacity_tracemalloc=1000,
             fanout_repeats=5, sustained_size=2000,
             sustained_rates=[5, 10, 20, 40, 80], sustained_seconds=1.5,
             chat_receivers=1000, chat_senders=5, chat_rate=2.0,
             chat_seconds=3.0, reconnect_sizes=[2000], reconnect_timeout=20,
             drain_timeout=8.0, open_timeout=30.0, open_patience=30.0,
             publish_count=2000, publish_rounds=300, publish_runs=3,
             slow_pages=500, slow_phase_seconds=5.0, slow_hung_seconds=5.0,
             slow_delay=0.05, slow_rate=5.0, slow_probes=10,
             shared_connections=200, shared_pages=5, shared_tracemalloc=1,
             tabs_browsers=200, tabs_per_browser=5, tabs_repeats=5,
             abuse_seconds=10.0)
FULL = dict(capacity_sizes=[1000, 5000, 10000, 15000],
            capacity_warmup=300, capacity_concurrency=64, publish_slots=16,
            capacity_tracemalloc=1,
            fanout_sizes=[1000, 5000, 10000, 15000], fanout_repeats=20,
            sustained_size=10000, sustained_rates=[1, 2, 5, 10, 20, 40],
            sustained_seconds=4.0, chat_receivers=1000, chat_senders=10,
            chat_rate=2.0, chat_seconds=10.0, reconnect_sizes=[5000, 10000],
            reconnect_timeout=40, drain_timeout=15.0, open_timeout=90.0,
            open_patience=90.0,
            publish_count=10000, publish_rounds=2000, publish_runs=3,
            slow_pages=1000, slow_phase_seconds=10.0,
            slow_hung_seconds=10.0, slow_delay=0.05, slow_rate=5.0,
            slow_probes=10, shared_connections=2000, shared_pages=5,
            shared_tracemalloc=1, tabs_browsers=2000, tabs_per_browser=5,
            tabs_repeats=20, abuse_seconds=60.0)
