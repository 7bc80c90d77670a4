"""Issue 22: no stranger can starve the loop or lock people out.

The probes an attacker would run, each against the real LiveServerHTTP on
loopback: floods over one anonymous WebSocket (pings, inputs, attach and
detach) while @@live-health and another client's events are watched;
connections from one address and one network prefix; anonymous pages
filling the cap from ten addresses. Client source addresses are loopback
ones (127.0.0.2 ... 127.0.1.x: all of 127/8 is local), bound with the
client socket's source address; 127.0.0.1 is the trusted proxy.
"""

import asyncio
import json
import socket
import threading
import time

import aiohttp
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import Page
from zorg.live.tests.test_websocket import Socket, appendsOf

LIMIT = 30        # seconds any awaited outcome may take
HEALTHY = 5       # seconds within which each health answer must come


def sessionFrom(address='127.0.0.1'):
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True,
                                       local_addr=(address, 0)),
        timeout=aiohttp.ClientTimeout(total=60))


class Flooder(threading.Thread):
    """One WebSocket from `address` that sends `frames` (bytes of masked
    client frames) as fast as it can, and reads what comes back: how the
    server closed it (`closeCode`)."""

    def __init__(self, server, frames, address='127.0.0.2', first=b''):
        super().__init__(daemon=True)
        self.protocol = ClientProtocol(parse_uri(
            server.url('@@live').replace('http', 'ws', 1)))
        self.sock = socket.create_connection(
            ('127.0.0.1', server.port), 10, source_address=(address, 0))
        self.protocol.send_request(self.protocol.connect())
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)
        self.frames, self.first = frames, first
        self.closeCode = None
        self.sent = 0
        self.done = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)

    def run(self):
        self.reader.start()
        deadline = time.monotonic() + LIMIT
        try:
            self.sock.sendall(self.first)
            while not self.done.is_set() and time.monotonic() < deadline:
                self.sock.sendall(self.frames)
                self.sent += 1
        except OSError:
            pass

    def read(self):
        deadline = time.monotonic() + LIMIT + 10
        self.sock.settimeout(1)
        try:
            while time.monotonic() < deadline:
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                self.protocol.receive_data(data)
                self.protocol.events_received()
                if self.protocol.close_rcvd is not None:
                    self.closeCode = self.protocol.close_rcvd.code
                    break
        except OSError:
            pass
        finally:
            self.done.set()


def clientFrame(message):
    return Frame(Opcode.TEXT, json.dumps(message).encode()).serialize(
        mask=True)


async def health(session, server):
    started = time.monotonic()
    async with session.get(server.url('@@live-health')) as r:
        body = await r.json()
        took = time.monotonic() - started
        assert r.status == 200, body
        assert took < HEALTHY, 'health took %.1f s' % took
        return body


async def watchWhileFlooded(server, flooder, s):
    """While `flooder` floods: health answers 200 promptly, and another
    client's page (its own WebSocket) gets what is published to it."""
    async with Socket(server) as ws:
        page = await Page(server, s, 'livepage.html').open()
        assert (await ws.attach(1, page))['type'] == 'attached'
        flooder.start()
        n = 0
        deadline = time.monotonic() + LIMIT
        while not flooder.done.is_set():
            assert time.monotonic() < deadline, 'the flood was not stopped'
            await health(s, server)
            status, body = await page.send('append', 't', 'during %d' % n)
            assert status == 200, body
            await ws.until(lambda m: 'during %d' % n in appendsOf(ws, 1))
            n += 1
            await asyncio.sleep(0.2)
        assert n >= 1
        # Closed, the flooder's page (of the same group) stops no one's.
        status, body = await page.send('append', 't', 'after')
        assert status == 200, body
        await ws.until(lambda m: 'after' in appendsOf(ws, 1))
        return await health(s, server)


