"""Live pages on a real Zope 6 instance.

The instance is made by Zope's own ``mkwsgiinstance``, includes the
example (``zorg.live.zope6.example``: ``@@live-chat`` on any folder) in
``etc/site.zcml``, and is started with ``runwsgi etc/zope.ini``
whose ``[server:main]`` is ``use = egg:zorg.live#main`` (LiveServerHTTP in
front of Zope's own WSGI pipeline). Pages run in headless chromium.
"""

import json
import re

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests.platforms import (
    Client, checkSocketOwnership, credentials, exchange, openChat, openPage,
    waitOnline)
from zorg.live.zope6.tests.instance import ZopeInstance

pytestmark = pytest.mark.browser

@pytest.fixture(scope='module')
def zope(tmp_path_factory):
    instance = ZopeInstance(tmp_path_factory.mktemp('zope6') / 'instance',
                            threads=2, refresh_interval=5,
                            heartbeat_interval=2)
    with instance:
        yield instance


# -- two users in chromium ----------------------------------------------------

def test_two_zope_users_see_each_others_input_and_presence(
        zope, new_context, screenshot):
    url = zope.url('/room/@@live-chat')
    alice = openPage(new_context(**credentials(zope, 'alice')), url)
    bob = openPage(new_context(**credentials(zope, 'bob')), url)

    # Presence by Zope user id (and name: the standard user folder has
    # no full names, so the login).
    waitOnline(bob, 'alice=alice bob=bob')
    waitOnline(alice, 'alice=alice bob=bob')

    exchange(alice, bob, 'alice', 'bob')

    bob.close()
    waitOnline(alice, 'alice=alice')
    screenshot(alice)


def test_object_added_to_the_folder_updates_every_open_page(
        zope, new_context, screenshot):
    """<live:update> on OFS's ContainerModifiedEvent, after the commit."""
    url = zope.url('/room/@@live-chat')
    alice = openPage(new_context(**credentials(zope, 'alice')), url)
    assert 'notes.txt' not in alice.inner_text('#items')

    admin = Client(zope, 'admin')
    status, body = admin.request(
        'POST', '/room/manage_addProduct/OFSP/manage_addFile',
        'id=notes.txt&title=Notes',
        {'Content-Type': 'application/x-www-form-urlencoded'})
    assert status in (200, 302), body
    alice.wait_for_function(
        '() => document.querySelector("#items").textContent'
        '.includes("notes.txt")', timeout=WAIT)
    admin.close()
    screenshot(alice)


def test_a_listing_updated_in_place_shows_a_private_item_only_to_who_may_view_it(
        zope):
    """<live:update> renders once per Zope user online in the group: the
    folder's item that only managers may view reaches the manager's page,
    not alice's or bob's (one rendering for both of them)."""
    clients = {login: Client(zope, login) for login in ('alice', 'bob',
                                                         'admin')}
    pages = {login: openChat(c, '/room/@@live-chat')
             for login, c in clients.items()}
    status, body = clients['admin'].request(
        'POST', '/room/@@add-private', 'id=managers-only',
        {'Content-Type': 'application/x-www-form-urlencoded'})
    assert status == 200, body
    listings = {}
    for login, client in clients.items():
        num, found = 0, None
        while found is None:
            status, body = client.get(pages[login] + '/output?outputNum=%d'
                                      % num)
            assert status == 200, body
            num += 1
            found = next((e['html'] for e in json.loads(body)['events']
                          if e.get('target') == 'items'), None)
        listings[login] = found
    assert '<li>managers-only</li>' in listings['admin']
    assert listings['alice'] == listings['bob'] == listings['admin'].replace(
        '<li>managers-only</li>', '')
    for client in clients.values():
        client.close()


def test_an_aborted_transaction_updates_no_page(zope):
    """The update is published after commit only: a request that adds a
    folder and then fails is aborted, and the pages hear nothing of it."""
    alice = Client(zope, 'alice')
    client = openChat(alice)
    alice.input(client, 'say', ['start'])
    status, body = alice.get(client + '/output?outputNum=0')
    assert status == 200 and 'start' in body
    admin = Client(zope, 'admin')
    status, body = admin.request(
        'POST', '/room/@@add-then-fail', 'id=aborted',
        {'Content-Type': 'application/x-www-form-urlencoded'})
    assert status == 500, body
    status, body = admin.request(
        'POST', '/room/manage_addProduct/OFSP/manage_addFolder',
        'id=committed', {'Content-Type': 'application/x-www-form-urlencoded'})
    assert status in (200, 302), body
    # One update: the committed folder's, without the aborted one.
    status, body = alice.get(client + '/output?outputNum=1')
    events = json.loads(body)['events']
    assert [e['event'] for e in events] == ['update'], events
    assert 'committed' in events[0]['html']
    assert 'aborted' not in events[0]['html']
    status, body = alice.get(client + '/output?outputNum=2')
    assert json.loads(body)['events'] == [{'event': 'idle'}]
    admin.close()
    alice.close()


