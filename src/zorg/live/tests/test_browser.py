"""zorg.ajax: the browser client, proven in a real browser.

livepage.js in headless chromium against the real LiveServerHTTP (the
`zorg-live serve` process of serverfixture.py) on loopback: two pages of a
group see each other's input and presence; a page survives a restart of
the server; SSE that cannot get through falls back to long-poll; a lost
long-poll answer is shown once; 200 quick events arrive in order, once.

The test pages are in zorg.live.testing (BrowserLivePage & co.) and
tests/site.zcml. Every condition is waited for with wait_for_function, never
with a fixed sleep.
"""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, credentials, live_server, new_context,
    screenshot)
from zorg.live.tests.serverfixture import RunningServer

pytestmark = pytest.mark.browser

EVENTS_URL = re.compile(r'/@@client/[^/?]+/events(\?.*)?$')
OUTPUT_URL = re.compile(r'/@@client/[^/?]+/output(\?.*)?$')

MESSAGES = "() => Array.from(document.querySelectorAll('#log .msg'), " \
           "p => p.textContent)"
ONLINE = "Array.from(document.querySelectorAll('#online li'), " \
         "(li) => li.dataset.principal).join(' ')"


def openPage(context, url):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function('() => window.LivePage && LivePage.status !== '
                           '"closed"', timeout=WAIT)
    return page


def waitOpen(page, transport=None):
    page.wait_for_function(
        '(transport) => window.LivePage && LivePage.status === "open" && '
        '(!transport || LivePage.transport === transport)',
        arg=transport, timeout=WAIT)


def say(page, text):
    """Call the page's `say` handler through LivePage.send()."""
    return page.evaluate('(text) => LivePage.send("say", [text])', text)


def waitForMessage(page, text, timeout=WAIT):
    page.wait_for_function(
        '(text) => Array.from(document.querySelectorAll("#log .msg"))'
        '.some((p) => p.textContent === text)', arg=text, timeout=timeout)


def messages(page):
    return page.evaluate(MESSAGES)


def waitOnline(page, principals, timeout=WAIT):
    page.wait_for_function(
        '(expected) => %s === expected' % ONLINE,
        arg=' '.join(principals), timeout=timeout)


# -- 1. two pages of one group ---------------------------------------------

def test_input_and_presence_between_two_pages_of_a_group(
        live_server, new_context, screenshot):
    url = live_server.url('browser-chat.html')
    alice = openPage(new_context(**credentials(live_server, 'alice')), url)
    waitOpen(alice)
    bob = openPage(new_context(**credentials(live_server, 'bob')), url)
    waitOpen(bob)

    # Presence: Bob's page was rendered with both; Alice's page hears Bob
    # join.
    waitOnline(bob, ['test.alice', 'test.bob'])
    waitOnline(alice, ['test.alice', 'test.bob'])
    assert alice.evaluate(
        '() => Array.from(document.querySelectorAll("#online li"), '
        '(li) => li.textContent)') == ['Alice', 'Bob']

    # Input typed into one page appears in the other (and in its own).
    alice.fill('#say', 'Hello from Alice')
    alice.press('#say', 'Enter')
    waitForMessage(bob, 'Hello from Alice')
    bob.fill('#say', 'Hi Alice, Bob here')
    bob.press('#say', 'Enter')
    waitForMessage(alice, 'Hi Alice, Bob here')
    waitForMessage(bob, 'Hi Alice, Bob here')
    expected = ['Hello from Alice', 'Hi Alice, Bob here']
    assert messages(alice) == expected
    assert messages(bob) == expected

    # Bob closes his page: he leaves, in Alice's page.
    bob.close()
    waitOnline(alice, ['test.alice'])
    assert alice.evaluate('() => LivePage.status') == 'open'
    screenshot(alice)


# -- 2. the server restarts -------------------------------------------------

def test_page_comes_back_after_the_server_was_killed_and_restarted(
        tmp_path, new_context, screenshot):
    server = RunningServer(tmp_path / 'server', refresh_interval=5,
                           heartbeat_interval=1)
    with server:
        page = openPage(new_context(), server.url('browser-restart.html'))
        waitOpen(page, 'sse')
        say(page, 'before the restart')
        waitForMessage(page, 'before the restart')
        # Marks that a reload forgets, and the reason the client stopped
        # (kept in sessionStorage, which a reload keeps).
        page.evaluate('''() => {
            window.beforeRestart = true;
            LivePage.onclose = (code) =>
                sessionStorage.setItem('zorg-live-closed', code);
        }''')
        port = server.port

        server.kill()
        server.output.close()
        server.start()
        assert server.port == port

        # The memory broker's history is gone with the old process: the page
        # registers again, is told recovered:false and reloads itself, and
        # the reloaded page is live.
        page.wait_for_function(
            '() => !window.beforeRestart && window.LivePage && '
            'LivePage.status === "open"', timeout=WAIT)
        assert page.evaluate(
            '() => sessionStorage.getItem("zorg-live-closed")') == \
            'not-recovered'
        assert messages(page) == []

        say(page, 'after the restart')
        waitForMessage(page, 'after the restart')
        assert messages(page) == ['after the restart']
        screenshot(page)


