"""A pause of the server is not its clients' fault.

Under load the server's own event loop may not run for a while (a
machine at load 20, a long collection, swap, SIGSTOP). A WebSocket peer
was judged gone once the server had heard nothing from it for two
heartbeat intervals -- but it is the server's ping that makes a healthy
peer speak, and a paused server sends none. So after any pause longer
than that, every open socket was dropped at the first beat: its pages
detached, no refusal counted, the browser saw a connection lost. Now a
peer is judged by the ping it left unanswered: pings are sent on the
server's clock, and only a ping that got no answer for heartbeat
interval + 1 seconds drops a peer.
"""

import asyncio
import os
import signal
import time

import pytest
import websockets

from zorg.live.tests.test_demo import Page, session
from zorg.live.tests.test_websocket import (
    Socket, appendsOf, liveServer, rawSocket, untilDropped)


def paused(server, seconds):
    """Stop the server process (SIGSTOP) for `seconds`: the fault (a
    machine that gives it no CPU), not a wait for a result."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_a_paused_server_keeps_the_sockets_that_spoke_in_time(tmp_path):
    """A page attached on a socket; the server pauses for more than two
    heartbeat intervals (its limit of a peer's silence), during which it
    sent no ping and so got no pong. After the pause the socket is still
    open: a ping is answered and an event reaches the page."""
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            assert (await ws.attach(1, page))['type'] == 'attached'
            await asyncio.get_running_loop().run_in_executor(
                None, paused, server, 4.0)
            await ws.send(type='ping')
            await ws.until(lambda m: m['type'] == 'pong')
            await page.send('append', 'target', 'after the pause')
            await ws.until(lambda m: appendsOf(ws, 1) == ['after the pause'])

    with liveServer(tmp_path, heartbeat_interval=1) as server:
        asyncio.run(run(server))


def test_a_peer_silent_after_a_pause_is_still_dropped(tmp_path):
    """The pause credits no one with pongs they did not send: a peer that
    answers no ping is dropped after the pause as before it."""
    async def run(server):
        sock = rawSocket(server)
        await asyncio.get_running_loop().run_in_executor(
            None, paused, server, 4.0)
        untilDropped(sock)

    with liveServer(tmp_path, heartbeat_interval=1) as server:
        asyncio.run(run(server))


def test_health_counts_each_handshake_and_attach_and_its_answer(tmp_path):
    """@@live-health's "websocket": handshakes and attaches received and
    how each was answered, so that one received and never answered shows
    (received minus answered is what waits now)."""
    async def run(server):
        async with session() as s:
            async with Socket(server) as ws:
                page = await Page(server, s, 'livepage.html').open()
                assert (await ws.attach(1, page))['type'] == 'attached'
                await ws.send(type='attach', page=2, uuid='nosuchpage')
                await ws.until(lambda m: m.get('page') == 2 and
                               m['type'] == 'error')
            with pytest.raises(websockets.InvalidStatus):
                async with Socket(server, origin='http://evil.test'):
                    pass
            async with s.get(server.url('@@live-health')) as r:
                counts = (await r.json())['websocket']
        assert counts == {'handshakes': 2, 'opened': 1,
                          'handshakes-refused': 1, 'attaches': 2,
                          'attached': 1, 'attaches-refused': 1}, counts

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))