FLOODS = {
    'ping': lambda uuid, url: clientFrame({'type': 'ping'}) * 500,
    'input': lambda uuid, url: b''.join(
        clientFrame({'type': 'input', 'page': 1, 'id': 'i%d' % n,
                     'handler': 'append', 'arguments': ['t', 'flood']})
        for n in range(200)),
    'attach-detach': lambda uuid, url: (clientFrame({
        'type': 'attach', 'page': 2, 'uuid': uuid, 'lastEventId': None,
        'url': url}) + clientFrame({'type': 'detach', 'page': 2})) * 200,
}


@pytest.mark.parametrize('kind', sorted(FLOODS))
def test_a_flood_from_one_socket_is_slowed_then_closed_and_others_go_on(
        tmp_path, kind):
    """One anonymous WebSocket floods (pings, inputs, or attach and
    detach): it is read more slowly, then closed with 1008; meanwhile
    @@live-health answers 200 promptly and another client's page gets
    every event; health counts both reasons."""
    async def run(server):
        async with sessionFrom() as s:
            victim = await Page(server, s, 'livepage.html').open()
            url = victim.client('')[:-1]
            first = clientFrame({'type': 'attach', 'page': 1,
                                 'uuid': victim.uuid, 'url': url})
            flooder = Flooder(server, FLOODS[kind](victim.uuid, url),
                              first=first)
            body = await watchWhileFlooded(server, flooder, s)
            assert flooder.closeCode == 1008
            assert body['refused']['socket-slowed'] >= 1
            assert body['refused']['socket-over-budget'] == 1

    with RunningServer(tmp_path, refresh_interval=2, budget_grace=2,
                       threads=2) as server:
        asyncio.run(run(server))


def rawAnswer(address, port, request=None):
    """The first bytes a new connection from `address` gets (None: it is
    still open and silent after a moment), and the socket."""
    sock = socket.create_connection(('127.0.0.1', port), 10,
                                    source_address=(address, 0))
    if request is not None:
        sock.sendall(request)
    sock.settimeout(0.5 if request is None else 10)
    try:
        answer = sock.recv(65536)
    except socket.timeout:
        return None, sock
    while request is not None and answer:     # the whole answer (close)
        try:
            more = sock.recv(65536)
        except ConnectionResetError:   # refused with our request unread
            break
        if not more:
            break
        answer += more
    return answer, sock


def test_connections_are_capped_per_address_and_per_prefix(tmp_path):
    """Five connections from one address, eight from its /24: the next is
    answered 503 with Retry-After at once, while an address of another
    prefix is served; a connection closed makes room again. A trusted
    proxy's (127.0.0.1) are not counted."""
    health = (b'GET /@@live-health HTTP/1.1\r\nHost: x\r\n'
              b'Connection: close\r\n\r\n')
    with RunningServer(tmp_path, max_connections=80,
                       max_connections_per_address=5, max_prefix_share=0.1,
                       retry_after=7) as server:
        held = []
        for address, count in (('127.0.0.2', 5), ('127.0.0.3', 3)):
            for _ in range(count):
                answer, sock = rawAnswer(address, server.port)
                assert answer is None
                held.append(sock)
            answer, sock = rawAnswer('127.0.0.2', server.port, health)
            assert answer.startswith(b'HTTP/1.1 503'), answer
            assert b'retry-after: 7' in answer.lower()
            assert b'"busy"' in answer
            sock.close()
        answer, sock = rawAnswer('127.0.0.4', server.port, health)
        assert answer.startswith(b'HTTP/1.1 503'), answer
        sock.close()
        # Another prefix, and the trusted proxy: served.
        for address in ('127.0.1.2', '127.0.0.1'):
            answer, sock = rawAnswer(address, server.port, health)
            assert answer.startswith(b'HTTP/1.1 200'), answer
            sock.close()
        # A WebSocket counts as a connection too.
        with pytest.raises(websockets.InvalidStatus) as refused:
            asyncio.run(websockets.connect(
                server.url('@@live').replace('http', 'ws', 1),
                local_addr=('127.0.0.5', 0)).__aenter__())
        assert refused.value.response.status_code == 503
        held.pop().close()
        deadline = time.monotonic() + LIMIT
        while True:
            answer, sock = rawAnswer('127.0.0.4', server.port, health)
            sock.close()
            if answer.startswith(b'HTTP/1.1 200'):
                break
            assert time.monotonic() < deadline, answer
        answer, sock = rawAnswer('127.0.0.1', server.port, health)
        body = json.loads(answer.split(b'\r\n\r\n', 1)[1])
        assert body['refused']['address-connections'] == 2
        assert body['refused']['prefix-connections'] >= 2
        for sock in held:
            sock.close()


