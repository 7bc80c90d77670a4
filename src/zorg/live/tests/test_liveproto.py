"""LiveServerHTTP's own protocol (server/liveproto.py) against a hostile
world, on the real server: malformed HTTP, heads and bodies at ten times
their limits, pipelining, a reader that reads nothing, a client that
vanishes mid-answer, a WebSocket handshake from another origin and a bad
WebSocket frame. Each test asserts what the server does, never how fast.

And the rule that let the upper pins go: no module of zorg.live touches
an underscore name of uvicorn or websockets.
"""

import ast
import asyncio
import base64
import json
import os
import socket
import struct

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_server_faults import Raw, request, run
from zorg.live.tests.test_server_proof import (
    openPage, send, session, stats, waitUntil)

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH = request('GET', '@@live-health')


async def healthy(server):
    """The server still answers another client."""
    raw = await Raw.open(server)
    try:
        await raw.send(HEALTH)
        status, _headers, _body = await raw.response(timeout=20)
        return status
    finally:
        raw.close()


def wsHandshake(server, path, origin):
    key = base64.b64encode(os.urandom(16)).decode()
    return ('GET /%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
            'Upgrade: websocket\r\n'
            'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n'
            'Sec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n'
            % (path, server.port, key, origin)).encode('latin-1')


def test_malformed_http_is_400_and_closed(tmp_path):
    async def conversation(server):
        for garbage in (b'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
                        b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
                        b'GET /x HTTP/1.1\r\nContent-Length: 3\r\n'
                        b'Transfer-Encoding: chunked\r\n\r\nabc',
                        # a body that breaks off into garbage
                        b'POST /x HTTP/1.1\r\nHost: x\r\n'
                        b'Transfer-Encoding: chunked\r\n\r\n'
                        b'3\r\nabc\r\nzz\r\n'):
            raw = await Raw.open(server)
            await raw.send(garbage)
            status, headers, body = await raw.response()
            assert status == 400, garbage
            assert headers['content-type'] == 'application/json'
            assert json.loads(body)['error'] == 'bad-request'
            assert await raw.untilClosed(timeout=20) == b''
        assert await healthy(server) == 200

    with RunningServer(tmp_path) as server:
        run(conversation(server))


def test_answers_before_a_malformed_request_are_sent_first(tmp_path):
    """Pipelined: the good requests are answered in order, then the 400."""
    async def conversation(server):
        raw = await Raw.open(server)
        await raw.send(HEALTH + HEALTH + b'NOT HTTP AT ALL\r\n\r\n')
        assert (await raw.response())[0] == 200
        assert (await raw.response())[0] == 200
        assert (await raw.response())[0] == 400
        assert await raw.untilClosed(timeout=20) == b''

    with RunningServer(tmp_path) as server:
        run(conversation(server))


def test_a_head_ten_times_the_limit_is_431_and_closed(tmp_path):
    async def conversation(server):
        raw = await Raw.open(server)
        line = b'X-Filler: ' + b'a' * 1000 + b'\r\n'
        head = b'GET /@@live-health HTTP/1.1\r\nHost: x\r\n'
        try:
            await raw.send(head + line * 80)      # 10 x 8 KB
        except ConnectionError:
            pass    # closed while we sent: the answer is still readable
        status, _headers, body = await raw.response()
        assert status == 431
        assert json.loads(body)['error'] == 'headers-too-large'
        assert await raw.untilClosed(timeout=20) == b''
        assert await healthy(server) == 200

    with RunningServer(tmp_path, max_header_size='8KB') as server:
        run(conversation(server))


def test_a_body_ten_times_the_limit_is_413_and_closed(tmp_path):
    """With a length (refused before any of it is read) and chunked (read
    up to the limit, then refused); the connection then carries the next
    request, or closes."""
    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
        path = '@@livepage.html/@@client/%s/input' % uuid
        body = json.dumps({'handler': 'send',
                           'arguments': ['x' * 655360]}).encode()
        raw = await Raw.open(server)
        await raw.send(request('POST', path, body,
                               ('Content-Type: application/json',))
                       + HEALTH)
        status, _headers, answer = await raw.response()
        assert status == 413
        assert json.loads(answer)['error'] == 'too-large'
        assert (await raw.response())[0] == 200    # the next one
        raw.close()

        raw = await Raw.open(server)
        chunks = b''.join(b'%x\r\n%s\r\n' % (65536, b'y' * 65536)
                          for _ in range(10))
        try:
            await raw.send(
                ('POST /%s HTTP/1.1\r\nHost: x\r\nContent-Type: '
                 'application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
                 % path).encode() + chunks + b'0\r\n\r\n')
        except ConnectionError:
            pass
        status, _headers, answer = await raw.response()
        assert status == 413
        raw.close()
        async with session() as s:
            assert (await stats(s, server))['published'] == 0

    with RunningServer(tmp_path, max_body_size='64KB') as server:
        run(conversation(server))


