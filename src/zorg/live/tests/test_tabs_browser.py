"""Issue 13: one live connection per browser, shared by all its tabs.

Real chromium (Playwright) against the real `zorg-live serve` on loopback,
straight over HTTP/1.1, where a browser opens about six connections per
site: with a stream per tab, tab seven never loads. Here every tab of one
person hands its page to the owner of one connection (a SharedWorker, or
the tab elected with Web Locks): a WebSocket to <app URL>/@@live, or, where
Upgrade does not pass (tests/rrproxy.py), one shared SSE stream.

Each test waits on conditions with deadlines (browserfixture.WAIT), never
with a fixed sleep. The pages are zorg.live.testing.BrowserTabsPage: `note`
appends a message to every page of the group, replies to the sender alone,
and is counted (@@test-note-runs) so that a handler run twice shows.
"""

import json
import time
import urllib.request

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, credentials, live_server, new_context,
    screenshot)
from zorg.live.tests.rrproxy import RoundRobinProxy
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_crosssite import AttackSite

pytestmark = pytest.mark.browser

TABS = 12

REPLIES = "() => Array.from(document.querySelectorAll('#replies .reply'), " \
          "p => p.textContent)"
MESSAGES = "() => Array.from(document.querySelectorAll('#log .msg'), " \
           "p => p.textContent)"

# Every status the page went through, kept from its first moment.
STATUSES = """
window.statuses = [];
document.addEventListener('livepage:status',
                          (event) => window.statuses.push(event.detail.status));
"""

# The Web Locks election instead of the SharedWorker.
NO_SHARED_WORKER = 'delete window.SharedWorker;'


def login(url, name):
    """Context options: HTTP basic auth as `name` on `url`'s origin."""
    return {'http_credentials': {'username': name, 'password': name,
                                 'origin': url.rstrip('/')}}


def openTab(context, url):
    page = context.new_page()
    page.goto(url, timeout=WAIT)
    return page


def openTabs(context, url, count):
    return [openTab(context, url) for _ in range(count)]


def waitOpen(page, connection='shared', transport=None):
    page.wait_for_function(
        '([connection, transport]) => window.LivePage && '
        'LivePage.status === "open" && LivePage.connection === connection '
        '&& (!transport || LivePage.transport === transport)',
        arg=[connection, transport], timeout=WAIT)


def note(page, text):
    """Call `note` through LivePage.send(); the reply's texts."""
    events = page.evaluate('(text) => LivePage.send("note", [text])', text)
    return [event.get('html') for event in events]


def waitForMessages(page, texts, timeout=WAIT):
    """Until the last of `texts` is shown; then the page's messages."""
    page.wait_for_function(
        '(text) => Array.from(document.querySelectorAll("#log .msg"))'
        '.some((p) => p.textContent === text)', arg=texts[-1],
        timeout=timeout)
    return page.evaluate(MESSAGES)


def noteRuns(server_url):
    with urllib.request.urlopen(server_url + '@@test-note-runs',
                                timeout=10) as answer:
        return json.loads(answer.read())


def postFromTabs(tabs, texts):
    """Each text from another tab, one after the other (each send()
    resolved before the next: the group's order is the order of texts)."""
    for n, text in enumerate(texts):
        assert note(tabs[(n * 5) % len(tabs)], text) == [
            '<p class="reply">%s</p>' % text]


def assertEveryTabShows(tabs, texts):
    for index, tab in enumerate(tabs):
        assert waitForMessages(tab, texts) == texts, 'tab %d' % index


# -- 1. twelve tabs of one person ------------------------------------------

def test_twelve_tabs_of_one_person_share_one_websocket(
        live_server, new_context, screenshot):
    context = new_context(**credentials(live_server, 'alice'))
    sockets = []
    context.on('websocket', lambda ws: sockets.append(ws.url))
    tabs = openTabs(context, live_server.url('browser-tabs-many.html'), TABS)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    assert {tab.evaluate('() => LivePage.sharedBy') for tab in tabs} == \
        {'worker'}

    texts = ['message %d' % n for n in range(5)]
    postFromTabs(tabs, texts)
    assertEveryTabShows(tabs, texts)
    runs = noteRuns(live_server.url())
    assert [runs.get(text) for text in texts] == [1] * len(texts)
    # Input went over the socket: no tab posted it.
    assert all(tab.evaluate('() => LivePage.transport') == 'ws'
               for tab in tabs)
    screenshot(tabs[-1])


