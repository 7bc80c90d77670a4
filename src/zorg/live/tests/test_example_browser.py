"""README.txt's own site, as a newcomer runs it: ``zorg-live new mysite``
in a fresh folder outside the source tree, ``zorg-live serve
mysite/zope.conf`` from there, and two logged-in users in Chromium who see
each other's votes and each other in the who-is-online list.

The only change to the README's commands: ``--port 0`` (the server takes
a free port and logs it), so the test never collides with a demo on 8080.
"""

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests.newsite import Served, newSite

pytestmark = pytest.mark.browser

ONLINE = "() => Array.from(document.querySelectorAll('#online li'), " \
         "(li) => li.textContent).join(', ')"
RESULTS = "() => document.getElementById('results').textContent"


def login(new_context, served, name):
    context = new_context(http_credentials={
        'username': name, 'password': name,
        'origin': served.url().rstrip('/')})
    page = context.new_page()
    errors = []
    page.on('pageerror', lambda error: errors.append(str(error)))
    page.goto(served.url())          # the front page is the poll
    page.wait_for_function('() => window.LivePage && '
                           'LivePage.status === "open"', timeout=WAIT)
    return page, errors


def waitFor(page, expression, expected):
    page.wait_for_function('(expected) => (%s)() === expected' % expression,
                           arg=expected, timeout=WAIT)


def vote(page, choice):
    page.click('button[data-choice="%s"]' % choice)


def test_two_users_vote_and_see_each_other(tmp_path, new_context,
                                           screenshot):
    site = newSite(tmp_path, 'mysite')
    with Served('mysite/zope.conf', cwd=tmp_path) as served:
        alice, alice_errors = login(new_context, served, 'alice')
        # Rendered by @@live-presence: the viewer is on her own list.
        assert alice.evaluate(ONLINE) == 'Alice'
        bob, bob_errors = login(new_context, served, 'bob')
        # Alice was there before Bob: the first state lists her (no join
        # event reaches a page for somebody who joined before it).
        assert bob.evaluate(ONLINE) == 'Alice, Bob'
        waitFor(alice, ONLINE, 'Alice, Bob')       # Bob's join, live

        vote(alice, 'Pizza')
        waitFor(bob, RESULTS, 'Pizza: 1 AliceSushi: 0 Tacos: 0 ')
        vote(bob, 'Sushi')
        waitFor(alice, RESULTS, 'Pizza: 1 AliceSushi: 1 BobTacos: 0 ')
        vote(bob, 'Pizza')                         # Bob changes his mind
        waitFor(alice, RESULTS, 'Pizza: 2 Alice, BobSushi: 0 Tacos: 0 ')
        waitFor(bob, RESULTS, 'Pizza: 2 Alice, BobSushi: 0 Tacos: 0 ')
        screenshot(alice, 'alice')
        screenshot(bob, 'bob')

        bob.close()                                # Bob leaves
        waitFor(alice, ONLINE, 'Alice')
        # A page opened now shows the votes stored in the ZODB.
        again, _ = login(new_context, served, 'bob')
        assert again.evaluate(RESULTS) == \
            'Pizza: 2 Alice, BobSushi: 0 Tacos: 0 '
        assert alice_errors == [] and bob_errors == []
        assert served.stop() == 0
    assert 'Traceback' not in served.log(), served.log()
    assert (site / 'var' / 'Data.fs').exists()
