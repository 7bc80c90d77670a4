"""A tiny round-robin reverse proxy for tests, built on aiohttp.

RoundRobinProxy listens on a free loopback port, in a thread with its own
event loop, and sends each request to the next backend in turn: what nginx
does with an ``upstream`` of several servers and no sticky sessions, which
is how DESIGN.md says several zorg.live processes are run. The parts that
matter to a live page behave as nginx's do with ``proxy_buffering off`` and
``proxy_next_upstream error``:

* Responses are streamed: each chunk a backend sends is written to the
  client as it arrives, so an SSE stream passes event by event.
* Request headers (Host, Last-Event-ID, cookies, credentials) reach the
  backend unchanged, except the hop-by-hop ones; so do the response headers.
  The client's Host is kept because the server builds URLs from it (the
  page's client URL must point at the proxy, not at one backend).
* A backend that refuses the connection is skipped for the next one, and
  so is one that fails before it answers a GET (nginx's default
  ``proxy_next_upstream error``, which repeats only idempotent requests);
  a POST gets 502 then, as does any request when no backend is left. A
  backend that dies in the middle of an answer cuts the client's
  connection, so the client sees a broken response rather than a complete
  one. (Unlike nginx, a failed backend is not set aside for a while: its
  turn simply comes again.)
* A client that goes away cancels its request to the backend (aiohttp's
  handler cancellation), so the backend sees the disconnect, as behind
  nginx.

The proxy keeps a record of what it did (``requests``) and of what is in
flight (``active``), so tests can tell which backend holds a page's stream.
Parsing HTTP is left to aiohttp on both sides.
"""

import asyncio
import itertools
import socket
import threading

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, istr
from yarl import URL

# Hop-by-hop headers (RFC 9110, 7.6.1) belong to one connection, not to
# the message: a proxy must not forward them. Content-Length is left to the
# aiohttp side that writes the body.
HOP_BY_HOP = frozenset(istr(name) for name in (
    'Connection', 'Keep-Alive', 'Proxy-Authenticate', 'Proxy-Authorization',
    'Proxy-Connection', 'TE', 'Trailer', 'Transfer-Encoding', 'Upgrade',
    'Content-Length'))

# Methods that nginx sends to the next backend after an error (RFC 9110,
# 9.2.2); a POST that may have had an effect is not repeated.
IDEMPOTENT = frozenset(('GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'))

# What aiohttp's client would add by itself: the backend should see only what
# the browser sent.
NOT_ADDED = ('User-Agent', 'Accept', 'Accept-Encoding')


def forwardable(headers):
    """The end-to-end headers of `headers`, duplicates kept."""
    named = {istr(name.strip())
             for value in headers.getall('Connection', ())
             for name in value.split(',') if name.strip()}
    return CIMultiDict((name, value) for name, value in headers.items()
                       if name not in HOP_BY_HOP and name not in named)


class RoundRobinProxy:
    """Round-robin over `backends` (ports on 127.0.0.1).

    Use it as a context manager, or start() and stop(). `requests` lists
    (backend port or None, method, path with query, outcome) in the order
    things happened, where outcome is the status of an answer (noted when
    its headers come), 'refused' or 'failed' (that backend did not answer;
    see the module's docstring for what happens next) or 'broken' (a
    second entry: the backend died during the answer).
    """

    def __init__(self, backends, host='127.0.0.1'):
        self.backends = list(backends)
        self.host = host
        self.port = None
        self.requests = []
        self.active = {}
        self._turn = itertools.count()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None

    def url(self, path=''):
        return 'http://%s:%d/%s' % (self.host, self.port, path.lstrip('/'))

    # -- running it -----------------------------------------------------

    def start(self, timeout=10):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name='rrproxy', daemon=True)
        self._thread.start()
        self.port = self._call(self._start(), timeout)
        return self

    def stop(self, timeout=10):
        if self._loop is None:
            return
        try:
            self._call(self._stop(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            self._loop = None

    def _call(self, coroutine, timeout):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    async def _start(self):
        # One backend connection per request (no pool): a pooled connection
        # to a backend that was killed would fail on reuse in a way that
        # cannot be told from a failure after the request was sent.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=NOT_ADDED,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        server = web.Server(self._handle, handler_cancellation=True)
        self._runner = web.ServerRunner(server, handle_signals=False,
                                        shutdown_timeout=1)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind((self.host, 0))
        await web.SockSite(self._runner, sock).start()
        return sock.getsockname()[1]

    async def _stop(self):
        await self._runner.cleanup()
        await self._session.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- records ----------------------------------------------------------

    def _note(self, port, request, outcome):
        with self._lock:
            self.requests.append((port, request.method, request.path_qs,
                                  outcome))

    def inFlight(self, path_contains=''):
        """[(backend port, path)] of the requests being answered now."""
        with self._lock:
            return [entry for entry in self.active.values()
                    if path_contains in entry[1]]

    def backendsUsed(self):
        with self._lock:
            return {port for port, _m, _p, outcome in self.requests
                    if isinstance(outcome, int)}

    # -- proxying ---------------------------------------------------------

    def _order(self):
        """The backends to try for one request: the next one in turn, then
        the others (asked only when the ones before did not answer)."""
        first = next(self._turn) % len(self.backends)
        return self.backends[first:] + self.backends[:first]

    async def _handle(self, request):
        key = next(self._ids)
        try:
            return await self._forward(request, key)
        finally:
            with self._lock:
                self.active.pop(key, None)

    async def _forward(self, request, key):
        # The whole body is read first: requests in these tests are small,
        # and a body in hand can be sent again to the next backend.
        body = await request.read()
        headers = forwardable(request.headers)
        headers.add('X-Forwarded-For', request.remote or '')
        for port in self._order():
            with self._lock:
                # In flight from now on: a long-poll is held before its
                # headers come.
                self.active[key] = (port, request.path_qs)
            url = URL('http://127.0.0.1:%d%s' % (port, request.raw_path),
                      encoded=True)
            try:
                upstream = await self._session.request(
                    request.method, url, headers=headers, data=body,
                    allow_redirects=False)
            except aiohttp.ClientConnectorError:
                # Nothing was sent: the next backend may take it.
                self._note(port, request, 'refused')
                continue
            except aiohttp.ClientError:
                # The backend took the request and failed before answering
                # (a held long-poll when its process is killed). Only a
                # request that may be repeated goes to the next one.
                self._note(port, request, 'failed')
                if request.method in IDEMPOTENT:
                    continue
                return web.Response(status=502, text='bad gateway')
            async with upstream:
                return await self._relay(request, upstream, port)
        self._note(None, request, 502)
        return web.Response(status=502, text='no backend is up')

    async def _relay(self, request, upstream, port):
        response = web.StreamResponse(status=upstream.status,
                                      reason=upstream.reason)
        response.headers.extend(forwardable(upstream.headers))
        length = upstream.headers.get('Content-Length')
        if length is not None and 'Transfer-Encoding' not in upstream.headers:
            response.content_length = int(length)
        # Noted before the client can have the answer, so a test that got a
        # response finds it in the record.
        self._note(port, request, upstream.status)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except aiohttp.ClientError:
            client = request.transport
            if client is None or client.is_closing():
                # The client went away (before its handler was cancelled):
                # leaving closes the backend's connection too.
                return response
            # The backend died mid-response. Ending the response normally
            # would tell the client it got all of it.
            self._note(port, request, 'broken')
            client.abort()
            return response
        await response.write_eof()
        return response