def test_under_wsgi_http_three_tabs_long_poll_each(tmp_path, new_context):
    """WSGI-HTTP offers no WebSocket: each tab long-polls on its own (as
    far as HTTP/1.1's six connections allow) and input is posted."""
    server = RunningServer(tmp_path, types=('WSGI-HTTP',), threads=8,
                           refresh_interval=2)
    with server:
        context = new_context(**credentials(server, 'alice'))
        tabs = openTabs(context, server.url('browser-tabs-wsgi.html'), 3)
        for tab in tabs:
            waitOpen(tab, 'tab', 'longpoll')
        assert tabs[0].evaluate(
            '() => document.querySelector("script[data-client-url]")'
            '.dataset.liveUrl') is None
        texts = ['over long-poll %d' % n for n in range(3)]
        postFromTabs(tabs, texts)
        assertEveryTabShows(tabs, texts)
        runs = noteRuns(server.url())
        assert [runs.get(text) for text in texts] == [1, 1, 1]


# -- 2. the owner of the connection goes away ------------------------------

def test_closing_the_elected_tab_hands_the_connection_to_another(
        live_server, new_context, screenshot):
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(NO_SHARED_WORKER)
    tabs = openTabs(context, live_server.url('browser-tabs-owner.html'), 4)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    assert {tab.evaluate('() => LivePage.sharedBy') for tab in tabs} == \
        {'lock'}
    # Only the elected tab loaded the owner's code.
    owners = [tab for tab in tabs
              if tab.evaluate('() => !!window.ZorgLiveConnectionOwner')]
    assert owners == [tabs[0]]

    postFromTabs(tabs, ['before'])
    tabs[0].close()
    others = tabs[1:]
    # Posted at once, while the connection changes hands.
    texts = ['before', 'during', 'after 1', 'after 2']
    note(others[-1], 'during')
    postFromTabs(others, texts[2:])
    assertEveryTabShows(others, texts)
    assert sum(tab.evaluate('() => !!window.ZorgLiveConnectionOwner')
               for tab in others) == 1
    runs = noteRuns(live_server.url())
    assert [runs.get(text) for text in texts] == [1] * len(texts)
    screenshot(others[0])


def test_a_dropped_shared_worker_connection_loses_nothing(
        live_server, new_context, screenshot):
    url = live_server.url('browser-tabs-worker.html')
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(STATUSES)
    tabs = openTabs(context, url, 3)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    bob = openTab(new_context(**credentials(live_server, 'bob')), url)
    waitOpen(bob, 'shared', 'ws')

    postFromTabs(tabs, ['one'])
    tabs[1].evaluate('() => LivePage._debugConnection("close")')
    # Bob posts while alice's connection is down or coming back.
    assert note(bob, 'two') == ['<p class="reply">two</p>']
    assert note(bob, 'three') == ['<p class="reply">three</p>']
    postFromTabs(tabs, ['four'])
    texts = ['one', 'two', 'three', 'four']
    assertEveryTabShows(tabs + [bob], texts)
    for tab in tabs:
        # The connection was really lost (and every tab was told).
        statuses = tab.evaluate('() => window.statuses')
        assert statuses.count('open') >= 2, statuses
    screenshot(tabs[0])


# -- 3. the answer to an input is lost --------------------------------------

@pytest.mark.parametrize('mode', ['worker', 'lock'])
def test_input_whose_answer_was_lost_runs_once(
        live_server, new_context, screenshot, mode):
    url = live_server.url('browser-tabs-input.html')
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(STATUSES)
    if mode == 'lock':
        context.add_init_script(NO_SHARED_WORKER)
    tabs = openTabs(context, url, 2)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    text = 'once over the socket (%s)' % mode
    sender = tabs[1]
    sender.evaluate('() => LivePage._debugConnection("lose-next-ack")')
    # The server runs it, its ack is lost with the connection; the tab sends
    # it again (same id) once attached anew and gets the recorded answer.
    assert note(sender, text) == ['<p class="reply">%s</p>' % text]
    assertEveryTabShows(tabs, [text])
    assert sender.evaluate(REPLIES) == [text]
    assert noteRuns(live_server.url())[text] == 1
    statuses = sender.evaluate('() => window.statuses')
    assert 'connecting' in statuses[statuses.index('open'):], statuses
    # Still exactly once after more traffic.
    postFromTabs(tabs, ['later (%s)' % mode])
    assertEveryTabShows(tabs, [text, 'later (%s)' % mode])
    screenshot(sender)


