"""Faults and limits of LiveServerHTTP, on the real server (issue:
LiveServerHTTP): too many connections, bodies too large, clients that send
no headers, read too slowly or vanish, SIGTERM, a restart and malformed
live requests. Each test asserts what the server does, never how fast.

aiohttp talks to the server where it can; `Raw` is one plain HTTP/1.1
connection for what aiohttp hides (partial requests, pipelining, a stream
read chunk by chunk, long SSE lines).
"""

import asyncio
import json
import socket
import time

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_server_proof import (
    openPage, output, send, session, stats, waitUntil)

LIMIT = 60          # seconds any one test's conversation may take
PAGE = '@@livepage.html/@@client/%s/'
RECONNECT = {'event': 'reconnect'}


def run(coroutine):
    """Run a test's conversation, bounded in time."""
    return asyncio.run(asyncio.wait_for(coroutine, LIMIT))


def texts(body):
    """The appended texts of a long-poll answer."""
    return [e.get('html') for e in body['events']]


def request(method, path, body=b'', headers=()):
    head = ['%s /%s HTTP/1.1' % (method, path.lstrip('/')),
            'Host: 127.0.0.1']
    if body:
        head.append('Content-Length: %d' % len(body))
    head.extend(headers)
    return ('\r\n'.join(head) + '\r\n\r\n').encode('latin-1') + body


def jsonInput(handler, *arguments):
    body = json.dumps({'handler': handler, 'arguments': list(arguments)})
    return body.encode(), ('Content-Type: application/json',)


class Raw:
    """One HTTP/1.1 connection on asyncio streams; every read is bounded."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            '127.0.0.1', server.port, limit=1 << 22), 10)
        return cls(reader, writer)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def _line(self, timeout):
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise EOFError('the server closed the connection')
        return line

    async def head(self, timeout=30):
        """(status, {lower-case name: value}) of the next response."""
        status = int((await self._line(timeout)).split()[1])
        headers = {}
        while True:
            line = (await self._line(timeout)).strip()
            if not line:
                return status, headers
            name, value = line.decode('latin-1').split(':', 1)
            headers[name.strip().lower()] = value.strip()

    async def chunk(self, timeout=30):
        """The next chunk of a chunked body; None at its end."""
        size = int((await self._line(timeout)).split(b';')[0], 16)
        data = await asyncio.wait_for(
            self.reader.readexactly(size + 2), timeout)
        return data[:-2] if size else None

    async def response(self, timeout=30):
        """(status, headers, body) of the next whole response."""
        status, headers = await self.head(timeout)
        if headers.get('transfer-encoding') == 'chunked':
            parts = []
            while True:
                part = await self.chunk(timeout)
                if part is None:
                    return status, headers, b''.join(parts)
                parts.append(part)
        length = int(headers.get('content-length', 0))
        body = await asyncio.wait_for(
            self.reader.readexactly(length), timeout)
        return status, headers, body

    async def untilClosed(self, timeout):
        """What the server sends until it closes the connection (b'' for
        nothing); fails when it is still open after `timeout` seconds."""
        received = b''
        deadline = time.monotonic() + timeout
        try:
            while True:
                part = await asyncio.wait_for(
                    self.reader.read(65536), deadline - time.monotonic())
                if not part:
                    return received
                received += part
        except asyncio.TimeoutError:
            raise AssertionError('the server did not close the connection '
                                 'within %s seconds' % timeout)
        except ConnectionError:
            return received

    def close(self):
        self.writer.close()


class SSE:
    """An event stream read from a Raw connection, frame by frame."""

    def __init__(self, raw):
        self.raw = raw
        self.buffer = b''
        self.ended = False

    async def frame(self, timeout=30):
        """The next frame (its lines), or None when the stream ended."""
        while b'\n\n' not in self.buffer:
            if self.ended:
                return None
            part = await self.raw.chunk(timeout)
            if part is None:
                self.ended = True
            else:
                self.buffer += part
        frame, self.buffer = self.buffer.split(b'\n\n', 1)
        return frame.decode('utf-8').split('\n')


async def openStream(server, uuid):
    """An SSE stream of page `uuid` that has started (': connected')."""
    raw = await Raw.open(server)
    await raw.send(request('GET', PAGE % uuid + 'events'))
    status, headers = await raw.head()
    assert status == 200
    assert headers['content-type'].startswith('text/event-stream')
    stream = SSE(raw)
    assert ': connected' in await stream.frame()
    return stream


def data(frame):
    """The JSON of a frame's data line (None for comments)."""
    for line in frame:
        if line.startswith('data: '):
            return json.loads(line[len('data: '):])
    return None


