"""zorg.ajax with several processes: one page behind a round-robin proxy.

Two LiveServerHTTP processes, A and B, share one redis-server and sit
behind RoundRobinProxy (rrproxy.py), which sends each request to the next
process in turn, as nginx does without sticky sessions. A page opened
through the proxy in headless chromium gets what is published through the
proxy; then the process holding the page's stream is killed (SIGKILL, or
SIGTERM) and more is published meanwhile; then it is started again on the
same port and more is published. The page must show every event once and
in order, and must not reload: unlike the memory broker of test_browser.py
(whose page reloads after a restart because the history died with the
process), Redis keeps the history that covers the gap.

The first tests prove the proxy itself: that it streams, skips a backend
that is down, and passes a backend's death on to the client.

Any process serves the page: its record is shared through Redis, and the
process that does not know the page id adopts it (LivePageManager.adopt),
reading after the lastEventId of the request (delivery.py, rule 8).
"""

import asyncio
import re
import signal
import time

import aiohttp
import pytest
from aiohttp import web

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests.redisfixture import redisServer  # noqa: F401
from zorg.live.tests.rrproxy import RoundRobinProxy
from zorg.live.tests.serverfixture import RunningServer, freePort
from zorg.live.tests.zeofixture import zeoServer  # noqa: F401
from zorg.live.tests.test_browser import (
    EVENTS_URL, messages, openPage, say, waitOpen)

OUTPUT_STEPS = re.compile(r'/@@client/[^/?]+/(events|output)(\?.*)?$')
PAGE = 'browser-restart.html'


# -- the proxy itself -------------------------------------------------------