@pytest.mark.parametrize('server_type', ['LiveServerHTTP', 'WSGI-HTTP'])
def test_posted_input_whose_answer_was_lost_runs_once(
        tmp_path, new_context, server_type):
    """Input by POST (a tab of its own; X-Live-Input-Id): the first answer
    is cut off after the server ran the handler; the page posts again with
    the same id and is answered from the record."""
    server = RunningServer(tmp_path, types=(server_type,), threads=6,
                           refresh_interval=2, heartbeat_interval=2)
    with server:
        context = new_context(**credentials(server, 'alice'))
        context.add_init_script(
            'window.addEventListener("DOMContentLoaded", () => '
            'LivePage.connection === "shared" && LivePage._leaveShared());')
        # The page's first input answer is dropped after it arrived (the
        # handler ran): to the page, a connection cut before the answer.
        context.add_init_script("""
          window.inputIds = []; window.lost = [];
          const realFetch = window.fetch;
          window.fetch = async (url, init) => {
            if (!String(url).endsWith('/input')) return realFetch(url, init);
            window.inputIds.push(init.headers['X-Live-Input-Id']);
            const response = await realFetch(url, init);
            if (window.lost.length) return response;
            window.lost.push(response.status);
            throw new TypeError('Failed to fetch (the answer was lost)');
          };""")
        page = openTab(context, server.url('browser-tabs-input-post.html'))
        waitOpen(page, 'tab')
        text = 'once by POST'
        assert note(page, text) == ['<p class="reply">%s</p>' % text]
        assert waitForMessages(page, [text]) == [text]
        assert page.evaluate(REPLIES) == [text]
        assert page.evaluate('() => window.lost') == [200]
        ids = page.evaluate('() => window.inputIds')
        assert len(ids) == 2 and ids[0] == ids[1] and ids[0], ids
        assert noteRuns(server.url())[text] == 1


# -- 4. other principals, other origins -------------------------------------

ATTACH = """async ([liveURL, message]) => {
  const ws = new WebSocket(liveURL.replace(/^http/, 'ws'));
  return await new Promise((resolve) => {
    ws.onopen = () => ws.send(JSON.stringify(message));
    ws.onmessage = (event) => { resolve(JSON.parse(event.data)); ws.close(); };
    ws.onclose = (event) => resolve({closed: event.code});
  });
}"""

SCRIPT_DATA = """() => {
  const data = document.querySelector('script[data-client-url]').dataset;
  return {uuid: data.uuid, clientURL: data.clientUrl, liveURL: data.liveUrl};
}"""


def test_a_page_of_another_principal_cannot_attach(
        live_server, new_context, screenshot):
    url = live_server.url('browser-tabs-other.html')
    alice = openTab(new_context(**credentials(live_server, 'alice')), url)
    waitOpen(alice, 'shared', 'ws')
    bob = openTab(new_context(**credentials(live_server, 'bob')), url)
    waitOpen(bob, 'shared', 'ws')
    victim = alice.evaluate(SCRIPT_DATA)
    own = bob.evaluate(SCRIPT_DATA)

    def attach(data, uuid):
        return bob.evaluate(ATTACH, [data['liveURL'], {
            'type': 'attach', 'page': 1, 'uuid': uuid, 'lastEventId': None,
            'url': data['clientURL']}])

    # Bob's socket may attach his own page (a second attach supersedes the
    # first) but not alice's.
    assert attach(own, own['uuid']) == {'type': 'attached', 'page': 1}
    refused = attach(own, victim['uuid'])
    assert (refused['type'], refused['page'], refused['error']) == \
        ('error', 1, 'forbidden'), refused
    # Alice's page is untouched.
    assert note(alice, 'still mine') == ['<p class="reply">still mine</p>']
    assert waitForMessages(alice, ['still mine']) == ['still mine']
    screenshot(alice)


