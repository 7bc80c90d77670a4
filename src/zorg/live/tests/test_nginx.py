"""Issue 12, item 7: README.txt's nginx example, as written there, in
front of a real LiveServerHTTP, on a port that is not 80: a live page in
Chromium opens through it (SSE), sends input and gets it back.

Issue 20, item 5: README's production example, nginx in front of three
processes (one ZEO database, one redis-server), round robin: a page in
Chromium opens its WebSocket through it; SSE and long-poll pages follow a
chat while one process is SIGKILLed in the middle of it, and nothing is
lost, stored twice or shown unstored.

Why ``Host $http_host``: the cross-site check compares a request's Origin
with its Host. nginx's ``$host`` drops the port, and then every input of
a page served on another port would be refused; the same example with
``$host`` shows it.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests import chatcheck, readme
from zorg.live.tests.redisfixture import redisServer  # noqa: F401
from zorg.live.tests.serverfixture import RunningServer, freePort
from zorg.live.tests.zeofixture import zeoServer  # noqa: F401
from zorg.live.tests.test_browser import (
    credentials, messages, openPage, say, waitForMessage, waitOpen)

pytestmark = pytest.mark.browser

README = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                      'README.txt')
NGINX = shutil.which('nginx') or '/usr/sbin/nginx'

# nginx.conf: README's example goes into the http block as it is (the
# production example), or into a server block of its own (the location).
HTTP_CONF = """\
daemon off;
master_process off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
%(example)s
}
"""

SERVER = """\
  server {
    listen 127.0.0.1:%(port)d;
%(example)s
  }"""


def readmeExample():
    """The indented block after 'nginx::' in README.txt."""
    with open(README) as f:
        text = f.read()
    match = re.search(r'\nnginx::\n\n((?:    .*\n|\n)+)', text)
    assert match, 'README.txt has no nginx:: example'
    return match.group(1).rstrip()




class Nginx:
    """nginx with README's `example`: a `location` for one backend port
    (int), or the production example (map, upstream and server in the
    http block) for a list of three backend ports."""

    def __init__(self, directory, backend, example):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = freePort()
        self.conf = os.path.join(self.dir, 'nginx.conf')
        if isinstance(backend, int):
            example = example.replace('127.0.0.1:8080',
                                      '127.0.0.1:%d' % backend)
            text = HTTP_CONF % {'dir': self.dir, 'example': SERVER % {
                'port': self.port, 'example': example}}
        else:
            for old, new in zip((8080, 8081, 8082), backend):
                example = readme.port(example, old, new)
            example = example.replace('listen 80;', 'listen 127.0.0.1:%d;'
                                      % self.port)
            text = HTTP_CONF % {'dir': self.dir, 'example': example}
        with open(self.conf, 'w') as f:
            f.write(text)

    def __enter__(self):
        if not os.path.exists(NGINX):
            pytest.fail('nginx is missing: `make test` installs it '
                        '(apt-get install nginx)', pytrace=False)
        self.process = subprocess.Popen(
            [NGINX, '-p', self.dir, '-c', self.conf],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        import socket
        while True:
            assert self.process.poll() is None, self.log()
            try:
                socket.create_connection(('127.0.0.1', self.port),
                                         0.5).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, self.log()
                time.sleep(0.05)

    def log(self):
        path = os.path.join(self.dir, 'error.log')
        return open(path).read() if os.path.exists(path) else ''

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)

    def url(self, path=''):
        return 'http://127.0.0.1:%d/%s' % (self.port, path)


def test_the_readme_nginx_example_serves_live_pages_on_another_port(
        tmp_path, new_context, screenshot):
    example = readmeExample()
    assert 'proxy_set_header Host $http_host;' in example
    with RunningServer(tmp_path / 'server', refresh_interval=5,
                       heartbeat_interval=2) as server, \
            Nginx(tmp_path / 'nginx', server.port, example) as proxy:
        context = new_context(http_credentials={
            'username': 'alice', 'password': 'alice',
            'origin': proxy.url().rstrip('/')})
        page = openPage(context, proxy.url('browser-chat.html'))
        waitOpen(page, 'sse')
        say(page, 'through nginx')
        waitForMessage(page, 'through nginx')
        assert messages(page) == ['through nginx']
        screenshot(page)


def test_with_host_instead_of_http_host_input_is_refused(tmp_path):
    """What the README warns of: nginx's $host drops the port."""
    import json
    import urllib.error
    import urllib.request
    from zorg.live.tests.test_demo import ALICE

    example = readmeExample().replace('$http_host', '$host')
    with RunningServer(tmp_path / 'server') as server, \
            Nginx(tmp_path / 'nginx', server.port, example) as proxy:
        request = urllib.request.Request(proxy.url('browser-chat.html'),
                                         headers=ALICE)
        with urllib.request.urlopen(request, timeout=20) as r:
            uuid = re.search(r'data-uuid="([^"]+)"',
                             r.read().decode()).group(1)
        request = urllib.request.Request(
            proxy.url('browser-chat.html/@@client/%s/input' % uuid),
            data=json.dumps({'handler': 'say', 'arguments': ['x']}).encode(),
            headers=dict(ALICE, Origin=proxy.url().rstrip('/'),
                         **{'Content-Type': 'application/json'}))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=20)
        body = json.load(refused.value)
    assert refused.value.code == 403
    assert body['error'] == 'cross-site'