def serverHoldsConnection(server_port, client_port):
    """Whether the server still has its end of the connection from
    `client_port` open (Linux: /proc/net/tcp). ESTABLISHED or CLOSE_WAIT
    mean the server has not closed its socket; a socket that is gone, or
    closing in the kernel only (FIN_WAIT...), was closed by the server."""
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if (int(local.rsplit(':', 1)[1], 16) == server_port
                    and int(remote.rsplit(':', 1)[1], 16) == client_port):
                return state in ('01', '08')
    return False


# -- 1. connection limit ---------------------------------------------------

async def retryWhileBusy(attempt, limit=10):
    """attempt() until it is not refused with 503 (a connection the client
    closed may still count for a moment); bounded."""
    deadline = time.monotonic() + limit
    while True:
        result = await attempt()
        if result is not None:
            return result
        assert time.monotonic() < deadline, 'the server stayed busy'
        await asyncio.sleep(0.05)


def test_connections_over_max_connections_get_503_busy_and_lose_nothing(
        tmp_path):
    async def openHolder(server, uuid):
        raw = await Raw.open(server)
        await raw.send(request('GET', PAGE % uuid + 'events'))
        status, _headers = await raw.head()
        if status == 503:
            raw.close()
            return None
        assert status == 200
        stream = SSE(raw)
        assert ': connected' in await stream.frame()
        return stream

    async def sendWhenFree(s, server, uuid, text):
        status, _text = await send(s, server, uuid, text)
        return None if status == 503 else status

    async def conversation(server):
        async with session() as s:
            polled, streamed, sender = [await openPage(s, server)
                                        for _ in range(3)]
            poll = asyncio.ensure_future(output(s, server, polled, 0))
            stream = await openStream(server, streamed)
            before = await waitUntil(s, server, lambda st: st['waiting'] == 2)
            # The third and last connection: the sender's own stream.
            holder = await retryWhileBusy(
                lambda: openHolder(server, sender))
            for _ in range(3):
                async with s.get(server.url('@@test-stats')) as r:
                    assert r.status == 503
                    assert r.headers['Retry-After'] == '7'
                    assert r.headers['Content-Type'] == 'application/json'
                    body = await r.json()
                assert body['error'] == 'busy'
                assert body['message']
            status, _text = await send(s, server, sender, 'refused')
            assert status == 503
            assert not poll.done()
            # A slot frees up: the next connection is served again.
            holder.raw.close()
            status = await retryWhileBusy(
                lambda: sendWhenFree(s, server, sender, 'after 503'))
            assert status == 200
            # The connected pages got the event, and only that one.
            status, body = await poll
            assert status == 200
            assert texts(body) == ['after 503']
            assert data(await stream.frame())['html'] == 'after 503'
            after = await stats(s, server)
            assert after['published'] == before['published'] + 1
            assert after['pages'] == before['pages'] == 3
            stream.raw.close()

    with RunningServer(tmp_path, max_connections=3, retry_after=7,
                       refresh_interval=60) as server:
        run(conversation(server))


# -- 2. request body over max-body-size ------------------------------------

async def postInput(server, uuid, text, framing):
    """send() with the body framed by Content-Length or chunked, written
    at once on a kept-alive connection (the server reads a body it refused
    to its end, so no reset can overtake the answer)."""
    body, headers = jsonInput('append', 'target', text)
    path = PAGE % uuid + 'input'
    if framing == 'content-length':
        data = request('POST', path, body, headers)
    else:
        chunks = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 500]),
                                               body[i:i + 500])
                          for i in range(0, len(body), 500))
        data = request('POST', path, headers=headers + (
            'Transfer-Encoding: chunked',)) + chunks + b'0\r\n\r\n'
    raw = await Raw.open(server)
    try:
        await raw.send(data)
        return await raw.response()
    finally:
        raw.close()