def test_another_origin_cannot_open_the_socket_nor_post_input(
        live_server, new_context):
    url = live_server.url('browser-tabs-other.html')
    context = new_context(**credentials(live_server, 'alice'))
    alice = openTab(context, url)
    waitOpen(alice, 'shared', 'ws')
    victim = alice.evaluate(SCRIPT_DATA)
    statuses = []
    context.on('response', lambda response: statuses.append(
        (response.url.split('?')[0], response.status)))
    with AttackSite() as site:
        attacker = openTab(context, site.url)
        closed = attacker.evaluate(ATTACH, [victim['liveURL'], {
            'type': 'attach', 'page': 1, 'uuid': victim['uuid'],
            'lastEventId': None, 'url': victim['clientURL']}])
        assert closed == {'closed': 1006}, closed
        attacker.evaluate("""async ([clientURL, liveURL, uuid]) => {
          await fetch(`${clientURL}/input`, {method: 'POST', mode: 'no-cors',
            credentials: 'include', headers: {'Content-Type': 'text/plain',
              'X-Live-Input-Id': 'forged-1'},
            body: JSON.stringify({handler: 'note', arguments: ['forged']})});
          await fetch(`${liveURL}/events?page=1,${uuid},`,
                      {mode: 'no-cors', credentials: 'include'})
            .catch(() => null);
        }""", [victim['clientURL'], victim['liveURL'], victim['uuid']])
    assert (victim['clientURL'] + '/input', 403) in statuses, statuses
    assert (victim['liveURL'] + '/events', 403) in statuses, statuses
    assert 'forged' not in noteRuns(live_server.url())
    assert note(alice, 'after the attack') == [
        '<p class="reply">after the attack</p>']
    assert waitForMessages(alice, ['after the attack']) == \
        ['after the attack']


# -- 5. a proxy that does not pass Upgrade ----------------------------------

def test_behind_a_proxy_without_upgrade_twelve_tabs_share_one_sse_stream(
        live_server, new_context, screenshot):
    with RoundRobinProxy([live_server.port]) as proxy:
        url = proxy.url('browser-tabs-proxy.html')
        context = new_context(**login(proxy.url(), 'alice'))
        tabs = openTabs(context, url, TABS)
        for tab in tabs:
            waitOpen(tab, 'shared', 'sse')
        texts = ['through the proxy %d' % n for n in range(4)]
        postFromTabs(tabs, texts)
        assertEveryTabShows(tabs, texts)
        runs = noteRuns(live_server.url())
        assert [runs.get(text) for text in texts] == [1] * len(texts)
        # One shared stream at a time for the whole browser, no tab's own.
        # (The owner opens a new stream when its set of pages changes and
        # then lets the old one go: for a moment both may be in flight.)
        deadline = time.monotonic() + WAIT / 1000
        while True:
            streams = [path for _port, path
                       in proxy.inFlight('/@@live/events')]
            if len(streams) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(streams) == 1, streams
        assert proxy.inFlight('/@@client/') == []
        screenshot(tabs[-1])


# -- the server restarts, goes silent, sends much ---------------------------

def test_shared_pages_come_back_after_the_server_restarted(
        tmp_path, new_context, screenshot):
    """SIGTERM: the server tells the connection to reconnect. The memory
    broker's history is gone with the process, so each tab registers anew,
    is told recovered:false and reloads itself; then all is live again."""
    server = RunningServer(tmp_path / 'server', refresh_interval=5,
                           heartbeat_interval=1)
    with server:
        context = new_context(**credentials(server, 'alice'))
        tabs = openTabs(context, server.url('browser-tabs-restart.html'), 3)
        for tab in tabs:
            waitOpen(tab, 'shared', 'ws')
            tab.evaluate('() => { window.beforeRestart = true; }')
        postFromTabs(tabs, ['before'])
        assertEveryTabShows(tabs, ['before'])
        assert server.stop() == 0
        server.output.close()
        server.start()
        for tab in tabs:
            tab.wait_for_function(
                '() => !window.beforeRestart && window.LivePage && '
                'LivePage.status === "open"', timeout=WAIT)
            waitOpen(tab, 'shared', 'ws')
        postFromTabs(tabs, ['after'])
        assertEveryTabShows(tabs, ['after'])
        screenshot(tabs[0])