def test_ten_addresses_cannot_lock_out_an_anonymous_visitor(tmp_path):
    """Ten addresses (each its own prefix here: ipv4-prefix 32) fill
    max-anonymous-pages; each is then refused more. A visitor from an
    eleventh address still gets a live page: the least recently seen page
    of the fullest prefix makes room, and is told so."""
    async def run(server):
        attackers = ['127.0.0.%d' % n for n in range(2, 12)]
        sessions = {a: sessionFrom(a) for a in attackers}
        try:
            pages = []
            for address in attackers:
                for _ in range(5):
                    pages.append(await Page(server, sessions[address],
                                            'livepage.html').open())
            for address in attackers[:3]:
                async with sessions[address].get(
                        server.url('livepage.html')) as r:
                    assert r.status == 503, await r.text()
                    assert r.headers['Retry-After'] == '5'
            async with sessionFrom('127.0.1.2') as visitor:
                page = await Page(server, visitor, 'livepage.html').open()
                status, body = await page.send('append', 't', 'hello')
                assert status == 200, body
                [append] = await page.waitFor('append')
                assert append['html'] == 'hello'
                async with visitor.get(server.url('@@live-health')) as r:
                    refused = (await r.json())['refused']
            assert refused['anonymous-evicted'] == 1
            assert refused['anonymous-refused'] == 3
            # The evicted page is the oldest of a full prefix: its first.
            evicted = pages[0]
            async with evicted.session.get(evicted.client('output'), params={
                    'outputNum': '0'}) as r:
                answer = await r.text()
            assert r.status == 404 or 'evicted' in answer, answer
        finally:
            for s in sessions.values():
                await s.close()

    with RunningServer(tmp_path, max_anonymous_pages=50,
                       max_anonymous_per_address=5, ipv4_prefix=32,
                       refresh_interval=1) as server:
        asyncio.run(run(server))


def test_one_prefix_holds_at_most_its_share_of_anonymous_pages(tmp_path):
    """The default /24: ten addresses of one prefix together hold only
    max-prefix-share of the cap; another prefix is served."""
    async def run(server):
        opened = refused = 0
        for n in range(2, 12):
            async with sessionFrom('127.0.0.%d' % n) as s:
                for _ in range(2):
                    async with s.get(server.url('livepage.html')) as r:
                        if r.status == 200:
                            opened += 1
                        else:
                            assert r.status == 503
                            refused += 1
        assert (opened, refused) == (5, 15)
        async with sessionFrom('127.0.1.2') as s:
            async with s.get(server.url('livepage.html')) as r:
                assert r.status == 200

    with RunningServer(tmp_path, max_anonymous_pages=50,
                       max_anonymous_per_address=5) as server:
        asyncio.run(run(server))


