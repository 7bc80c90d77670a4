"""Live pages in a real Grok application.

The example application (zorg.live.grok.example: a ``grok.View`` that is a
LivePage, found by ``<grok:grok package="." />``) is served by
``zorg-live serve`` (LiveServerHTTP in front of zope.app.wsgi's publisher,
which Grok runs on); two users in headless chromium.
"""

import json
import os

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    artifacts, browser, new_context, screenshot)
from zorg.live.tests.platforms import (
    Client, checkSocketOwnership, credentials, exchange, openChat, openPage,
    waitOnline)
from zorg.live.tests.serverfixture import RunningServer

pytestmark = pytest.mark.browser

SITE = os.path.join(os.path.dirname(__file__), 'site.zcml')


@pytest.fixture(scope='module')
def grok_site(tmp_path_factory):
    server = RunningServer(tmp_path_factory.mktemp('grok'), zcml=SITE,
                           threads=2, refresh_interval=5,
                           heartbeat_interval=2)
    with server:
        yield server


def test_two_grok_users_see_each_others_input_and_presence(
        grok_site, new_context, screenshot):
    url = grok_site.url('/chat/@@chat')
    alice = openPage(new_context(**credentials(grok_site, 'alice')), url)
    bob = openPage(new_context(**credentials(grok_site, 'bob')), url)
    # update() ran before the template: the page knows its user.
    assert bob.inner_text('#me') == 'Bob'
    waitOnline(bob, 'grok.alice=Alice grok.bob=Bob')
    waitOnline(alice, 'grok.alice=Alice grok.bob=Bob')

    exchange(alice, bob, 'Alice', 'Bob')

    bob.close()
    waitOnline(alice, 'grok.alice=Alice')
    screenshot(alice)


def test_a_thousand_output_requests_open_no_zodb_connection(grok_site):
    alice = Client(grok_site, 'alice')
    client = openChat(alice, '/chat/@@chat')
    alice.input(client, 'say', ['start'])
    status, first = alice.get(client + '/output?outputNum=0')
    assert status == 200 and 'start' in first

    def opens():
        return json.loads(alice.get('/@@test-stats')[1])['dbOpens']

    before = opens()
    for _ in range(1000):
        assert alice.get(client + '/output?outputNum=0') == (200, first)
    assert opens() == before + 1      # only the stats request before
    alice.get('/chat/@@chat')
    assert opens() == before + 3      # a page view opens one
    alice.close()


def test_bad_input_gets_the_same_clear_4xx_as_on_bluebream(grok_site):
    alice, bob = Client(grok_site, 'alice'), Client(grok_site, 'bob')
    client = openChat(alice, '/chat/@@chat')

    def error(answer):
        status, body = answer
        return status, json.loads(body)['error']

    assert error(bob.input(client, 'say', ['hi'])) == (403, 'forbidden')
    assert error(alice.input(client, 'update', [])) == (400, 'bad-request')
    assert error(alice.input(client, 'say', 'x' * 700000)) == (
        413, 'too-large')
    assert error(alice.get(client + '/output?outputNum=abc')) == (
        400, 'bad-request')
    assert error(alice.get('/chat/@@chat/@@client/nope/output'
                           '?outputNum=0')) == (404, 'unknown-page')
    # The page needs zope.View, which only logged-in users have.
    anonymous = Client(grok_site)
    assert error(anonymous.request(
        'POST', '/chat/@@chat/@@client/register', '')) == (403, 'forbidden')
    for c in (alice, bob, anonymous):
        c.close()


def test_a_websocket_carries_the_pages_of_its_grok_user_only(grok_site):
    """@@live on Grok: alice's socket attaches her chat page and says
    things through it; bob's and an anonymous one cannot attach it."""
    checkSocketOwnership(grok_site, '/chat/@@chat', 'g1')