def test_a_silent_connection_is_taken_for_lost_and_made_anew(
        tmp_path, new_context):
    """The server process stops (SIGSTOP): nothing arrives, not even a
    pong. After two heartbeats of silence the owner gives the connection
    up; when the server goes on, a new one carries the same pages."""
    import os
    import signal
    server = RunningServer(tmp_path / 'server', refresh_interval=5,
                           heartbeat_interval=1)
    with server:
        context = new_context(**credentials(server, 'alice'))
        context.add_init_script(STATUSES)
        tabs = openTabs(context, server.url('browser-tabs-silent.html'), 2)
        for tab in tabs:
            waitOpen(tab, 'shared', 'ws')
        postFromTabs(tabs, ['before'])
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for tab in tabs:
                tab.wait_for_function('() => LivePage.status === "connecting"',
                                      timeout=WAIT)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        for tab in tabs:
            waitOpen(tab, 'shared', 'ws')
        postFromTabs(tabs, ['after 1', 'after 2'])
        assertEveryTabShows(tabs, ['before', 'after 1', 'after 2'])
        assert noteRuns(server.url()) == {'before': 1, 'after 1': 1,
                                          'after 2': 1}


def test_200_quick_events_reach_three_tabs_in_order_and_once(
        live_server, new_context):
    context = new_context(**credentials(live_server, 'alice'))
    tabs = openTabs(context, live_server.url('browser-tabs-burst.html'), 3)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    count = 200
    assert tabs[0].evaluate('(n) => LivePage.send("burst", [n, "event"])',
                            count) == []
    note(tabs[1], 'the end')
    expected = list(range(count)) + ['the end']
    for tab in tabs:
        waitForMessages(tab, ['the end'])
        assert tab.evaluate(
            '() => Array.from(document.querySelectorAll("#log .msg"), '
            '(p) => p.dataset.n === undefined ? p.textContent '
            ': Number(p.dataset.n))') == expected
        # Every event applied once (the sender also applied its reply).
        replies = len(tab.evaluate(REPLIES))
        assert tab.evaluate('() => LivePage.appliedCount') == \
            count + 1 + replies
    assert [len(tab.evaluate(REPLIES)) for tab in tabs] == [0, 1, 0]


def test_input_refused_over_the_socket_rejects_and_changes_nothing(
        live_server, new_context):
    """An undeclared handler: the ack carries the POST path's 400 and its
    error object; send() rejects with them, and the connection and the
    other tab go on."""
    context = new_context(**credentials(live_server, 'alice'))
    tabs = openTabs(context, live_server.url('browser-tabs-input.html'), 2)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    refused = tabs[0].evaluate('''() => LivePage.send("nothing", [])
        .then(() => null, (error) => ({status: error.status,
                                       code: error.code}))''')
    assert refused == {'status': 400, 'code': 'bad-request'}
    assert note(tabs[1], 'after the refusal') == [
        '<p class="reply">after the refusal</p>']
    assertEveryTabShows(tabs, ['after the refusal'])
    assert all(tab.evaluate('() => LivePage.transport') == 'ws'
               for tab in tabs)


def test_input_unanswered_when_the_owner_went_away_runs_once(
        live_server, new_context, screenshot):
    """Web Locks mode: the server ran a tab's input, its answer was lost
    and the elected tab hung (it connects no more); then that tab closes.
    The next tab takes over, the sender attaches to it and sends the input
    again under its id: answered from the server's record, run once."""
    import time
    context = new_context(**credentials(live_server, 'alice'))
    context.add_init_script(NO_SHARED_WORKER)
    tabs = openTabs(context, live_server.url('browser-tabs-owner.html'), 3)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    assert tabs[0].evaluate('() => !!window.ZorgLiveConnectionOwner')
    sender = tabs[2]
    text = 'across the change of owner'
    sender.evaluate('() => LivePage._debugConnection('
                    '"lose-next-ack-and-halt")')
    sender.evaluate('''(text) => { window.answer = null;
        LivePage.send("note", [text]).then((events) => {
          window.answer = events.map((event) => event.html); }); }''', text)
    deadline = time.monotonic() + WAIT / 1000
    while noteRuns(live_server.url()).get(text) != 1:
        assert time.monotonic() < deadline, 'the input did not run'
        time.sleep(0.05)
    sender.wait_for_function('() => LivePage.status === "connecting"',
                             timeout=WAIT)
    assert sender.evaluate('() => window.answer') is None
    tabs[0].close()
    sender.wait_for_function('() => window.answer !== null', timeout=WAIT)
    assert sender.evaluate('() => window.answer') == [
        '<p class="reply">%s</p>' % text]
    assert sender.evaluate(REPLIES) == [text]
    assertEveryTabShows(tabs[1:], [text])
    assert noteRuns(live_server.url())[text] == 1
    screenshot(sender)


