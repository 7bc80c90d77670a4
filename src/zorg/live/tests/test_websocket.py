"""The WebSocket transport of LiveServerHTTP (issue 13) over the wire, with
the `websockets` client against the real server: many pages on one
connection, input over it exactly once, who may attach, the origin check,
bad frames, vanished peers, the drain on SIGTERM; and the shared SSE
stream. livepage.js's sharing among tabs is tested in real Chromium
(test_tabs_browser.py)."""

import asyncio
import json
import os
import socket
import time

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from zorg.live.tests.redisfixture import redisServer, servers  # noqa
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import (
    ALICE, BOB, SITE_ZCML as DEMO_ZCML, Page, session)

LIMIT = 20     # seconds any awaited message may take


class Socket:
    """One WebSocket to ``<app URL>/@@live``, with what it received."""

    def __init__(self, server, headers=None, origin=None):
        self.url = server.url('@@live').replace('http', 'ws', 1)
        self.headers = dict(headers or {})
        if origin is not None:
            self.headers['Origin'] = origin
        self.messages = []

    async def __aenter__(self):
        self.ws = await websockets.connect(
            self.url, additional_headers=self.headers, max_size=None,
            max_queue=None)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def send(self, **message):
        await self.ws.send(json.dumps(message))

    async def attach(self, number, page, last=None):
        await self.send(type='attach', page=number, uuid=page.uuid,
                        lastEventId=last, url=page.client('')[:-1])
        return await self.until(lambda m: m.get('page') == number and
                                m['type'] in ('attached', 'error'))

    async def until(self, found, count=None):
        """The first message for which `found` is true, or with `count`
        the list of them once there are that many (reading on until
        then)."""
        deadline = time.monotonic() + LIMIT
        while True:
            matches = [m for m in self.messages if found(m)]
            if len(matches) >= (count or 1):
                return matches[0] if count is None else matches
            left = deadline - time.monotonic()
            assert left > 0, 'not received: %s' % self.messages[-5:]
            self.messages.append(json.loads(
                await asyncio.wait_for(self.ws.recv(), left)))

    def events(self, number, kind='append'):
        return [e for m in self.messages
                if m['type'] == 'events' and m['page'] == number
                for e in m['events'] if e['event'] == kind]


def appendsOf(socket, number):
    return [e['html'] for e in socket.events(number)]


def until(condition):
    deadline = time.monotonic() + LIMIT
    while not condition():
        assert time.monotonic() < deadline, 'not in time'
        time.sleep(0.05)


def liveServer(tmp_path, **settings):
    settings.setdefault('refresh_interval', 2)
    return RunningServer(tmp_path, **settings)


