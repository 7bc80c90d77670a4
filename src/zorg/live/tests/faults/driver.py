"""Runs one plan (`schedule.Plan`) against real processes and records its
history: two or three `zorg-live serve` processes on one ZEO database and
one redis-server, clients that behave as livepage.js does, and faults.

A client holds one page at a time (a render of the chat page) and
 - reads its events: SSE, long-poll or a WebSocket (``@@live``, which
   then carries its input too; its plan says which), each request
   to a process chosen at random, as a round-robin balancer without
   sticky sessions would send it; every request carries the last event id
   it applied, and SSE connections end after a while and are opened
   again elsewhere;
 - registers again after a 404, and renders a new page when told to
   reload;
 - posts messages with X-Live-Input-Id, and sends an input again with the
   same id after a timeout, a dropped connection or a 503, until it is
   answered;
 - sometimes closes its page and renders a new one.

Faults: the plan's (redis-server SIGSTOP briefly or longer, SIGKILL and a
restart, SIGKILL of a live process and its restart), and per request
(a dropped input or stream connection, a slow commit).

The end of a run: posting stops, the faults heal, one more message (the
barrier) is posted, every open page reads until it shows it (or a
deadline), the processes stop, and the database is read through ZEO.
"""

import asyncio

import aiohttp

from zorg.live.tests.faults.client import Client
from zorg.live.tests.faults.cluster import Cluster
from zorg.live.tests.faults.history import History

BARRIER = 'barrier'
DRAIN = 45.0            # how long open pages may take to show the barrier
BARRIER_TIMEOUT = 60.0


class Run:
    """One plan, run: `await run.go()` records `history` and `stored`."""

    def __init__(self, plan, directory):
        self.plan = plan
        self.cluster = Cluster(directory, plan.processes)
        self.history = History()
        self.stored = None
        self.phase = 'posting'      # posting, barrier, draining, done
        self.barrierAt = None
        self.faultCounts = {}

    def postingOver(self):
        return self.phase != 'posting'

    def over(self):
        return self.phase == 'done'

    def drained(self, client):
        """Whether `client`'s reading is over: the run is done, or its page
        shows the barrier."""
        if self.phase == 'done':
            return True
        if self.phase != 'draining':
            return False
        page = client.page
        return page is not None and BARRIER in page.model.shown

    async def faults(self):
        loop = asyncio.get_running_loop()
        cluster = self.cluster
        for fault in self.plan.faults:
            delay = fault.at - self.history.now()
            if delay > 0:
                await asyncio.sleep(delay)
            op = self.history.begin('fault', fault.target, fault=fault.kind,
                                    duration=fault.duration)
            self.faultCounts[fault.kind] = \
                self.faultCounts.get(fault.kind, 0) + 1
            if fault.kind in ('slow-broker', 'redis-hang'):
                cluster.redis.hang()
                cluster.hung = True
                await asyncio.sleep(fault.duration)
                cluster.redis.resume()
                cluster.hung = False
            elif fault.kind == 'redis-kill':
                cluster.redis.stop()
                await asyncio.sleep(fault.duration)
                await loop.run_in_executor(None, cluster.redis.start)
            elif fault.kind == 'live-kill':
                cluster.killLive(fault.target)
                await asyncio.sleep(fault.duration)
                await loop.run_in_executor(None, cluster.restartLive,
                                           fault.target)
            op.finish()

    async def go(self):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.cluster.start)
        try:
            try:
                await self._go()
            finally:
                self.phase = 'done'
                await loop.run_in_executor(None, self.cluster.stopLive)
            # Every process stopped: nothing commits any more.
            self.stored = await loop.run_in_executor(None,
                                                     self.cluster.stored)
        finally:
            await loop.run_in_executor(None, self.cluster.stop)
        return self

    async def _go(self):
        loop = asyncio.get_running_loop()
        self.history = History()
        clients = [Client(self, plan) for plan in self.plan.clients]
        self.clients = clients
        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            limit=0, force_close=True)) for _ in clients]
        try:
            readers = [asyncio.ensure_future(c.reader(s))
                       for c, s in zip(clients, sessions)]
            writers = [asyncio.ensure_future(c.writer(s))
                       for c, s in zip(clients, sessions)]
            faults = asyncio.ensure_future(self.faults())
            await asyncio.sleep(self.plan.seconds)
            self.phase = 'barrier'
            await asyncio.gather(*writers)
            await faults
            await loop.run_in_executor(None, self.cluster.heal)
            deadline = loop.time() + BARRIER_TIMEOUT
            while loop.time() < deadline:
                if await clients[0].post(sessions[0], BARRIER, 0,
                                         drops=False):
                    break
            self.phase = 'draining'
            try:
                await asyncio.wait_for(asyncio.gather(*readers), DRAIN)
            except asyncio.TimeoutError:
                pass
            self.phase = 'done'
            for client in clients:
                if client.page is not None:
                    client.end(client.page, 'final')
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        finally:
            self.phase = 'done'
            for s in sessions:
                await s.close()
            await loop.run_in_executor(None, self.cluster.heal)

    def counts(self):
        """Faults injected, by kind (the plan's and the clients')."""
        counts = dict(self.faultCounts)
        for client in getattr(self, 'clients', ()):
            for kind, count in client.stats.items():
                counts[kind] = counts.get(kind, 0) + count
        return counts