@pytest.mark.parametrize('framing', ['content-length', 'chunked'])
def test_body_over_max_body_size_is_413_and_changes_nothing(tmp_path,
                                                            framing):
    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
            assert (await send(s, server, uuid, 'before'))[0] == 200
            status, body = await output(s, server, uuid, 0)
            assert texts(body) == ['before']
            before = await stats(s, server)
            status_, headers, answer = await postInput(
                server, uuid, 'x' * 2000, framing)
            assert status_ == 413
            assert headers['content-type'] == 'application/json'
            answer = json.loads(answer)
            assert answer['error'] == 'too-large'
            assert answer['message']
            # Nothing was published, and the page goes on by the same
            # outputNum rules: 0 is still the pending answer, 1 is next;
            # a body under the limit, framed the same way, is taken.
            after = await stats(s, server)
            assert after['published'] == before['published']
            assert after['pages'] == before['pages']
            assert await output(s, server, uuid, 0) == (status, body)
            assert (await postInput(server, uuid, 'after',
                                    framing))[0] == 200
            status, body = await output(s, server, uuid, 1)
            assert status == 200
            assert texts(body) == ['after']

    with RunningServer(tmp_path, max_body_size='1KB',
                       refresh_interval=30) as server:
        run(conversation(server))


# -- 3. header timeout ------------------------------------------------------

@pytest.mark.parametrize('when', ['first-request', 'after-a-request'])
def test_connection_without_request_headers_is_closed_after_header_timeout(
        tmp_path, when):
    async def conversation(server):
        stuck = await Raw.open(server)
        if when == 'after-a-request':
            # A kept-alive connection gets the same deadline for its next
            # request's headers.
            await stuck.send(request('GET', '@@test-stats'))
            status, headers, _body = await stuck.response()
            assert status == 200
            assert headers.get('connection') != 'close'
        await stuck.send(b'GET /@@test-stats HT')
        # Meanwhile another page works.
        async with session() as s:
            uuid = await openPage(s, server)
            assert (await send(s, server, uuid, 'meanwhile'))[0] == 200
            status, body = await output(s, server, uuid, 0)
            assert texts(body) == ['meanwhile']
        # (Well before the keep-alive timeout, 5 s at least.)
        assert await stuck.untilClosed(timeout=4) == b''
        stuck.close()

    with RunningServer(tmp_path, header_timeout=0.5) as server:
        run(conversation(server))


# -- 4. slow reader ---------------------------------------------------------

def test_sse_reader_slower_than_send_timeout_is_dropped_alone(tmp_path):
    count, size = 300, 64000   # ~19 MB: far more than the socket buffers

    async def conversation(server):
        loop = asyncio.get_running_loop()
        async with session() as s:
            normal, slow = [await openPage(s, server) for _ in range(2)]
            stream = await openStream(server, normal)
            # The slow reader: a small receive buffer; it reads up to the
            # start of its stream, then never again.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(
                    sock, ('127.0.0.1', server.port)), 10)
                await loop.sock_sendall(
                    sock, request('GET', PAGE % slow + 'events'))
                start = b''
                while b': connected' not in start:
                    part = await asyncio.wait_for(
                        loop.sock_recv(sock, 4096), 10)
                    assert part, 'the slow stream did not start'
                    start += part
                slowPort = sock.getsockname()[1]
                await waitUntil(s, server, lambda st: st['waiting'] == 2)

                received = []

                async def read():
                    while len(received) < count:
                        frame = await stream.frame()
                        assert frame is not None, 'the stream ended'
                        event = data(frame)
                        if event is not None:
                            received.append(event['html'])
                reading = asyncio.ensure_future(read())
                for i in range(count):
                    status, _text = await send(s, server, normal,
                                               '%04d ' % i + 'x' * size)
                    assert status == 200
                await reading
                # The normal reader got every event, in order.
                assert [text[:4] for text in received] == [
                    '%04d' % i for i in range(count)]
                assert {len(text) for text in received} == {size + 5}
                # The slow one was dropped, and its connection closed by
                # the server (not kept until it reads what is buffered).
                await waitUntil(s, server, lambda st: st['waiting'] == 1)
                deadline = time.monotonic() + 10
                while serverHoldsConnection(server.port, slowPort):
                    assert time.monotonic() < deadline, (
                        'the server still holds the slow connection')
                    await asyncio.sleep(0.1)
            finally:
                sock.close()
            # The server is healthy: the normal page goes on.
            assert (await stats(s, server))['pages'] == 2
            assert (await send(s, server, normal, 'still here'))[0] == 200
            assert data(await stream.frame())['html'] == 'still here'
            stream.raw.close()

    with RunningServer(tmp_path, send_timeout=1) as server:
        run(conversation(server))
        log = server.log()
    assert 'Traceback' not in log


