"""Issue 12, item 7: README.txt's nginx example, as written there, in
front of a real LiveServerHTTP, on a port that is not 80: a live page in
Chromium opens through it (SSE), sends input and gets it back.

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
from zorg.live.tests.serverfixture import RunningServer, freePort
from zorg.live.tests.test_browser import (
    credentials, messages, openPage, say, waitForMessage, waitOpen)

pytestmark = pytest.mark.browser

README = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                      'README.txt')
NGINX = shutil.which('nginx') or '/usr/sbin/nginx'

CONF = """\
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
  server {
    listen 127.0.0.1:%(port)d;
%(example)s
  }
}
"""


def readmeExample():
    """The indented block after 'nginx::' in README.txt."""
    with open(README) as f:
        text = f.read()
    match = re.search(r'\nnginx::\n\n((?:    .*\n|\n)+)', text)
    assert match, 'README.txt has no nginx:: example'
    return match.group(1).rstrip()


class Nginx:
    def __init__(self, directory, backend, example):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = freePort()
        example = example.replace('127.0.0.1:8080', '127.0.0.1:%d' % backend)
        self.conf = os.path.join(self.dir, 'nginx.conf')
        with open(self.conf, 'w') as f:
            f.write(CONF % {'dir': self.dir, 'port': self.port,
                            'example': example})

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