def test_twelve_anonymous_tabs_share_one_websocket(live_server, new_context):
    """A visitor who has not logged in: the pages and the connection are
    the anonymous principal's, so they share it too."""
    context = new_context()
    tabs = openTabs(context, live_server.url('browser-tabs-public.html'),
                    TABS)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    texts = ['anonymous %d' % n for n in range(3)]
    postFromTabs(tabs, texts)
    assertEveryTabShows(tabs, texts)


def test_more_inputs_at_once_than_a_connection_queues_all_run_once(
        live_server, new_context):
    """8 tabs send 25 inputs each, all at once: more than the server lets
    wait on one connection (100), and more than it remembers per page
    (max-input-ids, 100) if they went again all at once. The owner sends
    them a bounded number at a time; every input is answered once, and each
    handler ran exactly once."""
    context = new_context(**credentials(live_server, 'alice'))
    tabs = openTabs(context, live_server.url('browser-tabs-flood.html'), 8)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    count = 25
    for index, tab in enumerate(tabs):
        tab.evaluate('''([prefix, count]) => { window.answered = null;
            Promise.all(Array.from({length: count},
              (_, n) => LivePage.send("note", [`${prefix} ${n}`])))
            .then((answers) => { window.answered = answers.length; }); }''',
                     ['tab %d' % index, count])
    for tab in tabs:
        tab.wait_for_function('() => window.answered !== null', timeout=WAIT)
        assert tab.evaluate('() => window.answered') == count
    texts = ['tab %d %d' % (index, n) for index in range(len(tabs))
             for n in range(count)]
    runs = noteRuns(live_server.url())
    assert {text: runs.get(text) for text in texts} == \
        {text: 1 for text in texts}
    note(tabs[0], 'the end')
    for tab in tabs:
        shown = waitForMessages(tab, ['the end'])
        assert sorted(shown) == sorted(texts + ['the end'])
        assert len(tab.evaluate(REPLIES)) == count + (tab is tabs[0])


def test_after_logging_in_the_tabs_share_a_connection_of_the_new_user(
        live_server, new_context):
    """The first page was anonymous, so the browser's connection was made
    anonymous. Then the browser logs in (the chat page asks; the browser
    answers with alice's login): her pages are refused on that connection,
    the owner makes a new one with the browser's credentials of now, and
    her tabs share it. The anonymous page, refused there, goes on with a
    connection of its own."""
    context = new_context(**credentials(live_server, 'alice'))
    anonymous = openTab(context, live_server.url('browser-tabs-public.html'))
    waitOpen(anonymous, 'shared', 'ws')
    tabs = openTabs(context, live_server.url('browser-tabs-login.html'), 3)
    for tab in tabs:
        waitOpen(tab, 'shared', 'ws')
    texts = ['logged in %d' % n for n in range(3)]
    postFromTabs(tabs, texts)
    assertEveryTabShows(tabs, texts)
    waitOpen(anonymous, 'tab')
    # (It may not post any more: the browser now sends alice's login.)
    visitor = openTab(new_context(),
                      live_server.url('browser-tabs-public.html'))
    waitOpen(visitor, 'shared', 'ws')
    assert note(visitor, 'still live') == ['<p class="reply">still live</p>']
    assert waitForMessages(anonymous, ['still live']) == ['still live']


def test_when_neither_websocket_nor_shared_stream_gets_through_tabs_long_poll(
        live_server, new_context):
    """Behind the proxy without Upgrade, and the shared stream cut off as
    well (the elected tab's requests for it fail): every tab falls back to
    long-poll on its own, and input is posted."""
    with RoundRobinProxy([live_server.port]) as proxy:
        context = new_context(**login(proxy.url(), 'alice'))
        context.add_init_script(NO_SHARED_WORKER)
        blocked = []

        def block(route):
            blocked.append(route.request.url)
            route.abort()

        context.route('**/@@live/events?*', block)
        tabs = openTabs(context, proxy.url('browser-tabs-blocked.html'), 3)
        for tab in tabs:
            waitOpen(tab, 'tab', 'longpoll')
        assert len(blocked) >= 2, blocked
        texts = ['long-polled %d' % n for n in range(3)]
        postFromTabs(tabs, texts)
        assertEveryTabShows(tabs, texts)
        runs = noteRuns(live_server.url())
        assert [runs.get(text) for text in texts] == [1, 1, 1]