# -- 5. vanished client -----------------------------------------------------

def test_vanished_long_poll_is_noticed_and_its_answer_not_recorded(tmp_path):
    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
            before = await stats(s, server)
            raw = await Raw.open(server)
            await raw.send(request('GET', PAGE % uuid + 'output?outputNum=0'))
            await waitUntil(s, server, lambda st: st['waiting'] == 1)
            raw.close()   # the client vanishes while its request waits
            await waitUntil(s, server, lambda st: st['waiting'] == 0)
            assert (await send(s, server, uuid, 'after vanishing'))[0] == 200
            # Request 0 recorded nothing: asked again, it is fresh and
            # gets the event (a recorded idle answer would come back).
            status, body = await output(s, server, uuid, 0)
            assert status == 200
            assert body['outputNum'] == 0
            assert texts(body) == ['after vanishing']
            status, again = await output(s, server, uuid, 0)
            assert again == body
            after = await stats(s, server)
            assert after['pages'] == before['pages']

    # The wait would end by itself only after refresh-interval.
    with RunningServer(tmp_path, refresh_interval=300) as server:
        run(conversation(server))


# -- 6. SIGTERM -------------------------------------------------------------

def test_sigterm_tells_waiting_pages_to_reconnect_and_finishes_input(
        tmp_path):
    async def conversation(server):
        loop = asyncio.get_running_loop()
        async with session() as s:
            polled, streamed = [await openPage(s, server) for _ in range(2)]
            slow = await openPage(s, server, 'slowpage.html')
            # A long-poll, with request 1 pipelined behind it: answered
            # after request 0, it tells whether 0 was recorded.
            poll = await Raw.open(server)
            await poll.send(
                request('GET', PAGE % polled + 'output?outputNum=0')
                + request('GET', PAGE % polled + 'output?outputNum=1'))
            stream = await openStream(server, streamed)
            before = await waitUntil(s, server,
                                     lambda st: st['waiting'] == 2)
            # An input that takes 2 s, with a stats request pipelined
            # behind it: answered after the input, it tells what was
            # published.
            body, headers = jsonInput('slow', 2, 'finished while stopping')
            inflight = await Raw.open(server)
            await inflight.send(
                request('POST', '@@slowpage.html/@@client/%s/input' % slow,
                        body, headers)
                + request('GET', '@@test-stats'))
            # Each stats request opens the database once, the input once:
            # wait until the input is in its worker thread.
            for asked in range(1, 200):
                current = await stats(s, server)
                if current['dbOpens'] - before['dbOpens'] - asked == 1:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError('the input did not start')
            assert (await stats(s, server))['published'] == \
                before['published']

            stopping = loop.run_in_executor(None, server.stop)

            status, _headers, answer = await poll.response()
            assert status == 200
            assert json.loads(answer) == {'outputNum': 0,
                                          'events': [RECONNECT]}
            status, _headers, answer = await poll.response()
            assert status == 400   # 0 was not recorded: 1 is no next
            assert json.loads(answer)['error'] == 'bad-request'
            assert await poll.untilClosed(timeout=30) == b''

            frame = await stream.frame()
            assert data(frame) == RECONNECT
            assert await stream.frame() is None   # the stream ended
            assert await stream.raw.untilClosed(timeout=30) == b''

            status, _headers, answer = await inflight.response()
            assert status == 200
            assert json.loads(answer) == {'events': []}
            status, _headers, answer = await inflight.response()
            assert status == 200
            assert json.loads(answer)['published'] == \
                before['published'] + 1
            assert await inflight.untilClosed(timeout=30) == b''

            assert await asyncio.wait_for(stopping, 40) == 0

    with RunningServer(tmp_path, refresh_interval=60,
                       graceful_timeout=20) as server:
        run(conversation(server))