def test_pages_on_one_connection_each_get_every_event_once_in_order(
        tmp_path):
    """Five pages of one group on one connection, and one more page of
    another group: each of the group's pages gets every event once and in
    order, in messages that name it; the other page gets none."""
    async def run(server):
        async with session() as s, Socket(server) as ws:
            pages = [await Page(server, s, 'livepage.html').open()
                     for _ in range(5)]
            other = await Page(server, s, 'room-a.html').open()
            for number, page in enumerate(pages, 1):
                assert (await ws.attach(number, page))['type'] == 'attached'
            assert (await ws.attach(9, other))['type'] == 'attached'
            for n in range(10):
                await pages[n % 5].send('append', 'target', 'm%d' % n)
            await ws.until(lambda m: m['type'] == 'events' and
                           m['page'] == 5 and m['events'][-1].get(
                               'html') == 'm9')
            for number in range(1, 6):
                await ws.until(lambda m: 'm9' in appendsOf(ws, number))
                assert appendsOf(ws, number) == ['m%d' % n for n in range(10)]
            assert ws.events(9) == []

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_input_over_the_socket_runs_once_though_its_answer_was_lost(tmp_path):
    """The connection drops after the server ran an input and before its
    answer arrived; the page attaches again (another connection) and sends
    the input again with the same id: the recorded answer comes back and
    the handler did not run twice."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            watcher = await Page(server, s, 'livepage.html').open()
            async with Socket(server) as observer:
                await observer.attach(1, watcher)
                lost = Socket(server)
                await lost.__aenter__()
                await lost.attach(1, page)
                await lost.send(type='input', page=1, id='in-1',
                                handler='append', arguments=['t', 'once'])
                # It ran (the observer sees its event); the answer is lost
                # with the connection, unread.
                await observer.until(lambda m: 'once' in appendsOf(
                    observer, 1))
                lost.ws.transport.abort()
                async with Socket(server) as again:
                    last = observer.events(1)[-1]['id']
                    await again.attach(1, page, last)
                    await again.send(type='input', page=1, id='in-1',
                                     handler='append', arguments=['t',
                                                                  'once'])
                    await again.send(type='input', page=1, id='in-2',
                                     handler='append', arguments=['t',
                                                                  'after'])
                    acks = await again.until(
                        lambda m: m['type'] == 'ack', 2)
                    assert [(a['id'], a['status']) for a in acks] == [
                        ('in-1', 200), ('in-2', 200)]
                    await observer.until(lambda m: 'after' in appendsOf(
                        observer, 1))
                    assert appendsOf(observer, 1) == ['once', 'after']
                    # The page itself got each once, after its last id.
                    await again.until(lambda m: 'after' in appendsOf(
                        again, 1))
                    assert appendsOf(again, 1) == ['after']

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_input_answers_as_the_post_path_does(tmp_path):
    """An undeclared handler, a page not attached, a bad input id: each a
    clear answer to that input only; the page goes on."""
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            await ws.send(type='input', page=1, id='x1', handler='nothere',
                          arguments=[])
            ack = await ws.until(lambda m: m.get('id') == 'x1')
            assert ack['type'] == 'ack' and ack['status'] == 400
            assert 'Undeclared handler' in ack['reply']['message']
            await ws.send(type='input', page=2, id='x2', handler='append',
                          arguments=['t', 'x'])
            error = await ws.until(lambda m: m['type'] == 'error')
            assert error['page'] == 2 and 'not attached' in error['message']
            assert error['id'] == 'x2'     # which input it was
            await ws.send(type='input', page=1, id='not an id',
                          handler='append', arguments=['t', 'x'])
            await ws.until(lambda m: m['type'] == 'error', 2)
            await ws.send(type='input', page=1, id='x3', handler='append',
                          arguments=['t', 'fine'])
            await ws.until(lambda m: 'fine' in appendsOf(ws, 1))
            assert appendsOf(ws, 1) == ['fine']

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_a_page_of_another_principal_cannot_attach(tmp_path):
    """Alice's page on bob's connection, or on an anonymous one: refused,
    and nothing of the page changes; on alice's own connection it works."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            for headers in (BOB, {}):
                async with Socket(server, headers) as ws:
                    error = await ws.attach(1, page)
                    assert error['type'] == 'error', error
                    assert error['error'] == 'forbidden'
                    await ws.send(type='input', page=1, id='b1',
                                  handler='say', arguments=['forged'])
                    await ws.until(lambda m: m['type'] == 'error', 2)
            async with Socket(server, ALICE) as ws:
                assert (await ws.attach(1, page))['type'] == 'attached'
                await ws.send(type='input', page=1, id='a1', handler='say',
                              arguments=['from alice'])
                ack = await ws.until(lambda m: m['type'] == 'ack')
                assert ack['status'] == 200, ack
                await ws.until(lambda m: m['type'] == 'events' and any(
                    'from alice' in e.get('html', '') for e in m['events']))
                assert 'forged' not in json.dumps(ws.messages)

    with RunningServer(tmp_path, zcml=DEMO_ZCML,
                       refresh_interval=2) as server:
        asyncio.run(run(server))


