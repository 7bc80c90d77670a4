"""The demo's chat and counter in headless chromium (livepage.js applies
the events, Enter sends, who-is-online follows join and leave)."""

import os

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import SITE_ZCML

CHROMIUM = '/usr/bin/chromium'
WAIT = 20000


@pytest.fixture(scope='module')
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail('%s is missing: `make test` installs it (apt-get install '
                    'chromium).' % CHROMIUM, pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=['--no-sandbox', '--disable-gpu', '--no-first-run'])
        try:
            yield browser
        finally:
            browser.close()


def login(browser, url, user=None):
    """A new browser context; with a user, logged in through @@login.html
    (the Basic auth challenge), then showing `url`."""
    options = {}
    if user:
        options['http_credentials'] = {'username': user, 'password': user}
    context = browser.new_context(**options)
    page = context.new_page()
    if user:
        page.goto(url.rsplit('/', 2)[0] + '/@@login.html')
    page.goto(url)
    page.wait_for_function("window.LivePage && LivePage.status === 'open'",
                           timeout=WAIT)
    return context, page


def test_chat_and_counter_in_a_browser(chromium, tmp_path):
    with RunningServer(tmp_path, threads=2, zcml=SITE_ZCML,
                       refresh_interval=5) as server:
        room = server.url('random/chat.html')
        alice_context, alice = login(chromium, room, 'alice')
        anonymous_context, anonymous = login(chromium, room)
        assert alice.inner_text('#online').split() == ['Alice']
        assert anonymous.is_disabled('#say-text')

        bob_context, bob = login(chromium, room, 'bob')
        alice.wait_for_selector('#online li[data-principal="demo.bob"]',
                                timeout=WAIT)

        bob.fill('#say-text', 'hello <i>from</i> bob')
        bob.press('#say-text', 'Enter')
        for page in (alice, anonymous, bob):
            page.wait_for_function(
                "document.getElementById('messages').textContent"
                ".includes('hello <i>from</i> bob')", timeout=WAIT)
        assert alice.query_selector('#messages i') is None   # escaped
        bob.wait_for_function(
            "document.getElementById('say-text').value === ''", timeout=WAIT)

        bob.close()   # pagehide: livepage.js closes the page; bob leaves
        alice.wait_for_function(
            "!document.querySelector('#online li[data-principal=\"demo.bob\"]')",
            timeout=WAIT)

        counter = server.url('counter/counter.html')
        one_context, one = login(chromium, counter)
        two_context, two = login(chromium, counter, 'alice')
        start = int(one.inner_text('#counter'))
        one.click('#increment')
        two.click('#increment')
        for page in (one, two):
            page.wait_for_function(
                "document.getElementById('counter').textContent.trim() "
                "=== '%d'" % (start + 2), timeout=WAIT)
        for context in (alice_context, anonymous_context, bob_context,
                        one_context,
                        two_context):
            context.close()
