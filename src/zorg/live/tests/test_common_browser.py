"""Issue 21, item 7: one browser core. livepage-common.js holds what the
page (livepage.js) and the owner of the shared connection
(livepage-worker.js) share -- the order of event ids, the event-stream
parser, the backoff, random ids -- and both load it: the page with a
script tag before livepage.js, the SharedWorker with importScripts().

In real chromium against the real LiveServerHTTP, one test per loader:
a page whose connection is the SharedWorker's WebSocket, and a page in a
browser without SharedWorker or BroadcastChannel, which falls back to the
client in the page (its own SSE stream). Each receives an event and sends
an input."""

import os
import re

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, credentials, live_server, new_context,
    screenshot)
from zorg.live.tests.test_tabs_browser import (
    NO_SHARED_WORKER, note, openTab, waitForMessages, waitOpen)

pytestmark = pytest.mark.browser

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    __file__))), 'ajax', 'resources')
SHARED = ('function compareEventIds', 'class EventStreamParser',
          'function backoffDelay', 'function randomId',
          'Math.random', 'getRandomValues')

# The page's client uses the common code, not a copy of its own.
USES_COMMON = """() => !!window.ZorgLiveCommon
  && Object.isFrozen(ZorgLiveCommon)
  && LivePage.constructor.compareEventIds === ZorgLiveCommon.compareEventIds
  && LivePage.constructor.EventStreamParser === ZorgLiveCommon.EventStreamParser"""

NO_SHARING = 'delete window.SharedWorker; delete window.BroadcastChannel;'


def source(name):
    with open(os.path.join(RESOURCES, name)) as f:
        return f.read()


def test_what_both_share_is_written_once():
    common = source('livepage-common.js')
    for name in ('livepage.js', 'livepage-worker.js'):
        text = source(name)
        for shared in SHARED:
            assert shared in common, shared
            assert shared not in text, (name, shared)
    assert "importScripts('livepage-common.js')" in source(
        'livepage-worker.js')


def test_the_page_loads_the_common_script_first(live_server, new_context):
    context = new_context(**credentials(live_server, 'alice'))
    page = openTab(context, live_server.url('browser-common-inpage.html'))
    scripts = page.evaluate(
        "() => Array.from(document.scripts, (s) => s.src)")
    names = [re.sub(r'.*/', '', src) for src in scripts if src]
    assert names[:2] == ['livepage-common.js', 'livepage.js'], scripts


def test_a_page_on_the_shared_worker(live_server, new_context):
    """The SharedWorker imports livepage-common.js (it defines none of
    it: test_what_both_share_is_written_once) and holds the WebSocket;
    the page receives its event and its input's answer through it."""
    context = new_context(**credentials(live_server, 'alice'))
    url = live_server.url('browser-common-worker.html')
    sender, receiver = openTab(context, url), openTab(context, url)
    for tab in (sender, receiver):
        waitOpen(tab, 'shared', 'ws')
        assert tab.evaluate('() => LivePage.sharedBy') == 'worker'
        assert tab.evaluate(USES_COMMON)
    assert note(sender, 'through the worker') == [
        '<p class="reply">through the worker</p>']
    assert waitForMessages(receiver, ['through the worker']) == [
        'through the worker']


def test_the_owner_opens_the_socket_with_the_pages_ticket(
        live_server, new_context):
    """The owner elected among the tabs (no SharedWorker: the worker's
    file runs in the tab, with the page's livepage-common.js) sends the
    page's connection ticket with the handshake (issue 21, item 6)."""
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(NO_SHARED_WORKER)
    sockets = []
    tab = context.new_page()
    tab.on('websocket', lambda ws: sockets.append(ws.url))
    tab.goto(live_server.url('browser-common-worker.html'), timeout=WAIT)
    waitOpen(tab, 'shared', 'ws')
    assert tab.evaluate('() => LivePage.sharedBy') == 'lock'
    assert tab.evaluate(USES_COMMON)
    ticket = tab.evaluate('() => document.querySelector('
                          '"script[data-live-ticket]").dataset.liveTicket')
    assert len(sockets) == 1, sockets
    assert sockets[0].endswith('/@@live?ticket=' + ticket), sockets
    assert note(tab, 'with a ticket') == [
        '<p class="reply">with a ticket</p>']


def test_a_page_on_its_own_client(live_server, new_context):
    """No SharedWorker, no BroadcastChannel: the page runs the client in
    the page (its own SSE stream, read with the common parser)."""
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(NO_SHARING)
    sockets = []
    url = live_server.url('browser-common-inpage.html')
    sender, receiver = context.new_page(), context.new_page()
    for tab in (sender, receiver):
        tab.on('websocket', lambda ws: sockets.append(ws.url))
        tab.goto(url, timeout=WAIT)
    for tab in (sender, receiver):
        waitOpen(tab, 'tab', 'sse')
        assert tab.evaluate(USES_COMMON)
        assert tab.evaluate('() => LivePage.sharedBy') is None
    assert note(sender, 'in the page') == ['<p class="reply">in the page</p>']
    assert waitForMessages(receiver, ['in the page']) == ['in the page']
    assert sockets == []