# -- issue 20: nginx in front of three processes -------------------------

@pytest.fixture
def cluster(tmp_path, zeoServer, redisServer):
    """Three processes (one ZEO database, one redis-server) behind README's
    production nginx example."""
    processes = []
    try:
        for name in ('a', 'b', 'c'):
            processes.append(RunningServer(
                tmp_path / name, zodb=zeoServer.zodbSection(),
                broker=redisServer.url, refresh_interval=1,
                heartbeat_interval=1).start())
        with Nginx(tmp_path / 'nginx', [p.port for p in processes],
                   readme.block(readme.NGINX)) as proxy:
            yield proxy, processes
    finally:
        for server in processes:
            server.kill()
            server.output.close()


def test_three_processes_behind_nginx_a_page_opens_its_websocket(
        cluster, new_context, screenshot):
    proxy, _processes = cluster
    context = new_context(http_credentials={
        'username': 'alice', 'password': 'alice',
        'origin': proxy.url().rstrip('/')})
    page = openPage(context, proxy.url('browser-chat.html'))
    waitOpen(page, 'ws')
    for n in range(3):
        say(page, 'ws %d' % n)
        waitForMessage(page, 'ws %d' % n)
    assert messages(page) == ['ws 0', 'ws 1', 'ws 2']
    screenshot(page)


def test_one_of_three_processes_killed_mid_chat_behind_nginx(cluster):
    import asyncio
    import concurrent.futures
    proxy, processes = cluster
    # (A thread of its own: Playwright's loop may run in this one.)
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        counts, pages = thread.submit(
            asyncio.run, killedBehindNginx(proxy, processes)).result()
    assert counts == dict.fromkeys(counts, 0), counts
    # The SSE page got its lines as frames as they came (no buffering),
    # and opened its stream again on another process.
    assert pages[0].frames >= 24
    assert pages[0].streams >= 2


async def holding(s, processes):
    """The process that holds an output request or stream now (asked
    directly, not through nginx), else None."""
    for server in processes:
        async with s.get(server.url('@@live-health')) as r:
            if (await r.json()).get('waiting'):
                return server
    return None


async def killedBehindNginx(proxy, processes, lines=24):
    """The victim is the process that holds the SSE page's stream."""
    import asyncio
    async with chatcheck.session() as s:
        pages = [chatcheck.Page(s, proxy, 'sse'),
                 chatcheck.Page(s, proxy, 'longpoll')]
        writer = chatcheck.Writer(s, proxy)
        stop = asyncio.Event()
        reading = [asyncio.ensure_future(pages[0].run(stop))]
        deadline = time.monotonic() + 30
        while (victim := await holding(s, processes)) is None:
            assert time.monotonic() < deadline, 'no SSE stream'
            await asyncio.sleep(0.05)
        reading.append(asyncio.ensure_future(pages[1].run(stop)))
        for n in range(lines):
            if n == lines // 3:
                victim.process.kill()
            await writer.say('m%d' % n)
            # Each line is seen before the next: the SSE stream delivers
            # as it goes (a buffering proxy would hold it back).
            deadline = time.monotonic() + 30
            while not all('m%d' % n in p.lines for p in pages):
                if time.monotonic() > deadline:
                    break       # counted below
                await asyncio.sleep(0.02)
        stored = await chatcheck.Page(s, proxy).render()
        deadline = time.monotonic() + 30
        while any(set(p.lines) != set(stored) for p in pages):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*reading), 60)
        counts = chatcheck.tally(writer.answers, stored,
                                 [p.lines for p in pages])
        counts['not-200'] = sum(1 for a in writer.answers.values()
                                if a != 200)
        counts['not-stored-in-order'] = int(
            stored != ['m%d' % n for n in range(lines)])
        return counts, pages