def test_a_request_flood_on_one_connection_gets_429(tmp_path):
    """One kept-alive HTTP connection from 127.0.0.2 sends requests
    without pause: it is read more slowly, then answered 429 with
    Retry-After and closed, while health answers others with 200."""
    request = b'GET /@@live-health HTTP/1.1\r\nHost: x\r\n\r\n'

    async def run(server):
        sock = socket.create_connection(('127.0.0.1', server.port), 10,
                                        source_address=('127.0.0.2', 0))
        received = bytearray()
        done = threading.Event()

        def flood():
            deadline = time.monotonic() + LIMIT
            try:
                while not done.is_set() and time.monotonic() < deadline:
                    sock.sendall(request * 20)
            except OSError:
                pass

        def read():
            sock.settimeout(1)
            deadline = time.monotonic() + LIMIT
            try:
                while time.monotonic() < deadline:
                    try:
                        data = sock.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    received.extend(data)
            except OSError:
                pass
            done.set()

        threads = [threading.Thread(target=f, daemon=True)
                   for f in (flood, read)]
        for thread in threads:
            thread.start()
        async with sessionFrom() as s:
            while not done.is_set():
                await health(s, server)
                await asyncio.sleep(0.2)
            body = await health(s, server)
        assert b'HTTP/1.1 429 Too Many Requests' in received
        last = bytes(received).rsplit(b'HTTP/1.1 ', 1)[1]
        assert last.startswith(b'429') and b'retry-after: 5' in last.lower()
        assert body['refused']['http-slowed'] == 1
        assert body['refused']['http-over-budget'] == 1

    with RunningServer(tmp_path, budget_grace=2) as server:
        asyncio.run(run(server))


def test_pages_a_shared_stream_keeps_alive_are_evicted_like_any(tmp_path):
    """One address fills the anonymous cap and keeps its pages alive on
    one shared SSE stream: a visitor of another prefix still gets a page,
    the stream is told that its least recently seen page was evicted,
    and the address cannot take the place back."""
    from zorg.live.tests.test_websocket import readStream

    async def run(server):
        async with sessionFrom('127.0.0.2') as s:
            pages = [await Page(server, s, 'livepage.html').open()
                     for _ in range(10)]
            query = [('page', '%d,%s,' % (n, p.uuid))
                     for n, p in enumerate(pages, 1)]
            async with s.get(server.url('@@live/events'),
                             params=query) as stream:
                assert stream.status == 200
                await readStream(stream, lambda ms: sum(
                    m['type'] == 'attached' for m in ms) == 10)
                async with sessionFrom('127.0.1.2') as visitor:
                    page = await Page(server, visitor, 'livepage.html').open()
                    status, body = await page.send('append', 't', 'hi')
                    assert status == 200, body
                    messages = await readStream(stream, lambda ms: any(
                        e['event'] == 'close' for m in ms
                        if m['type'] == 'events' for e in m['events']))
                [told] = [m for m in messages if m['type'] == 'events'
                          and m['events'][-1]['event'] == 'close']
                assert told['page'] in range(1, 11)
                assert told['events'][-1]['reason'] == 'evicted'
                async with s.get(server.url('livepage.html')) as r:
                    assert r.status == 503

    with RunningServer(tmp_path, max_anonymous_pages=10,
                       max_anonymous_per_address=10, max_prefix_share=1,
                       ipv4_prefix=32) as server:
        asyncio.run(run(server))


def test_frames_sent_with_the_handshake_do_not_spoil_it(tmp_path):
    """A client that sends its first messages in the same packet as its
    handshake (before it has the 101) still gets the 101 (they were once
    parsed as a second HTTP request and answered 400)."""
    with RunningServer(tmp_path) as server:
        protocol = ClientProtocol(parse_uri(
            server.url('@@live').replace('http', 'ws', 1)))
        sock = socket.create_connection(('127.0.0.1', server.port), 10,
                                        source_address=('127.0.0.2', 0))
        protocol.send_request(protocol.connect())
        head = b''.join(protocol.data_to_send())
        sock.sendall(head + clientFrame({'type': 'ping'}) * 2000)
        sock.settimeout(10)
        answer = b''
        while b'\r\n\r\n' not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b'HTTP/1.1 101'), answer
        sock.close()
