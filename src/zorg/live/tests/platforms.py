"""Helpers of the platform tests (Zope 6, Grok, Plone): an HTTP client
with basic auth on one kept-alive connection, and the chat page's
conditions waited for in chromium."""

import base64
import http.client
import json
import re

from zorg.live.tests.browserfixture import WAIT, credentials  # noqa: F401

ONLINE = "() => Array.from(document.querySelectorAll('#online li'), " \
         "(li) => li.dataset.principal + '=' + li.textContent).join(' ')"
MESSAGES = "() => Array.from(document.querySelectorAll('#log .msg'), " \
           "(p) => p.textContent)"


class Client:
    """HTTP/1.1 on one kept-alive connection, with basic auth."""

    def __init__(self, server, login=None):
        self.conn = http.client.HTTPConnection('127.0.0.1', server.port,
                                               timeout=30)
        self.headers = {}
        if login:
            token = base64.b64encode(('%s:%s' % (login, login)).encode())
            self.headers['Authorization'] = 'Basic ' + token.decode()

    def request(self, method, path, body=None, headers=()):
        all_headers = dict(self.headers, **dict(headers))
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        return response.status, response.read().decode('utf-8', 'replace')

    def get(self, path):
        return self.request('GET', path)

    def input(self, client_path, handler, arguments):
        return self.request(
            'POST', client_path + '/input',
            json.dumps({'handler': handler, 'arguments': arguments}),
            {'Content-Type': 'application/json'})

    def close(self):
        self.conn.close()


def openChat(client, path='/room/@@live-chat'):
    """Render a chat page; returns its @@client path."""
    status, html = client.get(path)
    assert status == 200, html
    url = re.search(r'data-client-url="([^"]+)"', html).group(1)
    return re.sub(r'^http://[^/]+', '', url)


def openPage(context, url):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function('() => window.LivePage && LivePage.status === '
                           '"open"', timeout=WAIT)
    return page


def waitOnline(page, expected):
    page.wait_for_function('(expected) => (%s)() === expected' % ONLINE,
                           arg=expected, timeout=WAIT)


def waitForMessage(page, text):
    page.wait_for_function(
        '(text) => (%s)().includes(text)' % MESSAGES, arg=text,
        timeout=WAIT)


def exchange(alice, bob, aliceName, bobName):
    """alice's and bob's pages of one chat say something to each other:
    each sees both lines, once and in order (names as the chat shows
    them)."""
    alice.fill('#text', 'Hello from Alice')
    alice.click('#send')
    waitForMessage(bob, '%s: Hello from Alice' % aliceName)
    bob.fill('#text', 'Hi Alice')
    bob.click('#send')
    waitForMessage(alice, '%s: Hi Alice' % bobName)
    assert alice.evaluate(MESSAGES) == bob.evaluate(MESSAGES) == [
        '%s: Hello from Alice' % aliceName, '%s: Hi Alice' % bobName]


def socketAttach(server, client, client_path, number=1):
    """A WebSocket to the site's ``@@live`` with `client`'s credentials,
    with page `client_path` (an @@client path) attached: ``(socket, first
    answer)``; the answer is ``attached`` or an ``error``."""
    from websockets.sync.client import connect
    ws = connect('ws://127.0.0.1:%d/@@live' % server.port,
                 additional_headers=client.headers, open_timeout=30)
    ws.send(json.dumps({'type': 'attach', 'page': number,
                        'uuid': client_path.rsplit('/', 1)[-1],
                        'url': client_path}))
    return ws, json.loads(ws.recv(timeout=30))


def socketSay(ws, number, inputId, text):
    """Send a chat line over `ws`; returns its ack and the events message
    that shows it (reading until both came)."""
    ws.send(json.dumps({'type': 'input', 'page': number, 'id': inputId,
                        'handler': 'say', 'arguments': [text]}))
    ack = shown = None
    while ack is None or shown is None:
        message = json.loads(ws.recv(timeout=30))
        if message['type'] == 'ack' and message['id'] == inputId:
            ack = message
        elif message['type'] == 'events' and text in json.dumps(message):
            shown = message
    return ack, shown


def checkSocketOwnership(server, chatPath, inputId):
    """A site's WebSocket carries its user's pages only: bob's socket and
    an anonymous one cannot attach alice's chat page at `chatPath`;
    alice's attaches it and says something through it."""
    alice = Client(server, 'alice')
    client = openChat(alice, chatPath)
    for other in (Client(server, 'bob'), Client(server)):
        ws, answer = socketAttach(server, other, client)
        assert answer['type'] == 'error' and answer['error'] == 'forbidden'
        ws.close()
        other.close()
    ws, answer = socketAttach(server, alice, client)
    assert answer == {'type': 'attached', 'page': 1}
    ack, shown = socketSay(ws, 1, inputId, 'over the socket')
    assert ack['status'] == 200, ack
    assert shown['page'] == 1
    ws.close()
    alice.close()
