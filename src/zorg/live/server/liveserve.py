"""Starting and stopping LiveServerHTTP's own protocol on one socket.

`Listener` accepts connections with LiveProtocol (server/liveproto.py),
starts LiveApp before the first one and, told to stop, drains: waiting
pages are told to reconnect, idle connections close, busy ones close
after their answer, and what is still open after graceful-timeout is
aborted. Then LiveApp stops (its broker listener and tasks).
"""

import asyncio
import gc
import logging

from zorg.live.server.liveproto import LiveProtocol

log = logging.getLogger('zorg.live.server')
# Allocations between two collections of the youngest generation (Python's
# default: 700): a held request's few objects live across many of them
# anyway, and each collection costs the same whatever it frees.
GC_THRESHOLD = 10000


class Connections(set):
    """The open connections (HTTP and WebSocket); `emptied` is resolved
    when the last one goes while the server stops."""

    emptied = None

    def discard(self, item):
        super().discard(item)
        if not self and self.emptied is not None and not self.emptied.done():
            self.emptied.set_result(None)


class Listener:
    """LiveServerHTTP's protocol on one listening socket."""

    def __init__(self, app, settings, sock):
        self.app = app
        self.settings = settings
        self.socket = sock
        self.connections = Connections()
        self.loop = None
        self.stopping = None     # a future, resolved by stop()
        self.stopAsked = False

    async def serve(self):
        self.loop = loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        if self.stopAsked:
            self.stopping.set_result(None)
        await self.app.startup()
        # The site's code, its ZCML registrations and the first requests'
        # caches are with us for good: moved out of the collector's sight
        # (gc.freeze), so that a collection no longer walks them again
        # and again. A profile of a long-poll fan-out to 10,000 pages
        # found 40 % of the loop's time in the collector; every delivery
        # allocates a few containers (a request, a task, futures), and
        # each ~700 of them start a collection.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        server = await loop.create_server(
            lambda: LiveProtocol(self), sock=self.socket, backlog=4096)
        try:
            await self.stopping
        finally:
            await self.shutdown(server)

    def stop(self):
        """Stop serving (from any thread)."""
        self.stopAsked = True
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._stop)
            except RuntimeError:
                pass    # the loop is closed: stopped already

    def _stop(self):
        if self.stopping is not None and not self.stopping.done():
            self.stopping.set_result(None)

    async def shutdown(self, server):
        server.close()
        self.app.drain()
        connections = self.connections
        for connection in list(connections):
            connection.shutdown()
        if connections:
            connections.emptied = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(connections.emptied),
                                       self.settings.graceful_timeout)
            except asyncio.TimeoutError:
                log.warning('%d connections still open after '
                            'graceful-timeout: closing them',
                            len(connections))
                for connection in list(connections):
                    connection.transport.abort()
        await self.app.shutdown()