# -- 3. SSE blocked ---------------------------------------------------------

def test_blocked_sse_falls_back_to_long_poll(live_server, new_context,
                                              screenshot):
    context = new_context()
    blocked = []

    def block(route):
        blocked.append(route.request.url)
        route.abort()

    context.route(EVENTS_URL, block)
    page = openPage(context, live_server.url('browser-fallback.html'))
    page.wait_for_function('() => LivePage.transport === "longpoll"',
                           timeout=WAIT)
    assert len(blocked) >= 1

    say(page, 'through long-poll')
    waitForMessage(page, 'through long-poll')
    waitOpen(page, 'longpoll')
    say(page, 'and again')
    waitForMessage(page, 'and again')
    assert messages(page) == ['through long-poll', 'and again']
    assert page.evaluate('() => LivePage.outputNum') >= 2
    screenshot(page)


# -- 4. a long-poll answer lost on the way ---------------------------------

def test_lost_long_poll_answer_is_shown_exactly_once(live_server, new_context,
                                                     screenshot):
    context = new_context()
    seen = []        # (outputNum, what happened)
    lost = []        # the outputNum whose answer was dropped

    def lose_one(route):
        num = parse_qs(urlsplit(route.request.url).query)['outputNum'][0]
        try:
            # The server answers (and records the answer) ...
            response = route.fetch(timeout=30000)
            body = response.text()
        except Exception:
            seen.append((num, 'gone'))
            try:
                route.abort()
            except Exception:
                pass
            return
        # ... but the first answer carrying our event never reaches the page.
        if not lost and 'lost on the way' in body:
            lost.append(num)
            seen.append((num, 'aborted'))
            route.abort('connectionreset')
        else:
            seen.append((num, 'delivered'))
            route.fulfill(response=response)

    context.route(OUTPUT_URL, lose_one)
    page = openPage(context, live_server.url('browser-lost-answer.html'))
    assert page.evaluate('() => LivePage.transport') == 'longpoll'
    assert page.evaluate(
        '() => document.querySelector("script[data-transport]")'
        '.dataset.transport') == 'longpoll'

    say(page, 'lost on the way')
    waitForMessage(page, 'lost on the way')
    # A later event proves that nothing else (a second copy) is on its way.
    say(page, 'after it')
    waitForMessage(page, 'after it')

    assert messages(page) == ['lost on the way', 'after it']
    assert page.evaluate('() => LivePage.appliedCount') == 2
    assert lost, seen
    # The page asked again with the same outputNum and got the same answer.
    assert (lost[0], 'delivered') in seen, seen
    screenshot(page)


# -- 5. 200 events at once ---------------------------------------------------

@pytest.mark.parametrize('transport', ['sse', 'longpoll'])
def test_200_quick_events_arrive_in_order_and_once(
        live_server, new_context, screenshot, transport):
    count = 200
    page = openPage(new_context(),
                    live_server.url('browser-burst-%s.html' % transport))
    if transport == 'sse':
        waitOpen(page, 'sse')

    # One handler publishes 200 events in a loop.
    assert page.evaluate('(n) => LivePage.send("burst", [n, "event"])',
                         count) == []
    page.wait_for_function(
        '(n) => document.querySelectorAll("#log .msg").length >= n',
        arg=count, timeout=WAIT)
    say(page, 'the end')
    waitForMessage(page, 'the end')

    numbers = page.evaluate(
        '() => Array.from(document.querySelectorAll("#log .msg"), '
        '(p) => p.dataset.n === undefined ? p.textContent '
        ': Number(p.dataset.n))')
    assert numbers == list(range(count)) + ['the end']
    assert messages(page)[:3] == ['event 0', 'event 1', 'event 2']
    assert page.evaluate('() => LivePage.appliedCount') == count + 1
    assert page.evaluate('() => LivePage.transport') == transport
    state = page.evaluate('() => ({status: LivePage.status, '
                          'last: LivePage.lastEventId})')
    assert state['status'] == 'open'
    assert json.loads(state['last']) > 0
    screenshot(page)


def test_under_wsgi_http_the_page_long_polls_from_the_start(
        tmp_path, new_context):
    """WSGI-HTTP offers no SSE, and the page knows it from its script tag:
    no SSE attempt, no 501, a clean console, and input still arrives."""
    server = RunningServer(tmp_path, types=('WSGI-HTTP',), threads=4,
                           refresh_interval=2)
    with server:
        context = new_context(**credentials(server, 'alice'))
        errors, streams = [], []
        # (The browser's own favicon request may 404: not the page's.)
        context.on('console', lambda message: message.type == 'error'
                   and not message.location.get('url', '').endswith(
                       '/favicon.ico')
                   and errors.append(message.text))
        context.on('request', lambda request: EVENTS_URL.search(request.url)
                   and streams.append(request.url))
        page = openPage(context, server.url('browser-chat.html'))
        waitOpen(page, 'longpoll')
        other = openPage(context, server.url('browser-chat.html'))
        waitOpen(other, 'longpoll')
        say(other, 'over long-poll')
        waitForMessage(page, 'over long-poll')
        assert streams == []
        assert errors == []