def test_a_page_of_another_origin_cannot_open_the_socket(tmp_path):
    """Cross-site WebSocket hijacking: the handshake from another origin
    gets 403; the site's own origin and a trusted one are accepted."""
    async def run(server):
        own = server.url('').rstrip('/')
        for origin, accepted in ((own, True), ('http://evil.test', False),
                                 ('http://trusted.test', True),
                                 ('null', False)):
            if accepted:
                async with Socket(server, ALICE, origin) as ws:
                    await ws.send(type='ping')
                    await ws.until(lambda m: m['type'] == 'pong')
            else:
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with Socket(server, ALICE, origin):
                        pass
                response = refused.value.response
                assert response.status_code == 403
                assert json.loads(response.body)['error'] == 'cross-site'

        # A repeated Origin: the last counts, as for every request (this
        # crashed the handshake, which then never answered).
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                server.url('@@live').replace('http', 'ws', 1),
                additional_headers=[('Origin', own),
                                    ('Origin', 'http://evil.test')],
                open_timeout=LIMIT)
        assert refused.value.response.status_code == 403

    with RunningServer(tmp_path, zcml=DEMO_ZCML, refresh_interval=2,
                       trusted_origins='http://trusted.test') as server:
        asyncio.run(run(server))


def test_bad_messages_get_an_error_and_no_other_page_is_affected(tmp_path):
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            for bad, says in (
                    ('{"type":"shout"}', 'unknown message type'),
                    ('{not json', 'not JSON'),
                    ('[1,2]', 'one JSON object'),
                    ('{"type":"attach","page":"one"}', '"page"'),
                    ('{"type":"attach","page":1,"uuid":"x"}', 'attached '
                                                              'already'),
                    ('{"type":"attach","page":2,"uuid":"unknownpage"}',
                     'does not know page'),
                    ('{"type":"detach","page":7}', 'not attached'),
                    ('[' * 100 + ']' * 100, 'nest')):
                before = len([m for m in ws.messages
                              if m['type'] == 'error'])
                await ws.ws.send(bad)
                errors = await ws.until(lambda m: m['type'] == 'error',
                                        before + 1)
                assert says in errors[-1]['message'], (bad, errors[-1])
            await page.send('append', 't', 'still here')
            await ws.until(lambda m: 'still here' in appendsOf(ws, 1))
            # Too large: the connection closes with 1009; another
            # connection's page is not affected.
            async with Socket(server) as other:
                second = await Page(server, s, 'livepage.html').open()
                await other.attach(1, second)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    # The send itself may see the close, mid-way.
                    await ws.ws.send('{"type":"ping","pad":"%s"}'
                                     % ('x' * (2 << 20)))
                    await ws.until(lambda m: False)
                assert closed.value.rcvd.code == 1009
                await page.send('append', 't', 'after')
                await other.until(lambda m: 'after' in appendsOf(other, 1))
            async with Socket(server) as binary:
                await binary.ws.send(b'\x00\x01')
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await binary.until(lambda m: False)
                assert closed.value.rcvd.code == 1003

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_detach_closes_the_page(tmp_path):
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            # @@live-health counts the open sockets.
            async with s.get(server.url('@@live-health')) as r:
                health = await r.json()
            assert (health['websockets'], health['sharedStreams']) == (1, 0)
            await ws.send(type='detach', page=1)
            await ws.until(lambda m: m['type'] == 'detached')
            status, body = await page.send('append', 't', 'gone')
            assert status == 404, body

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_attaching_elsewhere_takes_the_page_over(tmp_path):
    """The same page attached on a second connection (its owner changed):
    the first gets nothing more, the second everything after its id."""
    async def run(server):
        async with session() as s, Socket(server) as first, \
                Socket(server) as second:
            page = await Page(server, s, 'livepage.html').open()
            await first.attach(1, page)
            await page.send('append', 't', 'one')
            await first.until(lambda m: 'one' in appendsOf(first, 1))
            await second.attach(3, page, first.events(1)[-1]['id'])
            await page.send('append', 't', 'two')
            await second.until(lambda m: 'two' in appendsOf(second, 3))
            assert appendsOf(second, 3) == ['two']
            await first.send(type='ping')
            await first.until(lambda m: m['type'] == 'pong')
            assert appendsOf(first, 1) == ['one']

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def rawSocket(server, path='@@live'):
    """A WebSocket that answers nothing (not even pings) and reads only
    when told: a peer that vanished without closing."""
    protocol = ClientProtocol(parse_uri(
        server.url(path).replace('http', 'ws', 1)))
    sock = socket.create_connection(('127.0.0.1', server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = protocol.connect()
    protocol.send_request(request)
    for data in protocol.data_to_send():
        sock.sendall(data)
    response = b''
    while b'\r\n\r\n' not in response:
        response += sock.recv(1)
    assert response.startswith(b'HTTP/1.1 101'), response
    return sock


def untilDropped(sock):
    """Read (and ignore) what the server sends `sock`, a peer that answers
    no ping, until the server closes the connection (within LIMIT)."""
    sock.settimeout(LIMIT)
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        try:
            if not sock.recv(4096):
                break
        except ConnectionResetError:
            break
    else:
        raise AssertionError('the silent peer was not dropped')
    sock.close()


def test_a_peer_that_answers_no_pings_is_dropped(tmp_path):
    async def run(server):
        # Pings come and get no pong: the server closes the connection.
        untilDropped(rawSocket(server))
        # The server goes on.
        async with Socket(server) as ws:
            await ws.send(type='ping')
            await ws.until(lambda m: m['type'] == 'pong')

    with liveServer(tmp_path, heartbeat_interval=1) as server:
        asyncio.run(run(server))


def test_a_reader_that_reads_nothing_is_dropped(tmp_path):
    """A connection whose owner stops reading while its page gets much:
    dropped after send-timeout; another page of the group gets it all."""
    async def run(server):
        async with session() as s, Socket(server) as ws:
            stuck = await Page(server, s, 'livepage.html').open()
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            sock = rawSocket(server)
            sock.sendall(websocketText(json.dumps({
                'type': 'attach', 'page': 1, 'uuid': stuck.uuid})))
            # More than loopback's socket buffers take (some MB).
            big = 'x' * 60000
            for n in range(250):
                status, body = await page.send('append', 't', '%d%s'
                                               % (n, big))
                assert status == 200, body
            await ws.until(lambda m: len(appendsOf(ws, 1)) == 250)
            # The stuck reader is dropped: the server says so (what it
            # had sent still trickles through the tiny window afterwards).
            until(lambda: 'dropping a WebSocket that read nothing' in open(
                os.path.join(server.dir, 'server.log')).read())
            sock.close()

    with liveServer(tmp_path, send_timeout=1) as server:
        asyncio.run(run(server))


def websocketText(text):
    """A masked client text frame (the `websockets` library frames it)."""
    from websockets.frames import Frame, Opcode
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True)


def test_sigterm_tells_every_connection_to_reconnect(tmp_path):
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            stopping = asyncio.get_running_loop().run_in_executor(
                None, server.stop)
            await ws.until(lambda m: m['type'] == 'reconnect')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.until(lambda m: False)
            assert closed.value.rcvd.code == 1012
            assert await stopping == 0

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_the_wsgi_server_offers_no_websocket(tmp_path):
    """WSGI-HTTP keeps offering long-poll only: no data-live-url, and no
    upgrade at @@live."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            assert 'data-live-url' not in page.html
            assert 'data-transports="longpoll"' in page.html
            with pytest.raises(websockets.InvalidStatus):
                async with Socket(server):
                    pass

    with liveServer(tmp_path, types=('WSGI-HTTP',)) as server:
        asyncio.run(run(server))


# -- the shared SSE stream ---------------------------------------------------

async def readStream(response, found):
    """Messages of a shared SSE stream until `found(messages)`."""
    messages, buffer = [], b''
    deadline = time.monotonic() + LIMIT
    while not found(messages):
        left = deadline - time.monotonic()
        assert left > 0, messages
        chunk = await asyncio.wait_for(response.content.readany(), left)
        assert chunk, 'the stream ended: %s' % messages
        buffer += chunk
        while b'\n\n' in buffer:
            block, buffer = buffer.split(b'\n\n', 1)
            for line in block.split(b'\n'):
                if line.startswith(b'data: '):
                    messages.append(json.loads(line[6:]))
    return messages


def test_one_shared_sse_stream_carries_many_pages(tmp_path):
    async def run(server):
        async with session() as s:
            pages = [await Page(server, s, 'livepage.html').open()
                     for _ in range(3)]
            query = [('page', '%d,%s,' % (n, p.uuid))
                     for n, p in enumerate(pages, 1)]
            query.append(('page', '4,unknownpage,'))
            async with s.get(server.url('@@live/events'),
                             params=query) as r:
                assert r.status == 200
                messages = await readStream(r, lambda ms: sum(
                    m['type'] in ('attached', 'error') for m in ms) == 4)
                [error] = [m for m in messages if m['type'] == 'error']
                assert error['page'] == 4
                await pages[0].send('append', 't', 'to all')
                messages = await readStream(r, lambda ms: len(
                    [m for m in ms if m['type'] == 'events']) == 3)
                assert sorted(m['page'] for m in messages
                              if m['type'] == 'events') == [1, 2, 3]
                async with s.get(server.url('@@live-health')) as h:
                    assert (await h.json())['sharedStreams'] == 1
            # The client went away: the stream ends (its pages detach).
            deadline = time.monotonic() + LIMIT
            while True:
                async with s.get(server.url('@@live-health')) as h:
                    if (await h.json())['sharedStreams'] == 0:
                        break
                assert time.monotonic() < deadline, 'the stream stayed'
                await asyncio.sleep(0.05)
            # Another origin: refused.
            async with s.get(server.url('@@live/events'), params=query,
                             headers={'Origin': 'http://evil.test'}) as r:
                assert r.status == 403
            async with s.get(server.url('@@live/events'),
                             params=[('page', 'x')]) as r:
                assert r.status == 400

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))


def test_floods_are_bounded(tmp_path):
    """Inputs sent ten times faster than they run: past 100 waiting, each
    gets busy at once (and did not run); a peer that sends pings and reads
    nothing is dropped rather than piling up pongs."""
    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            for n in range(1000):
                await ws.send(type='input', page=1, id='f%d' % n,
                              handler='append', arguments=['t', '%d' % n])
            answers = await ws.until(lambda m: m['type'] in ('ack', 'error')
                                     and m.get('page') == 1, 1000)
            ran = [m['id'] for m in answers if m['type'] == 'ack']
            busy = [m for m in answers if m['type'] == 'error']
            assert busy and all(m['error'] == 'busy' for m in busy)
            assert {m['id'] for m in busy} | set(ran) == {
                'f%d' % n for n in range(1000)}
            assert len(ran) + len(busy) == 1000
            await ws.until(lambda m: str(len(ran) - 1) in appendsOf(
                ws, 1) or len(appendsOf(ws, 1)) >= len(ran))
            assert sorted(appendsOf(ws, 1), key=int) == sorted(
                (i[1:] for i in ran), key=int)
        sock = rawSocket(server)
        flood = memoryview(websocketText(json.dumps({'type': 'ping'})) * 100)
        # Sent until the server drops the peer. A busy machine's server
        # reads slower than this sends (and its kernel buffers take some
        # MB of pongs first), so a send that waits is not the end: go on,
        # a frame at a time (a partial send resumes where it stopped).
        sock.settimeout(1)
        deadline = time.monotonic() + 6 * LIMIT
        sent, dropped = 0, False
        while not dropped and time.monotonic() < deadline:
            try:
                sent = (sent + sock.send(flood[sent:])) % len(flood)
            except socket.timeout:
                continue
            except OSError:
                dropped = True
        assert dropped, 'the flooding peer was not dropped'
        # For not reading: its pongs piled up past the bound, or (a slow
        # machine) nothing was read within the send timeout.
        until(lambda: any(why in open(os.path.join(
            server.dir, 'server.log')).read() for why in (
                'sends but does not read', 'that read nothing for')))
        sock.close()

    # The queue's bound, not the budget's (test_abuse.py): a budget that
    # lets the whole flood in. Heartbeats far apart: the flooding peer
    # answers no ping either, and on a slow machine the flood could
    # outlast a short interval (then it is dropped as silent instead).
    with liveServer(tmp_path, socket_messages=100000,
                    heartbeat_interval=60) as server:
        asyncio.run(run(server))


# -- two processes on Redis --------------------------------------------------

@pytest.mark.redis
def test_a_page_of_one_process_attaches_to_a_socket_of_another(servers):
    """Redis: a page rendered by process A is attached to a WebSocket of
    process B (which adopts it), gets what A's pages publish, and its input
    over B's socket runs once, though sent twice, once to each process."""
    a = servers('a', refresh_interval=2)
    b = servers('b', refresh_interval=2)

    async def run():
        async with session() as s, Socket(b) as ws:
            page = await Page(a, s, 'livepage.html').open()
            assert (await ws.attach(1, page))['type'] == 'attached'
            await page.send('append', 't', 'from a')
            await ws.until(lambda m: 'from a' in appendsOf(ws, 1))
            await ws.send(type='input', page=1, id='r1', handler='append',
                          arguments=['t', 'from b'])
            await ws.until(lambda m: m['type'] == 'ack')
            # The same input id again, to process A over POST.
            async with s.post(page.client('input'), json={
                    'handler': 'append', 'arguments': ['t', 'from b']},
                    headers={'X-Live-Input-Id': 'r1'}) as r:
                assert r.status == 200
            await page.send('append', 't', 'last')
            await ws.until(lambda m: 'last' in appendsOf(ws, 1))
            assert appendsOf(ws, 1) == ['from a', 'from b', 'last']

    asyncio.run(run())


@pytest.mark.redis
def test_a_hung_redis_stops_neither_the_socket_nor_an_input(servers,
                                                             redisServer):
    """Redis hangs (SIGSTOP) while a page is attached: the socket still
    answers at once, an input sent meanwhile is refused (503, nothing
    stored or recorded), and sent again with the same id after Redis is
    back it runs, once."""
    a = servers('a', refresh_interval=2)

    async def run():
        async with session() as s, Socket(a) as ws:
            page = await Page(a, s, 'livepage.html').open()
            await ws.attach(1, page)
            redisServer.hang()
            try:
                await ws.send(type='input', page=1, id='h1',
                              handler='append', arguments=['t', 'hung'])
                await ws.send(type='ping')
                first = await ws.until(lambda m: m['type'] in ('pong',
                                                               'ack'))
                assert first['type'] == 'pong'    # not behind the input
                ack = await ws.until(lambda m: m['type'] == 'ack')
                assert ack['status'] == 503, ack
                assert ack['reply']['error'] == 'broker-unavailable'
            finally:
                redisServer.resume()
            await ws.send(type='input', page=1, id='h1', handler='append',
                          arguments=['t', 'hung'])
            await ws.until(lambda m: m['type'] == 'ack' and
                           m['status'] == 200)
            await page.send('append', 't', 'last')
            await ws.until(lambda m: 'last' in appendsOf(ws, 1))
            assert appendsOf(ws, 1) == ['hung', 'last']

    asyncio.run(run())


def test_bad_input_is_answered_once_at_its_edge_over_socket_and_post(
        tmp_path):
    """Input at ten times max-input-size, arguments nested past
    max-argument-depth inside a JSON string (the message's own depth is
    1), and arguments that are neither a list nor an object: each refused
    with the answer it gets today (socket: an error or a 400 ack; POST:
    413 or 400), nothing runs, and the connection and page go on."""
    limit = 4096

    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'livepage.html').open()
            await ws.attach(1, page)
            # Ten times the limit, over the socket: an error naming the
            # input, before anything runs.
            await ws.send(type='input', page=1, id='big', handler='append',
                          arguments=['t', 'x' * (10 * limit)])
            big = await ws.until(lambda m: m.get('id') == 'big')
            assert (big['type'], big['error']) == ('error', 'too-large')
            deep = '[' * 100 + ']' * 100
            for inputId, arguments, says in (
                    ('deep', deep, 'max-argument-depth'),
                    ('neither', 42, 'list or an object'),
                    ('broken', '[1,', 'not valid JSON')):
                await ws.send(type='input', page=1, id=inputId,
                              handler='append', arguments=arguments)
                ack = await ws.until(lambda m: m.get('id') == inputId)
                assert (ack['type'], ack['status'],
                        ack['reply']['error']) == ('ack', 400,
                                                   'bad-request'), ack
                assert says in ack['reply']['message'], ack
            # The same over POST.
            url = page.client('input')
            async with s.post(url, headers=page.auth, json={
                    'handler': 'append',
                    'arguments': ['t', 'x' * (10 * limit)]}) as r:
                assert r.status == 413
                assert (await r.json())['error'] == 'too-large'
            for arguments, says in ((deep, 'max-argument-depth'),
                                    (42, 'list or an object'),
                                    ('[1,', 'not valid JSON')):
                async with s.post(url, headers=page.auth, json={
                        'handler': 'append', 'arguments': arguments}) as r:
                    assert r.status == 400, arguments
                    body = await r.json()
                    assert body['error'] == 'bad-request'
                    assert says in body['message'], body
            # Nothing of it ran; the page and its connection go on.
            await ws.send(type='input', page=1, id='ok', handler='append',
                          arguments=['t', 'fine'])
            await ws.until(lambda m: 'fine' in appendsOf(ws, 1))
            assert appendsOf(ws, 1) == ['fine']

    with liveServer(tmp_path, max_input_size=limit) as server:
        asyncio.run(run(server))


