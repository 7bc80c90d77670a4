"""The demo site (zorg.live.demo) on the real LiveServerHTTP: chat rooms with
permissions, the model-driven counter, @@notify, and `python -m
zorg.live.demo` itself."""

import asyncio
import base64
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import aiohttp

from zorg.live.tests.serverfixture import RunningServer, freePort

DEMO = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'demo')
SITE_ZCML = os.path.join(DEMO, 'site.zcml')
UUID = re.compile(r'data-uuid="([^"]+)"')


def basic(login, password):
    token = base64.b64encode(('%s:%s' % (login, password)).encode())
    return {'Authorization': 'Basic ' + token.decode()}


ALICE = basic('alice', 'alice')
BOB = basic('bob', 'bob')
ADMIN = basic('admin', 'admin')


def session():
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=60))


class Page:
    """One open page, read with long-poll like livepage.js does."""

    def __init__(self, server, session, path, auth=None):
        self.server, self.session, self.path = server, session, path
        self.auth = auth
        self.num = 0
        self.events = []

    async def open(self):
        async with self.session.get(self.server.url(self.path),
                                    headers=self.auth) as r:
            assert r.status == 200, await r.text()
            self.html = await r.text()
        self.uuid = UUID.search(self.html).group(1)
        return self

    def client(self, step):
        return self.server.url('%s/@@client/%s/%s'
                               % (self.path, self.uuid, step))

    async def poll(self):
        """One output request; returns its events (idle left out)."""
        async with self.session.get(self.client('output'), headers=self.auth,
                                    params={'outputNum': str(self.num)}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        self.num += 1
        events = [e for e in body['events'] if e['event'] != 'idle']
        self.events.extend(events)
        return events

    async def waitFor(self, kind, count=1, limit=20):
        """Poll until `count` events of type `kind` arrived; return them."""
        deadline = time.monotonic() + limit
        while True:
            found = [e for e in self.events if e['event'] == kind]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, \
                'no %s event for %s: %s' % (kind, self.path, self.events)
            await self.poll()

    async def send(self, handler, *arguments, auth=None):
        async with self.session.post(
                self.client('input'), headers=auth or self.auth,
                json={'handler': handler, 'arguments': list(arguments)}) as r:
            return r.status, await r.text()


def demoServer(tmp_path, **settings):
    settings.setdefault('refresh_interval', 0.5)
    return RunningServer(tmp_path, threads=2, zcml=SITE_ZCML, **settings)


def test_a_post_is_stored_and_reaches_every_page_of_the_room(tmp_path):
    async def run(server):
        async with session() as s:
            alice = await Page(server, s, 'lobby/chat.html', ALICE).open()
            bob = await Page(server, s, 'lobby/chat.html', BOB).open()
            anonymous = await Page(server, s, 'lobby/chat.html').open()
            elsewhere = await Page(server, s, 'zope/chat.html', BOB).open()
            # Who is online is rendered with the page.
            assert 'data-principal="demo.alice">Alice</li>' in bob.html
            assert 'data-principal="demo.bob">Bob</li>' in bob.html

            status, body = await alice.send('say', 'hi <b>all</b> & you')
            assert status == 200, body
            escaped = 'hi &lt;b&gt;all&lt;/b&gt; &amp; you'
            for page in (alice, bob, anonymous):
                [append] = await page.waitFor('append')
                assert append['target'] == 'messages'
                assert '<b class="nick">Alice</b>' in append['html']
                assert escaped in append['html']
                assert '<b>all' not in append['html']
            # Another room's pages get nothing of it.
            await elsewhere.poll()
            assert [e for e in elsewhere.events if e['event'] == 'append'] \
                == []
            # It is stored: a page rendered now shows it.
            later = await Page(server, s, 'lobby/chat.html').open()
            assert escaped in later.html
            assert escaped not in elsewhere.html

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_presence_join_and_leave_in_a_room(tmp_path):
    async def run(server):
        async with session() as s:
            alice = await Page(server, s, 'random/chat.html', ALICE).open()
            bob = await Page(server, s, 'random/chat.html', BOB).open()
            joins = await alice.waitFor('join', 2)
            assert [(j['principal'], j['title']) for j in joins] == [
                ('demo.alice', 'Alice'), ('demo.bob', 'Bob')]
            async with s.post(bob.client('close'), headers=BOB) as r:
                assert r.status == 200
            [leave] = await alice.waitFor('leave')
            assert leave['principal'] == 'demo.bob'

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_anonymous_post_is_forbidden_and_nothing_is_stored(tmp_path):
    async def run(server):
        async with session() as s:
            anonymous = await Page(server, s, 'lobby/chat.html').open()
            assert 'Log in to chat' in anonymous.html
            status, body = await anonymous.send('say', 'spam from nobody')
            assert status == 403
            assert json.loads(body)['error'] == 'forbidden'
            # Alice cannot post through the anonymous visitor's page either.
            status, body = await anonymous.send('say', 'spam from nobody',
                                                auth=ALICE)
            assert status == 403
            await anonymous.poll()
            assert [e for e in anonymous.events
                    if e['event'] == 'append'] == []
            later = await Page(server, s, 'lobby/chat.html', ALICE).open()
            assert 'spam from nobody' not in later.html

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def counterValue(html):
    return int(re.search(r'id="counter"><span class="value">(\d+)<',
                         html).group(1))


def test_the_counter_updates_every_page_once_per_click(tmp_path):
    async def run(server):
        async with session() as s:
            one = await Page(server, s, 'counter/counter.html', BOB).open()
            two = await Page(server, s, 'counter/counter.html', ALICE).open()
            start = counterValue(one.html)
            assert counterValue(two.html) == start

            status, body = await one.send('increment')
            assert status == 200, body
            status, body = await two.send('increment')
            assert status == 200, body
            for page in (one, two):
                updates = await page.waitFor('update', 2)
                # Drain: nothing else comes (no duplicates).
                await page.poll()
                updates = [e for e in page.events if e['event'] == 'update']
                assert [(u['target'], u['html']) for u in updates] == [
                    ('counter', '<span class="value">%d</span>' % (start + 1)),
                    ('counter', '<span class="value">%d</span>' % (start + 2)),
                ]
            # The same events, with the same ids, reached both pages.
            assert one.events == [e for e in two.events
                                  if e['event'] == 'update']
            later = await Page(server, s, 'counter/counter.html').open()
            assert counterValue(later.html) == start + 2

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_anonymous_may_watch_the_counter_but_not_count(tmp_path):
    async def run(server):
        async with session() as s:
            anonymous = await Page(server, s, 'counter/counter.html').open()
            alice = await Page(server, s, 'counter/counter.html',
                               ALICE).open()
            start = counterValue(anonymous.html)
            assert re.search(r'<button id="increment" type="button"\s+'
                             r'disabled="disabled"', anonymous.html)
            assert 'disabled' not in alice.html.split('id="increment"')[1] \
                .split('>')[0]
            status, body = await anonymous.send('increment')
            assert status == 403, body
            assert 'log in' in json.loads(body)['message']
            # Nothing changed, nothing was published.
            later = await Page(server, s, 'counter/counter.html').open()
            assert counterValue(later.html) == start
            status, body = await alice.send('increment')
            assert status == 200, body
            [update] = await anonymous.waitFor('update')
            assert update['html'] == '<span class="value">%d</span>' % (
                start + 1)

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_forbidden_and_login_pages_are_styled_like_the_demo(tmp_path):
    async def run(server):
        async with session() as s:
            async with s.get(server.url('@@live-status'), headers=BOB) as r:
                assert r.status == 403
                assert r.headers['Content-Type'].startswith('text/html')
                html = await r.text()
            assert '<title>Not allowed - zorg.live demo</title>' in html
            assert 'you are\n      <b>Bob</b>' in html
            assert 'You may not do this as Bob' in html
            async with s.get(server.url('@@live-status')) as r:
                assert r.status == 401
                assert r.headers['WWW-Authenticate'].lower().startswith(
                    'basic')
                html = await r.text()
            assert '<title>Log in - zorg.live demo</title>' in html

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_notify_pushes_a_system_message_into_a_room(tmp_path):
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html').open()
            message = {'group': '/zope', 'text': 'deploy <done>'}
            # Only the manager may push: anonymous is asked to log in,
            # a logged-in user without the permission is refused.
            async with s.post(server.url('@@notify'), json=message) as r:
                assert r.status == 401
                assert r.headers['WWW-Authenticate'].lower().startswith(
                    'basic')
            async with s.post(server.url('@@notify'), json=message,
                              headers=ALICE) as r:
                assert r.status == 403
            async with s.post(server.url('@@notify'), json=message,
                              headers=ADMIN) as r:
                assert r.status == 200, await r.text()
                # The demo's subscriber took it: stored in the room.
                assert await r.json() == {'ok': True, 'group': '/zope',
                                          'pages': 1, 'handled': True,
                                          'stored': True}
            [append] = await page.waitFor('append')
            assert 'class="msg system"' in append['html']
            assert 'deploy &lt;done&gt;' in append['html']
            # The generic view, not a room: no custom event (the room's
            # subscriber handled it), nothing else.
            assert [e['event'] for e in page.events] == ['append']
            async with s.post(server.url('@@notify'), json={'text': 'x'},
                              headers=ADMIN) as r:
                assert r.status == 400

            # The same from a shell.
            proc = await asyncio.create_subprocess_exec(
                sys.executable, '-m', 'zorg.live.demo', 'send',
                '--port', str(server.port), '--group', '/zope',
                'from the shell', stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out
            appends = await page.waitFor('append', 2)
            assert 'from the shell' in appends[1]['html']
            later = await Page(server, s, 'zope/chat.html').open()
            assert 'deploy &lt;done&gt;' in later.html
            assert 'from the shell' in later.html

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_live_status_is_for_managers(tmp_path):
    async def run(server):
        async with session() as s:
            await Page(server, s, 'lobby/chat.html', ALICE).open()
            async with s.get(server.url('@@live-status'), headers=BOB) as r:
                assert r.status == 403
            status = await Page(server, s, '@@live-status', ADMIN).open()
            # Names, not principal ids.
            assert '<td>/lobby</td><td>1</td><td>Alice</td>' \
                in status.html
            updates = await status.waitFor('update')
            assert updates[0]['target'] == 'stats'
            # The chart's samples come as custom events, once a second.
            samples = await status.waitFor('custom', 2)
            assert {e['name'] for e in samples} == {'live-stats'}
            assert samples[0]['data']['pages'] == 2   # the chat and this one
            assert samples[1]['data']['t'] > samples[0]['data']['t']

            # More pages: the samples (and the table) count them.
            before = len(status.events)
            for _ in range(3):
                await Page(server, s, 'counter/counter.html').open()
            while True:
                later = [e for e in status.events[before:]
                         if e['event'] == 'custom']
                if later and later[-1]['data']['pages'] == 5:
                    break
                assert len(later) < 20, later   # 20 s: it never counted
                await status.poll()
            table = [e for e in status.events[before:]
                     if e['event'] == 'update'][-1]['html']
            assert '<td>/counter</td><td>3</td><td>-</td>' in table

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def waitForPort(port, process, limit=60):
    deadline = time.monotonic() + limit
    while True:
        assert process.poll() is None, process.communicate()[0]
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, 'demo did not listen'
            time.sleep(0.1)


def test_python_m_zorg_live_demo_serves_and_stops(tmp_path):
    port = freePort()
    process = subprocess.Popen(
        [sys.executable, '-m', 'zorg.live.demo', '--port', str(port),
         '--dir', str(tmp_path / 'demo')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        waitForPort(port, process)

        async def fetch():
            async with session() as s:
                async with s.get('http://127.0.0.1:%d/lobby' % port) as r:
                    assert r.status == 200
                    assert 'data-uuid=' in await r.text()
                async with s.get('http://127.0.0.1:%d/' % port) as r:
                    assert r.status == 200
                    assert 'alice/alice' in await r.text()
        asyncio.run(fetch())
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = out.decode()
    assert process.returncode == 0, text
    assert 'http://127.0.0.1:%d/' % port in text
    assert 'alice/alice' in text
    conf = (tmp_path / 'demo' / 'zope.conf').read_text()
    assert '127.0.0.1:%d' % port in conf
    assert (tmp_path / 'demo' / 'var' / 'Data.fs').exists()


SCRIPT = """#!%(python)s
# Like the scripts zc.buildout writes: the eggs' paths, then the entry
# point (the interpreter alone would not find zorg.live under buildout).
import sys
sys.path[0:0] = [%(src)r]
import %(module)s
sys.exit(%(module)s.main())
"""


def test_banner_commands_work_when_started_from_a_script(tmp_path):
    """Under buildout the demo runs as bin/demo: the banner's commands are
    bin/demo send and bin/zorg-live send, and both push into the room."""
    src = os.path.dirname(os.path.dirname(os.path.dirname(DEMO)))
    bin = tmp_path / 'bin'
    bin.mkdir()
    for name, module in (('demo', 'zorg.live.demo.__main__'),
                         ('zorg-live', 'zorg.live.server.runner')):
        script = bin / name
        script.write_text(SCRIPT % {'python': sys.executable, 'src': src,
                                    'module': module})
        script.chmod(0o755)
    port = freePort()
    env = dict(os.environ, ZORG_LIVE_PASSWORD='admin')
    process = subprocess.Popen(
        [str(bin / 'demo'), '--port', str(port), '--dir',
         str(tmp_path / 'demo')], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=str(tmp_path), env=env)
    try:
        banner = []
        while not any('as for any site' in line for line in banner):
            line = process.stdout.readline().decode()
            assert line, ''.join(banner)
            banner.append(line)
        waitForPort(port, process)
        push = [line.split(': ', 2)[2].strip() for line in banner
                if 'push a message' in line or 'as for any site' in line]
        assert push[0].startswith('%s send ' % (bin / 'demo')), push
        assert push[1].startswith('ZORG_LIVE_PASSWORD=admin %s send '
                                  % (bin / 'zorg-live')), push
        for command in push:
            done = subprocess.run(
                shlex.split(command.split(' ', 1)[1] if command.startswith(
                    'ZORG_LIVE_PASSWORD') else command),
                capture_output=True, text=True, timeout=60, env=env,
                cwd=str(tmp_path))
            assert done.returncode == 0, (command, done.stderr)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0


def test_python_m_zorg_live_demo_says_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, '-m', 'zorg.live.demo', '--port', str(port),
             '--dir', str(tmp_path)], capture_output=True, text=True,
            timeout=60)
    assert result.returncode == 2
    assert 'port %d' % port in result.stderr
    assert 'already in use' in result.stderr
    assert 'PORT=' in result.stderr


def uploadForm(name, data):
    form = aiohttp.FormData(quote_fields=False)   # as browsers send it
    form.add_field('file', data, filename=name,
                   content_type='application/octet-stream')
    return form


def test_an_upload_shows_progress_and_is_listed_on_every_page(tmp_path):
    data = os.urandom(3 * 1024 * 1024)

    async def run(server):
        async with session() as s:
            alice = await Page(server, s, 'uploads/upload.html', ALICE).open()
            watcher = await Page(server, s, 'uploads').open()   # default view
            assert 'log in to upload' in watcher.html
            assert 'id="file" type="file" name="file" disabled' \
                in watcher.html

            async with s.post(
                    server.url('uploads/@@upload'),
                    data=uploadForm('report <1>.bin', data), headers=dict(
                        ALICE, **{'X-Live-Progress':
                                  '%s upload-progress' % alice.uuid})) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
            assert answer == {'name': 'report <1>.bin', 'size': len(data),
                              'sha256': hashlib.sha256(data).hexdigest()}

            # The uploader's page saw the body arrive: growing progress of
            # its bar, up to 1.0; the other page saw none of it.
            await alice.waitFor('prepend')
            progress = [e for e in alice.events if e['event'] == 'progress']
            values = [e['value'] for e in progress]
            assert values == sorted(values) and values[-1] == 1.0
            assert len(values) > 3
            assert {e['target'] for e in progress} == {'upload-progress'}
            # Every page of /uploads gets the new line, name escaped.
            for page in (alice, watcher):
                [prepend] = await page.waitFor('prepend')
                assert prepend['target'] == 'uploads'
                assert 'report &lt;1&gt;.bin' in prepend['html']
                assert '3.0 MB' in prepend['html']
                assert '<b class="nick">' not in prepend['html']
            assert [e for e in watcher.events if e['event'] == 'progress'] \
                == []
            # Stored: a page rendered now lists it.
            later = await Page(server, s, 'uploads/upload.html').open()
            assert 'report &lt;1&gt;.bin' in later.html

    with demoServer(tmp_path, refresh_interval=5) as server:
        asyncio.run(run(server))


def test_anonymous_upload_is_refused_and_nothing_is_stored(tmp_path):
    async def run(server):
        async with session() as s:
            async with s.post(server.url('uploads/@@upload'),
                              data=uploadForm('spam.bin', b'x' * 1000)) as r:
                assert r.status == 401   # log in (HTTP Basic challenge)
                assert r.headers['WWW-Authenticate'].lower().startswith(
                    'basic')
            later = await Page(server, s, 'uploads/upload.html').open()
            assert 'spam.bin' not in later.html
            assert 'class="upload"' not in later.html

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_an_upload_over_the_limit_is_413_and_nothing_is_stored(tmp_path):
    from zorg.live.demo.upload import MAX_UPLOAD, SLACK
    from zorg.live.server.settings import Settings
    from zorg.live.tests.test_server_faults import Raw
    with open(os.path.join(DEMO, 'instance.conf')) as f:
        limit = re.search(r'\n\s*max-body-size (\S+)', f.read()).group(1)
    assert Settings(max_body_size=limit).max_body_size > MAX_UPLOAD + SLACK

    async def headOnly(server):
        # The demo's instance.conf sets max-body-size: the server refuses
        # a larger upload from its head, before any of the body is sent.
        size = Settings(max_body_size=limit).max_body_size + 1
        raw = await Raw.open(server)
        try:
            await raw.send((
                'POST /uploads/@@upload HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                'Authorization: %s\r\nContent-Type: multipart/form-data; '
                'boundary=x\r\nContent-Length: %d\r\n\r\n'
                % (ALICE['Authorization'], size)).encode())
            status, _headers, body = await raw.response()
        finally:
            raw.close()
        assert status == 413, body
        assert json.loads(body)['error'] == 'too-large'

    async def whole(server):
        # Over the view's limit (but under the server's) the view refuses
        # it itself, after the publisher has read it, and stores nothing.
        size = MAX_UPLOAD + SLACK + 1
        async with session() as s:
            async with s.post(server.url('uploads/@@upload'),
                              data=uploadForm('big.bin', b'x' * size),
                              headers=ALICE) as r:
                assert r.status == 413, await r.text()
                assert (await r.json())['error'] == 'too-large'
            later = await Page(server, s, 'uploads/upload.html').open()
            assert 'big.bin' not in later.html

    with demoServer(tmp_path, max_body_size=limit) as server:
        asyncio.run(headOnly(server))
        asyncio.run(whole(server))
