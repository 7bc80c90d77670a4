"""Issue 12, item 2: a page of another origin cannot change anything.

The victim (alice, logged in with HTTP auth in her browser) has a chat
page open. A page served from a second loopback port -- another origin,
"same-site" to the browser -- makes her Chromium send every state-changing
request of the protocol and of the site: input (POST, and GET as in the
original zorg.live), register, close, an upload, and @@notify. Each is
refused (Playwright sees the real status of the opaque answers), and
nothing changed: no message in the chat, her page still open under the
same id, no page registered. Her own page keeps working, and @@notify
from a script (credentials, no browser Origin) too.
"""

import http.server
import json
import threading
import time
import urllib.request

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_browser import (
    credentials, messages, openPage, say, waitForMessage, waitOpen)

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><html><body><h1>Another site</h1><script>
window.attack = async (victim, page, uuid) => {
  const client = `${victim}/${page}/@@client`;
  const form = (body) => ({method: 'POST', mode: 'no-cors',
    credentials: 'include', body,
    headers: {'Content-Type': 'application/x-www-form-urlencoded'}});
  const sent = [
    fetch(`${client}/${uuid}/input`,
          form('handler-name=say&arguments=forged%20by%20post')),
    fetch(`${client}/${uuid}/input?handler-name=say&arguments=forged%20by%20get`,
          {mode: 'no-cors', credentials: 'include'}),
    fetch(`${client}/register`, form('')),
    fetch(`${client}/${uuid}/close`, form('')),
    fetch(`${victim}/@@test-upload`, form('file=forged')),
    fetch(`${victim}/@@notify`, {method: 'POST', mode: 'no-cors',
      credentials: 'include', headers: {'Content-Type': 'text/plain'},
      body: JSON.stringify({group: 'browser:browser-chat.html',
                            text: 'forged notify'})}),
  ];
  // An image and a beacon, as a page without script would.
  navigator.sendBeacon(`${client}/${uuid}/close`);
  await Promise.allSettled(sent);
  return sent.length;
};
</script></body></html>"""


class AttackSite:
    """The other origin: a plain HTTP server on another loopback port."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                body = ATTACK.encode()
                handler.send_response(200)
                handler.send_header('Content-Type', 'text/html')
                handler.send_header('Content-Length', str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d/' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def stats(server):
    with urllib.request.urlopen(server.url('@@test-stats'), timeout=10) as r:
        return json.load(r)


@pytest.mark.parametrize('kind', ['LiveServerHTTP', 'WSGI-HTTP'])
def test_another_origin_changes_nothing_for_a_logged_in_victim(
        tmp_path, new_context, screenshot, kind):
    with RunningServer(tmp_path, types=(kind,), refresh_interval=5,
                       heartbeat_interval=2) as server, \
            AttackSite() as attacker:
        victim = server.url().rstrip('/')
        context = new_context(**credentials(server, 'alice'))
        alice = openPage(context, server.url('browser-chat.html'))
        waitOpen(alice)
        uuid = alice.evaluate('() => LivePage.uuid')
        before = stats(server)

        statuses = {}

        def answered(response):
            if response.url.startswith(victim) and \
                    response.request.frame.url.startswith(attacker.url):
                statuses.setdefault(response.url.split('?')[0].rsplit(
                    '/', 1)[-1], []).append(response.status)
        context.on('response', answered)
        other = context.new_page()
        other.goto(attacker.url)
        # The page id leaked to the attacker (the worst case).
        assert other.evaluate('([v, u]) => attack(v, "browser-chat.html", u)',
                              [victim, uuid]) == 6
        # Every request was refused as cross-site (the beacon too, when
        # the browser reports it).
        names = {'input', 'register', 'close', '@@test-upload', '@@notify'}
        deadline = time.monotonic() + WAIT / 1000
        while not (names <= set(statuses) and len(statuses['input']) == 2):
            assert time.monotonic() < deadline, statuses
            other.wait_for_timeout(50)   # lets Playwright deliver events
        assert set(statuses) == names
        assert {s for v in statuses.values() for s in v} == {403}, statuses

        # Nothing changed: her page is open under the same id, her own
        # input still works and nothing forged reached the chat.
        say(alice, 'marker')
        waitForMessage(alice, 'marker')
        assert messages(alice) == ['marker']
        assert alice.evaluate('() => LivePage.uuid') == uuid
        assert alice.evaluate('() => LivePage.status') == 'open'
        after = stats(server)
        assert after['pages'] == before['pages']
        screenshot(alice)
