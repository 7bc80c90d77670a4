"""Issue 12 over plain HTTP against real servers: items 2 (cross-site
requests refused; POST-only steps), 3 (capabilities bound to what they
grant) and 4 (limits on everything a stranger can send)."""

import asyncio
import json
import logging
import os
import re
import socket
import time

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import (
    ADMIN, ALICE, BOB, Page, SITE_ZCML as DEMO_ZCML, session, uploadForm)


# -- 2. cross-site requests, POST only ---------------------------------------

def demoServer(tmp_path):
    return RunningServer(tmp_path, zcml=DEMO_ZCML, refresh_interval=5)


def test_notify_and_upload_refuse_a_browser_origin_not_a_script(tmp_path):
    """The demo's @@notify and upload as a script sends them (credentials,
    no Origin) work; with the Origin of another site they are refused and
    nothing is stored."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html').open()
            evil = {'Origin': 'http://127.0.0.1:1', 'Sec-Fetch-Site':
                    'same-site'}
            message = {'group': '/zope', 'text': 'forged'}
            async with s.post(server.url('@@notify'), json=message,
                              headers=dict(ADMIN, **evil)) as r:
                assert r.status == 403
                assert (await r.json())['error'] == 'cross-site'
            form = (b'--b\r\nContent-Disposition: form-data; name="file"; '
                    b'filename="forged.bin"\r\nContent-Type: application/'
                    b'octet-stream\r\n\r\nforged\r\n--b--\r\n')
            async with s.post(server.url('uploads/@@upload'), data=form,
                              headers=dict(ALICE, **evil, **{
                                  'Content-Type': 'multipart/form-data; '
                                                  'boundary=b'})) as r:
                assert r.status == 403
                assert (await r.json())['error'] == 'cross-site'
            async with s.get(server.url('uploads')) as r:
                assert 'forged.bin' not in await r.text()
            # A script: no Origin, credentials.
            message['text'] = 'from a script'
            async with s.post(server.url('@@notify'), json=message,
                              headers=ADMIN) as r:
                assert r.status == 200, await r.text()
            [append] = await page.waitFor('append')
            assert 'from a script' in append['html']
            assert 'forged' not in json.dumps(page.events)

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_register_input_and_close_accept_post_only(tmp_path):
    """GET would let any link or image change state: 405 (input as GET only
    with the unsafe setting allow-get-input)."""
    async def run(server, getInput):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            base = server.url('livepage.html/@@client/')
            async with s.get(base + 'register') as r:
                assert r.status == 405
                assert r.headers['Allow'] == 'POST'
            async with s.get(base + page.uuid + '/close') as r:
                assert r.status == 405
            async with s.get(base + page.uuid + '/input', params={
                    'handler-name': 'append',
                    'arguments': 'target,by get'}) as r:
                assert r.status == (200 if getInput else 405), \
                    await r.text()
            # Still open: a POST input works.
            async with s.post(base + page.uuid + '/input', json={
                    'handler': 'append',
                    'arguments': ['target', 'by post']}) as r:
                assert r.status == 200, await r.text()
            events = await page.waitFor('append', 2 if getInput else 1)
            assert [e['html'] for e in events] == (
                ['by get', 'by post'] if getInput else ['by post'])

    with RunningServer(tmp_path / 'default', refresh_interval=5) as server:
        asyncio.run(run(server, False))
    with RunningServer(tmp_path / 'unsafe', refresh_interval=5,
                       allow_get_input='on') as server:
        asyncio.run(run(server, True))


# -- 3. capabilities bound to what they grant --------------------------------

def test_a_page_id_works_only_under_its_own_page(tmp_path):
    """The id of a page of one group (and page class) cannot call the
    handlers of another page; its own page still can."""
    async def run(server):
        async with session() as s:
            room = await Page(server, s, 'room-a.html').open()
            other = await Page(server, s, 'livepage.html').open()
            for path in ('livepage.html', 'room-b.html', 'fanout.html'):
                async with s.post(
                        server.url('%s/@@client/%s/input'
                                   % (path, room.uuid)),
                        json={'handler': 'append',
                              'arguments': ['target', 'forged']}) as r:
                    assert r.status == 403, (path, await r.text())
                    assert (await r.json())['error'] == 'forbidden'
            async with s.post(
                    server.url('room-a.html/@@client/%s/input' % room.uuid),
                    json={'handler': 'append',
                          'arguments': ['target', 'mine']}) as r:
                assert r.status == 200, await r.text()
            async with s.post(
                    server.url('livepage.html/@@client/%s/input'
                               % other.uuid),
                    json={'handler': 'append',
                          'arguments': ['target', 'end']}) as r:
                assert r.status == 200, await r.text()
            [append] = await other.waitFor('append')
            assert append['html'] == 'end'   # nothing forged came first
            [append] = await room.waitFor('append')
            assert append['html'] == 'mine'

    with RunningServer(tmp_path, refresh_interval=2) as server:
        asyncio.run(run(server))


# -- 4. limits ---------------------------------------------------------------

def rawRequest(port, head, body=b''):
    """Send a raw request; (status, head and body text) of the answer."""
    with socket.create_connection(('127.0.0.1', port), 10) as sock:
        sock.settimeout(10)
        try:
            sock.sendall(head + body)
        except OSError:
            pass   # refused while we were still sending
        data = b''
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            if b'\r\n\r\n' in data:
                top, _, rest = data.partition(b'\r\n\r\n')
                length = re.search(rb'(?i)content-length: *(\d+)', top)
                if length and len(rest) >= int(length.group(1)):
                    break
    return int(data.split(b' ', 2)[1]), data.decode('latin-1')


@pytest.mark.parametrize('kind', ['LiveServerHTTP', 'WSGI-HTTP'])
def test_request_heads_over_the_limits_get_431(tmp_path, kind):
    with RunningServer(tmp_path, types=(kind,), max_header_size='8KB',
                       max_header_count=20) as server:
        get = b'GET /livepage.html HTTP/1.1\r\nHost: x\r\n'
        # At 10x the limit, in one header.
        status, text = rawRequest(
            server.port, get + b'X-Big: ' + b'a' * 81920 + b'\r\n\r\n')
        assert status == 431, text
        # Far more: refused before it is all read.
        status, text = rawRequest(
            server.port, get + b'X-Big: ' + b'a' * (4 << 20) + b'\r\n\r\n')
        assert status == 431, text
        if kind == 'LiveServerHTTP':
            assert '"headers-too-large"' in text
            # Too many small headers.
            status, text = rawRequest(server.port, get + b''.join(
                b'X-%d: a\r\n' % i for i in range(200)) + b'\r\n')
            assert status == 431, text
            assert 'max-header-count' in text
        # Under the limits: served.
        status, text = rawRequest(server.port, get + b''.join(
            b'X-%d: a\r\n' % i for i in range(10)) + b'\r\n')
        assert status == 200, text


def test_anonymous_pages_are_capped_per_address_and_overall(tmp_path):
    async def run(server):
        async with session() as s:
            async def render(address, auth=None):
                headers = {'X-Forwarded-For': address}
                headers.update(auth or {})
                async with s.get(server.url('livepage.html'),
                                 headers=headers) as r:
                    return r.status, r.headers.get('Retry-After'), \
                        await r.text()

            for _ in range(3):
                assert (await render('10.1.0.1'))[0] == 200
            status, retry, text = await render('10.1.0.1')
            assert (status, retry) == (503, '7'), text
            assert json.loads(text)['error'] == 'busy'
            # The register step is capped the same way.
            async with s.post(server.url('livepage.html/@@client/register'),
                              headers={'X-Forwarded-For': '10.1.0.1'}) as r:
                assert (r.status, r.headers['Retry-After']) == (503, '7')
            # Another address may, up to the overall cap.
            for _ in range(2):
                assert (await render('10.1.0.2'))[0] == 200
            status, retry, _text = await render('10.1.0.3')
            assert (status, retry) == (503, '7')
            # Logged-in users are not anonymous (their own cap applies).
            async with s.get(server.url('browser-chat.html'),
                             headers=dict(ALICE, **{
                                 'X-Forwarded-For': '10.1.0.1'})) as r:
                assert r.status == 200
            stats = await (await s.get(server.url('@@test-stats'))).json()
            assert stats['pages'] == 6

    # One prefix (10.1.0.0/24) may hold the whole cap here.
    with RunningServer(tmp_path, max_anonymous_pages=5,
                       max_anonymous_per_address=3, retry_after=7,
                       max_prefix_share=1) as server:
        asyncio.run(run(server))


def serverLogs(server):
    text = []
    for name in ('stdout.log', 'server.log'):
        with open(os.path.join(server.dir, name), errors='replace') as f:
            text.append(f.read())
    return '\n'.join(text)


def test_deep_or_large_input_is_refused_clearly_and_no_log_has_the_id(
        tmp_path):
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'slowpage.html').open()
            url = server.url('slowpage.html/@@client/%s/input' % page.uuid)
            deep = '[' * 30000 + ']' * 30000
            # JSON body, and the arguments of a form, nested 30,000 deep.
            async with s.post(url, data=json.dumps(
                    {'handler': 'append', 'arguments': ['target']})[:-2]
                    + ', %s]}' % deep,
                    headers={'Content-Type': 'application/json'}) as r:
                assert r.status == 400, await r.text()
                assert 'max-argument-depth' in (await r.json())['message']
            async with s.post(url, data={'handler-name': 'append',
                                         'arguments': deep}) as r:
                assert r.status == 400, await r.text()
                assert 'max-argument-depth' in (await r.json())['message']
            # A 10 MB form-encoded input, and a 10 MB JSON one: 413.
            async with s.post(url, data={'handler-name': 'append',
                                         'arguments': 'x' * (10 << 20)}) as r:
                assert r.status == 413, await r.text()
            async with s.post(url, json={'handler': 'append', 'arguments':
                                         ['target', 'x' * (10 << 20)]}) as r:
                assert r.status == 413, await r.text()
            # A handler that fails: the publisher logs the request's URL.
            async with s.post(url, json={'handler': 'slow',
                                         'arguments': ['soon', 'x']}) as r:
                assert r.status == 500
            # Nothing of it reached the page.
            async with s.post(url, json={'handler': 'append',
                                         'arguments': ['target', 'end']}) as r:
                assert r.status == 200, await r.text()
            [append] = await page.waitFor('append')
            assert append['html'] == 'end'
            return page.uuid

    with RunningServer(tmp_path, refresh_interval=2) as server:
        uuid = asyncio.run(run(server))
        deadline = time.monotonic() + 20
        while 'ValueError' not in serverLogs(server):
            assert time.monotonic() < deadline, serverLogs(server)
            time.sleep(0.05)
        logs = serverLogs(server)
    assert '@@client/%s...' % uuid[:4] in logs   # the failure was logged
    assert uuid not in logs
    assert 'RecursionError' not in logs


def test_redact_text():
    from zorg.live.page.redactlog import redactText
    uuid = 'Zk3jq0vX8Yb2L1mNn0pQrA'
    for text in ('/p/@@client/%s/input' % uuid,
                 '/p/%%40%%40client/%s/close' % uuid,
                 "{'HTTP_X_LIVE_PROGRESS': '%s bar'}" % uuid,
                 'X-Live-Progress: %s bar' % uuid):
        assert uuid not in redactText(text.replace(
            'HTTP_X_LIVE_PROGRESS', 'X-Live-Progress'))


def test_the_manager_counts_anonymous_pages_as_they_come_and_go():
    from zorg.live.page.client import LivePageClient
    from zorg.live.page.manager import LivePageManager
    manager = LivePageManager()
    for n, address in enumerate(['127.0.0.1', '127.0.0.1', '::1']):
        client = LivePageClient('a%d' % n, 'zope.anybody', 'g',
                                anonymous=True)
        client.address = address
        manager.register(client)
    manager.register(LivePageClient('u', 'alice', 'g'))
    assert manager.anonymousPages('127.0.0.1') == (3, 2)
    manager.unregister('a0')
    manager.unregister('u')
    assert manager.anonymousPages('127.0.0.1') == (2, 1)
    assert manager.anonymousPages('::1') == (2, 1)
    manager.unregister('a1')
    manager.unregister('a2')
    assert manager.anonymousPages('127.0.0.1') == (0, 0)