# -- 7. restart -------------------------------------------------------------

def test_restart_forgets_pages_and_their_history(tmp_path):
    async def before(server):
        async with session() as s:
            uuid = await openPage(s, server)
            assert (await send(s, server, uuid, 'before restart'))[0] == 200
            status, body = await output(s, server, uuid, 0)
            assert texts(body) == ['before restart']
            return uuid, body['events'][0]['id']

    async def after(server, uuid, last):
        async with session() as s:
            status, body = await output(s, server, uuid, 1)
            assert status == 404
            assert body['error'] == 'unknown-page'
            async with s.get(server.url(PAGE % uuid + 'events')) as r:
                assert r.status == 404
                assert (await r.json())['error'] == 'unknown-page'
            async with s.post(server.url('@@livepage.html/@@client/register'),
                              params={'lastEventId': last}) as r:
                assert r.status == 200
                registered = await r.json()
            assert registered['recovered'] is False
            assert registered['uuid'] != uuid
            # The new page id works.
            assert (await send(s, server, registered['uuid'],
                               'after restart'))[0] == 200
            status, body = await output(s, server, registered['uuid'], 0)
            assert texts(body) == ['after restart']

    server = RunningServer(tmp_path, refresh_interval=30)
    with server:
        uuid, last = run(before(server))
        assert server.stop() == 0
        server.output.close()
        server.start()          # the same directory and port
        run(after(server, uuid, last))


# -- 8. malformed live requests ---------------------------------------------

def test_malformed_live_requests_are_refused_and_change_nothing(tmp_path):
    unknown = 'u' * 22

    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
            other = await openPage(s, server)
            assert (await send(s, server, uuid, 'before'))[0] == 200
            pending = await output(s, server, uuid, 0)
            assert texts(pending[1]) == ['before']
            stream = await openStream(server, other)
            assert data(await stream.frame())['html'] == 'before'
            before = await waitUntil(s, server,
                                     lambda st: st['waiting'] == 1)

            async def refused(method, path, status, error, headers=None):
                async with s.request(method, server.url(path),
                                     headers=headers) as r:
                    assert (r.status, r.headers['Content-Type']) == (
                        status, 'application/json'), path
                    body = await r.json()
                assert body['error'] == error, path
                assert body['message']
                return r

            live = PAGE % uuid
            for num in ('abc', '-1', '1.5', '', '5', '0x1'):
                await refused('GET', live + 'output?outputNum=' + num,
                              400, 'bad-request')
            await refused('GET', live + 'output?outputNum=1&lastEventId=zzz',
                          400, 'bad-request')
            await refused('GET', live + 'events?lastEventId=zzz',
                          400, 'bad-request')
            await refused('GET', live + 'events', 400, 'bad-request',
                          {'Last-Event-ID': 'zzz'})
            for step in ('output?outputNum=1', 'events'):
                r = await refused('POST', live + step, 405, 'bad-request')
                assert 'GET' in r.headers['Allow']
            for step in ('output?outputNum=0', 'events'):
                await refused('GET', PAGE % unknown + step,
                              404, 'unknown-page')
            await refused('POST', PAGE % unknown + 'close', 404,
                          'unknown-page')
            # Closing changes state: never by GET (issue 12).
            r = await refused('GET', live + 'close', 405,
                              'method-not-allowed')
            assert r.headers['Allow'] == 'POST'

            # Nothing changed: same pages, nothing published, the open
            # stream is still the one waiting, request 0 is still pending
            # and 1 comes next.
            after = await stats(s, server)
            for key in ('pages', 'waiting', 'published'):
                assert after[key] == before[key], key
            assert await output(s, server, uuid, 0) == pending
            assert (await send(s, server, uuid, 'after'))[0] == 200
            status, body = await output(s, server, uuid, 1)
            assert status == 200
            assert texts(body) == ['after']
            assert data(await stream.frame())['html'] == 'after'
            stream.raw.close()

    with RunningServer(tmp_path, refresh_interval=30) as server:
        run(conversation(server))