def test_pipelined_requests_wait_their_turn_and_are_not_read_without_bound(
        tmp_path):
    """Behind a held long-poll a client pipelines far more requests than
    the server parses ahead (PIPELINE): the server stops reading (and
    counts it) rather than buffer them; once the long-poll is answered,
    every answer comes, in order."""
    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
            raw = await Raw.open(server)
            await raw.send(request(
                'GET', '@@livepage.html/@@client/%s/output?outputNum=0'
                % uuid))
            await waitUntil(s, server, lambda st: st['waiting'] == 1)
            count = 200
            padding = ('X-Padding: ' + 'p' * 30000,)
            raw.writer.write(request('GET', '@@live-health', b'', padding)
                             * count)
            await waitUntilCounted(server, 'http-pipeline-full')
            # Another client is served meanwhile.
            assert await healthy(server) == 200
            drain = asyncio.ensure_future(raw.writer.drain())
            await send(s, server, uuid, 'released')
            status, _headers, body = await raw.response()
            assert status == 200 and b'released' in body
            for _ in range(count):
                status, _headers, body = await raw.response()
                assert status == 200 and json.loads(body)['status']
            await drain
            raw.close()

    with RunningServer(tmp_path, refresh_interval=300) as server:
        run(conversation(server))


async def waitUntilCounted(server, reason, limit=30):
    """Until @@live-health counts `reason` (bounded)."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        raw = await Raw.open(server)
        await raw.send(HEALTH)
        _status, _headers, body = await raw.response()
        raw.close()
        if json.loads(body).get('refused', {}).get(reason):
            return
        assert asyncio.get_running_loop().time() < deadline, (
            'never counted %s: %s' % (reason, body))
        await asyncio.sleep(0.1)


def test_a_client_that_vanishes_mid_answer_frees_its_wait(tmp_path):
    """A long-poll and an SSE stream whose clients reset their connection
    in the middle: the server stops waiting for them and goes on."""
    async def conversation(server):
        async with session() as s:
            polled = await openPage(s, server)
            streamed = await openPage(s, server)
            before = (await stats(s, server))['waiting']
            poll = await Raw.open(server)
            await poll.send(request(
                'GET', '@@livepage.html/@@client/%s/output?outputNum=0'
                % polled))
            stream = await Raw.open(server)
            await stream.send(request(
                'GET', '@@livepage.html/@@client/%s/events' % streamed))
            assert (await stream.head())[0] == 200
            for raw in (poll, stream):
                # RST, not FIN: gone without a word.
                raw.writer.transport.get_extra_info('socket').setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack('ii', 1, 0))
                raw.writer.transport.abort()
            for _ in range(500):
                if (await stats(s, server))['waiting'] == before:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError('the server still waits for them')
        assert await healthy(server) == 200

    with RunningServer(tmp_path, refresh_interval=300) as server:
        run(conversation(server))


def test_a_websocket_handshake_from_another_origin_is_403(tmp_path):
    async def conversation(server):
        raw = await Raw.open(server)
        await raw.send(wsHandshake(server, '@@live', 'http://evil.test'))
        status, _headers, body = await raw.response()
        assert status == 403
        assert json.loads(body)['error'] == 'cross-site'
        assert await raw.untilClosed(timeout=20) == b''

    with RunningServer(tmp_path) as server:
        run(conversation(server))


def test_a_bad_websocket_frame_is_closed_with_1002(tmp_path):
    """An unmasked frame from a client breaks RFC 6455: the server closes
    with 1002 (protocol error)."""
    async def conversation(server):
        raw = await Raw.open(server)
        await raw.send(wsHandshake(server, '@@live', server.url().rstrip('/')))
        status, headers = await raw.head()
        assert status == 101 and headers['upgrade'].lower() == 'websocket'
        text = b'{"type":"ping"}'
        await raw.send(bytes([0x81, len(text)]) + text)    # no mask bit
        frame = await asyncio.wait_for(raw.reader.readexactly(4), 20)
        assert frame[0] == 0x88                           # close, fin
        assert struct.unpack('!H', frame[2:4])[0] == 1002

    with RunningServer(tmp_path) as server:
        run(conversation(server))


def test_another_upgrade_is_answered_as_plain_http_and_closed(tmp_path):
    async def conversation(server):
        raw = await Raw.open(server)
        await raw.send(b'GET /@@live-health HTTP/1.1\r\nHost: x\r\n'
                       b'Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n'
                       + HEALTH)
        status, headers, _body = await raw.response()
        assert status == 200 and headers['connection'] == 'close'
        assert await raw.untilClosed(timeout=20) == b''

    with RunningServer(tmp_path) as server:
        run(conversation(server))


def test_http10_gets_its_answer_and_the_close(tmp_path):
    async def conversation(server):
        raw = await Raw.open(server)
        await raw.send(b'GET /@@live-health HTTP/1.0\r\n\r\n')
        status, headers, _body = await raw.response()
        assert status == 200 and headers['connection'] == 'close'
        assert await raw.untilClosed(timeout=20) == b''

    with RunningServer(tmp_path) as server:
        run(conversation(server))


# -- no underscore names of other libraries -----------------------------------

GUARDED = ('uvicorn', 'websockets')


def underscoreUses(source):
    """Underscore names (not dunders) of uvicorn or websockets that
    `source` uses: imported, or read or set on anything but self/cls."""
    tree = ast.parse(source)
    imported = any(
        (isinstance(node, ast.Import) and any(
            alias.name.split('.')[0] in GUARDED for alias in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module
            and node.module.split('.')[0] in GUARDED)
        for node in ast.walk(tree))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split('.')[0] in GUARDED):
            for alias in node.names:
                if alias.name.startswith('_') or any(
                        part.startswith('_')
                        for part in node.module.split('.')):
                    found.append('%s.%s' % (node.module, alias.name))
        if not imported:
            continue
        if (isinstance(node, ast.Attribute) and node.attr.startswith('_')
                and not node.attr.startswith('__')
                and not (isinstance(node.value, ast.Name)
                         and node.value.id in ('self', 'cls'))):
            found.append('.%s (line %d)' % (node.attr, node.lineno))
    return found


def test_underscoreUses_finds_what_the_old_server_used():
    assert underscoreUses(
        'import uvicorn\nflow._is_writable_event = 1\n'
        'event = cycle.message_event\n') == [
            '._is_writable_event (line 2)']
    assert underscoreUses('from websockets.protocol import _x\n') == [
        'websockets.protocol._x']
    assert underscoreUses('import os\nos._exit\n') == []


def test_no_module_touches_underscore_names_of_uvicorn_or_websockets():
    found = {}
    for folder, _dirs, files in os.walk(SRC):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path) as f:
                    uses = underscoreUses(f.read())
                if uses:
                    found[os.path.relpath(path, SRC)] = uses
    assert found == {}
    # Nor do they reach into uvicorn's protocols or cycles by name.
    for folder, _dirs, files in os.walk(SRC):
        for name in files:
            if name.endswith('.py') and name != 'test_liveproto.py':
                with open(os.path.join(folder, name)) as f:
                    text = f.read()
                for word in ('uvicorn.protocols', 'message_event',
                             '_waiters', 'forgetHandshake'):
                    assert word not in text, (name, word)


# -- the head's bytes (core/wire.py) ----------------------------------------

def test_httpHead_frames_a_response_head():
    from zorg.live.core.wire import httpHead
    assert httpHead(200, [(b'content-type', b'text/plain')],
                    [(b'connection', b'close')], b'Wed, 02 Dec 2026') == (
        b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n'
        b'connection: close\r\ndate: Wed, 02 Dec 2026\r\n\r\n')
    # The application's own Date stands; an unknown status has no phrase.
    assert httpHead(599, [(b'date', b'x')], [], None) == (
        b'HTTP/1.1 599 \r\ndate: x\r\n\r\n')


def test_httpHead_refuses_a_header_that_would_split_the_response():
    import pytest
    from zorg.live.core.wire import httpHead
    with pytest.raises(ValueError):
        httpHead(200, [(b'location', b'/x\r\nset-cookie: a=b')], [], None)


def test_expect_100_continue_gets_its_interim_answer_then_the_final_one(
        tmp_path):
    """A client that waits for ``100 Continue`` before its body (curl
    does, for bodies over 1 KB) is asked for it; one whose request is
    refused by its length is not, and gets the 413."""
    async def conversation(server):
        async with session() as s:
            uuid = await openPage(s, server)
        path = '@@livepage.html/@@client/%s/input' % uuid
        body = json.dumps({'handler': 'append',
                           'arguments': ['target', 'after continue']}
                          ).encode()
        raw = await Raw.open(server)
        await raw.send(request('POST', path, b'', (
            'Content-Type: application/json',
            'Content-Length: %d' % len(body), 'Expect: 100-continue')))
        status, _headers = await raw.head()
        assert status == 100
        await raw.send(body)
        status, _headers, _answer = await raw.response()
        assert status == 200
        raw.close()

        raw = await Raw.open(server)
        await raw.send(request('POST', path, b'', (
            'Content-Type: application/json',
            'Content-Length: %d' % (10 << 20), 'Expect: 100-continue')))
        status, headers, answer = await raw.response()
        assert status == 413 and headers['connection'] == 'close'
        assert await raw.untilClosed(timeout=20) == b''

    with RunningServer(tmp_path, max_body_size='1MB') as server:
        run(conversation(server))