# -- the shared connection -------------------------------------------------

def test_a_websocket_carries_the_pages_of_its_zope_user_only(zope):
    """@@live on Zope 6 knows the Zope user (AccessControl): alice's
    socket attaches her page and says things through it; bob's and an
    anonymous one cannot attach it."""
    checkSocketOwnership(zope, '/room/@@live-chat', 'z1')


# -- output without the ZODB --------------------------------------------------

def test_a_thousand_output_requests_open_no_zodb_connection(zope):
    alice = Client(zope, 'alice')
    client = openChat(alice)
    alice.input(client, 'say', ['start'])
    status, first = alice.get(client + '/output?outputNum=0')
    assert status == 200 and 'start' in first

    def connections():
        status, body = alice.get('/@@zodb-connections')
        assert status == 200, body
        return int(body)

    before = connections()
    # Request 0 again, 1,000 times: each is answered (the same answer, as
    # the protocol says) by LiveServerHTTP in its loop.
    for _ in range(1000):
        status, body = alice.get(client + '/output?outputNum=0')
        assert (status, body) == (200, first)
    # Only the connection of the count request before has closed since.
    assert connections() == before + 1
    # The count sees ordinary requests: one page view is one connection.
    alice.get('/room/@@live-items')
    assert connections() == before + 3
    alice.close()


# -- bad input: the same 4xx as on BlueBream ----------------------------------

def test_bad_input_gets_the_same_clear_4xx_as_on_bluebream(zope):
    alice, bob = Client(zope, 'alice'), Client(zope, 'bob')
    anonymous = Client(zope)
    client = openChat(alice)

    def error(answer):
        status, body = answer
        return status, json.loads(body)['error']

    assert error(bob.input(client, 'say', ['hi'])) == (403, 'forbidden')
    assert error(anonymous.input(client, 'say', ['hi'])) == (403, 'forbidden')
    assert error(alice.input(client, 'render', [])) == (400, 'bad-request')
    assert error(alice.input(client, 'say', 'x' * 700000)) == (
        413, 'too-large')
    assert error(alice.request(
        'POST', client + '/input', '{not json',
        {'Content-Type': 'application/json'})) == (400, 'bad-request')
    assert error(alice.get(client + '/output?outputNum=abc')) == (
        400, 'bad-request')
    assert error(alice.get('/room/@@live-chat/@@client/nope/output'
                           '?outputNum=0')) == (404, 'unknown-page')
    # A form field named "principal" is not taken for the user.
    assert error(bob.request(
        'POST', client + '/input?handler-name=say&arguments=x',
        'principal=alice',
        {'Content-Type': 'application/x-www-form-urlencoded'})) == (
        403, 'forbidden')
    # The private folder's page: Zope asks for a login; its @@client
    # refuses to register a page for a user without View there.
    assert alice.get('/private/@@live-chat')[0] == 401
    for who in (alice, anonymous):
        assert error(who.request(
            'POST', '/private/@@live-chat/@@client/register', '')) == (
            403, 'forbidden')
    admin = Client(zope, 'admin')
    status, body = admin.request(
        'POST', '/private/@@live-chat/@@client/register', '')
    assert status == 200 and json.loads(body)['uuid']
    assert alice.input(client, 'say', ['still fine'])[0] == 200
    for c in (alice, bob, anonymous, admin):
        c.close()


# -- virtual hosting ----------------------------------------------------------

def test_pages_behind_a_virtual_host_monster_get_its_urls(zope):
    """The page is published through Zope's Virtual Host Monster (as behind
    a proxy for example.org/chat): the script and the page's client URL
    are virtual-host URLs, and output on that path is answered."""
    alice = Client(zope, 'alice')
    vh = '/VirtualHostBase/http/example.org:80/room/VirtualHostRoot/_vh_chat'
    status, html = alice.get(vh + '/@@live-chat')
    assert status == 200, html
    url = re.search(r'data-client-url="([^"]+)"', html).group(1)
    assert url.startswith('http://example.org/chat/@@live-chat/@@client/')
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert len(scripts) == 2, scripts
    for script, name in zip(scripts, ('livepage-common', 'livepage')):
        assert re.match(r'http://example\.org(/chat)?/\+\+resource\+\+'
                        r'zorgajax/%s\.js$' % name, script), script
    client = vh + url[len('http://example.org/chat'):]
    assert alice.input(client, 'say', ['via the proxy'])[0] == 200
    status, body = alice.get(client + '/output?outputNum=0')
    assert status == 200 and 'via the proxy' in body
    alice.close()