def test_a_page_limit_of_nesting_holds_over_the_socket_too(tmp_path):
    """A page class's own maxArgumentsDepth, below the setting: a shared
    connection checks a message with the setting before it knows the
    page, and the page measures the decoded arguments; the same input over
    POST is refused at its edge. Nothing runs; the page goes on."""
    deep = ['t', [['x']]]       # nests 3 deep; the page allows 2

    async def run(server):
        async with session() as s, Socket(server) as ws:
            page = await Page(server, s, 'shallow.html').open()
            await ws.attach(1, page)
            await ws.send(type='input', page=1, id='deep', handler='append',
                          arguments=deep)
            ack = await ws.until(lambda m: m.get('id') == 'deep')
            assert (ack['type'], ack['status'],
                    ack['reply']['error']) == ('ack', 400, 'bad-request'), ack
            assert 'maxArgumentsDepth' in ack['reply']['message'], ack
            async with s.post(page.client('input'), headers=page.auth,
                              json={'handler': 'append',
                                    'arguments': deep}) as r:
                assert r.status == 400
                assert 'nest deeper than 2' in (await r.json())['message']
            await ws.send(type='input', page=1, id='ok', handler='append',
                          arguments=['t', 'fine'])
            await ws.until(lambda m: 'fine' in appendsOf(ws, 1))
            assert appendsOf(ws, 1) == ['fine']

    with liveServer(tmp_path) as server:
        asyncio.run(run(server))