def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def backend(handler):
    """An aiohttp server on a free loopback port: (runner, port)."""
    app = web.Application()
    app.router.add_route('*', '/{tail:.*}', handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    port = freePort()
    await web.TCPSite(runner, '127.0.0.1', port).start()
    return runner, port


def test_proxy_takes_turns_and_skips_a_backend_that_is_down():
    async def main():
        async def answer(request):
            return web.Response(text='%s %s %s %s' % (
                request.host, request.headers.get('Last-Event-ID'),
                request.query_string, await request.text()))
        runner1, port1 = await backend(answer)
        runner2, port2 = await backend(answer)
        down = freePort()
        proxy = RoundRobinProxy([port1, port2, down]).start()
        try:
            async with aiohttp.ClientSession() as s:
                answers = []
                for n in range(6):
                    async with s.post(proxy.url('x?n=%d' % n), data=str(n),
                                      headers={'Last-Event-ID': '7-1'}) as r:
                        assert r.status == 200
                        answers.append(await r.text())
                host = '127.0.0.1:%d' % proxy.port
                assert answers == ['%s 7-1 n=%d %d' % (host, n, n)
                                   for n in range(6)]
                used = [port for port, _m, _p, outcome in proxy.requests]
                # The turn of the dead backend goes to the next one.
                assert used == [port1, port2, down, port1,
                                port1, port2, down, port1]
                await runner1.cleanup()
                await runner2.cleanup()
                async with s.get(proxy.url('x')) as r:
                    assert r.status == 502
        finally:
            proxy.stop()
    run(main())


def test_proxy_repeats_a_GET_but_not_a_POST_that_a_backend_dropped():
    async def main():
        async def crash(request):
            # Dies with the request in hand, before any answer.
            request.transport.abort()
            await asyncio.sleep(1)

        async def answer(request):
            return web.Response(text='answered')
        runner1, port1 = await backend(crash)
        runner2, port2 = await backend(answer)
        proxy = RoundRobinProxy([port1, port2]).start()
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(proxy.url('output')) as r:
                    assert (r.status, await r.text()) == (200, 'answered')
                async with s.post(proxy.url('input'), data=b'x') as r:
                    assert r.status == 200   # B's turn
                async with s.post(proxy.url('input'), data=b'x') as r:
                    assert r.status == 502
            assert proxy.requests == [
                (port1, 'GET', '/output', 'failed'),
                (port2, 'GET', '/output', 200),
                (port2, 'POST', '/input', 200),
                (port1, 'POST', '/input', 'failed')]
        finally:
            proxy.stop()
            await runner1.cleanup()
            await runner2.cleanup()
    run(main())


def test_proxy_streams_chunk_by_chunk_and_cuts_when_the_backend_dies():
    async def main():
        release = asyncio.Event()
        died = asyncio.Event()

        async def stream(request):
            response = web.StreamResponse(
                headers={'Content-Type': 'text/event-stream'})
            await response.prepare(request)
            await response.write(b'data: first\n\n')
            await release.wait()
            await response.write(b'data: second\n\n')
            await died.wait()
            # A crash: the connection ends without the last chunk.
            request.transport.abort()
            return response

        runner, port = await backend(stream)
        proxy = RoundRobinProxy([port]).start()
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(proxy.url('events')) as r:
                    assert r.headers['Content-Type'] == 'text/event-stream'
                    # Each chunk arrives while the backend still holds
                    # the next one back: nothing is buffered.
                    assert await r.content.readuntil(b'\n\n') == \
                        b'data: first\n\n'
                    release.set()
                    assert await r.content.readuntil(b'\n\n') == \
                        b'data: second\n\n'
                    died.set()
                    with pytest.raises(aiohttp.ClientPayloadError):
                        await r.content.read()
            assert proxy.requests == [(port, 'GET', '/events', 200),
                                      (port, 'GET', '/events', 'broken')]
        finally:
            proxy.stop()
            await runner.cleanup()
    run(main())


# -- a page behind the proxy ------------------------------------------------

@pytest.fixture
def cluster(tmp_path, redisServer, zeoServer):  # noqa: F811 (fixtures)
    """Processes A and B on one Redis and one ZEO database, behind a
    round-robin proxy."""
    settings = dict(broker=redisServer.url, refresh_interval=2,
                    heartbeat_interval=1)
    a = RunningServer(tmp_path / 'a', zodb=zeoServer.zodbSection('a'),
                      **settings)
    b = RunningServer(tmp_path / 'b', zodb=zeoServer.zodbSection('b'),
                      **settings)
    with a, b, RoundRobinProxy([a.port, b.port]) as proxy:
        yield {a.port: a, b.port: b}, proxy


class Gate:
    """Holds the page's output requests (SSE, long-poll, registration) in
    the browser while closed, so that what is published meanwhile can only
    reach the page from the group's history."""

    def __init__(self, context):
        self.held = []
        self.closed = False
        context.route(OUTPUT_STEPS, self.route)
        context.route(re.compile(r'/@@client/register(\?.*)?$'), self.route)

    def route(self, route):
        if self.closed:
            self.held.append(route)
        else:
            route.fallback()

    def open(self):
        self.closed = False
        held, self.held = self.held, []
        for route in held:
            route.fallback()


def publish(page, texts):
    for text in texts:
        # send() rejects (and evaluate raises) unless the input got 200.
        say(page, text)


def waitForEvent(page, text):
    """Wait until `text` is shown, or the page reloaded (and failed)."""
    page.wait_for_function(
        '(text) => !window.neverReloaded || Array.from('
        'document.querySelectorAll("#log .msg")).some('
        '(p) => p.textContent === text)', arg=text, timeout=WAIT)
    assert page.evaluate('() => window.neverReloaded === true'), \
        'the page reloaded (its client stopped with %r) before it showed %r' \
        % (page.evaluate('() => sessionStorage.getItem("zorg-live-closed")'),
           text)


def holderOfStream(proxy, servers):
    """The process that answers the page's output request now."""
    def holders():
        return [port for port, path in proxy.inFlight('/@@client/')
                if OUTPUT_STEPS.search(path)]
    ports = waitUntil(holders, 'an output request of the page in flight')
    return servers[ports[0]]


def waitUntil(condition, what, timeout=WAIT / 1000):
    """The first true value of condition(), polled (the proxy's records are
    not something the browser can wait for)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.02)


@pytest.mark.browser
@pytest.mark.redis
@pytest.mark.parametrize('transport,how', [
    ('sse', signal.SIGKILL), ('sse', signal.SIGTERM),
    ('longpoll', signal.SIGKILL), ('longpoll', signal.SIGTERM)],
    ids=['sse-SIGKILL', 'sse-SIGTERM', 'longpoll-SIGKILL',
         'longpoll-SIGTERM'])
def test_page_behind_round_robin_continues_without_reload_when_a_process_dies(
        cluster, new_context, screenshot, transport, how):
    servers, proxy = cluster
    context = new_context()
    if transport == 'longpoll':
        # As in test_browser.py: SSE that does not get through.
        context.route(EVENTS_URL, lambda route: route.abort())
    gate = Gate(context)
    page = openPage(context, proxy.url(PAGE))
    waitOpen(page, transport)
    # Marks that a reload forgets; the reason the client stopped survives
    # a reload in sessionStorage.
    page.evaluate('''() => {
        window.neverReloaded = true;
        LivePage.onclose = (code) =>
            sessionStorage.setItem('zorg-live-closed', code);
    }''')

    before = ['before %d' % n for n in range(4)]
    publish(page, before)
    waitForEvent(page, before[-1])
    assert set(proxy.backendsUsed()) == set(servers), proxy.requests

    a = holderOfStream(proxy, servers)
    port = a.port
    gate.closed = True
    if how == signal.SIGKILL:
        a.kill()
    else:
        assert a.stop() == 0
    a.output.close()
    # Only B is up: these go through B while the page cannot fetch them.
    during = ['while A is down %d' % n for n in range(4)]
    publish(page, during)
    gate.open()
    waitForEvent(page, during[-1])

    restart = len(proxy.requests)
    a.start()
    assert a.port == port

    def servedByA():
        return any(port == a.port and '/@@client/' in path and outcome == 200
                   for port, _m, path, outcome in proxy.requests[restart:])
    # Until the restarted process has served the page (an input or an
    # output request) in its turn; the page's own requests shift the turns.
    after = []
    while len(after) < 2 or not servedByA():
        assert len(after) < 10, proxy.requests[restart:]
        after.append('after the restart %d' % len(after))
        publish(page, after[-1:])
    waitForEvent(page, after[-1])

    expected = before + during + after
    assert messages(page) == expected
    state = page.evaluate('''() => ({
        neverReloaded: window.neverReloaded === true,
        closed: sessionStorage.getItem('zorg-live-closed'),
        applied: LivePage.appliedCount, status: LivePage.status,
        transport: LivePage.transport})''')
    assert state == {'neverReloaded': True, 'closed': None,
                     'applied': len(expected), 'status': 'open',
                     'transport': transport}
    # A page moves without registering again and again.
    registrations = [r for r in proxy.requests if '/register' in r[2]]
    assert len(registrations) <= 3, registrations
    screenshot(page)
