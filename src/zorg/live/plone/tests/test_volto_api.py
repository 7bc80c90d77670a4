"""What Volto's add-on does, over the wire, on a real Plone site: log in
with plone.restapi (its JWT), ask ``@live`` for a live page of the
content (the token in the Authorization header, as Volto's API calls
send it), open the site's ``@@live`` WebSocket with the token in Volto's
``auth_token`` cookie, attach the page, and hear who comes and what
changes. (volto-zorg-live/ does exactly this in the browser.)
"""

import json

import pytest
from websockets.sync.client import connect

from zorg.live.plone.tests.helpers import PloneClient, password
from zorg.live.plone.tests.instance import ViewInstance

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def plone(tmp_path_factory):
    instance = ViewInstance(tmp_path_factory.mktemp('plone') / 'instance',
                            threads=2, refresh_interval=5,
                            heartbeat_interval=2)
    with instance:
        yield instance


def token(plone, login):
    client = PloneClient(plone)
    status, body = client.request(
        'POST', '/Plone/@login', json.dumps(
            {'login': login, 'password': password(login)}),
        {'Content-Type': 'application/json', 'Accept': 'application/json'})
    client.close()
    assert status == 200, body
    return json.loads(body)['token']


def livePage(plone, jwt, path):
    client = PloneClient(plone)
    status, body = client.request('GET', path + '/@live', None, {
        'Accept': 'application/json', 'Authorization': 'Bearer ' + jwt})
    client.close()
    return status, json.loads(body)


def socket(plone, jwt):
    origin = 'http://127.0.0.1:%d' % plone.port
    return connect('ws://127.0.0.1:%d/Plone/@@live' % plone.port,
                   additional_headers={'Cookie': 'auth_token=' + jwt,
                                       'Origin': origin}, open_timeout=30)


def attach(ws, page, number=1):
    ws.send(json.dumps({'type': 'attach', 'page': number,
                        'uuid': page['uuid'], 'url': page['clientURL'],
                        'lastEventId': page['lastEventId']}))
    return json.loads(ws.recv(timeout=30))


def eventsUntil(ws, condition):
    seen = []
    while not condition(seen):
        message = json.loads(ws.recv(timeout=30))
        if message['type'] == 'events':
            seen += message['events']
    return seen


def test_a_volto_viewer_hears_presence_and_the_notice_over_the_socket(
        plone):
    dan = token(plone, 'dan')
    status, page = livePage(plone, dan, '/Plone/published')
    assert status == 200, page
    assert page['online'] == [{'id': 'dan', 'title': 'Dan Brown'}]
    with socket(plone, dan) as ws:
        assert attach(ws, page) == {'type': 'attached', 'page': 1}
        # Ann comes (her own Volto page), then saves.
        status, _ = livePage(plone, token(plone, 'ann'), '/Plone/published')
        assert status == 200
        eventsUntil(ws, lambda seen: any(
            e['event'] == 'join' and e['principal'] == 'ann' for e in seen))
        PloneClient(plone, 'ann').save('/Plone/published', 'Saved in Volto')
        seen = eventsUntil(ws, lambda seen: any(
            e.get('target') == 'zorg-live-notice' for e in seen))
        notice = [e for e in seen if e.get('target') == 'zorg-live-notice']
        assert 'changed by <b>Ann Arbor</b>' in notice[0]['html']


def test_the_socket_knows_only_a_valid_token(plone):
    """A page registered with Dan's token cannot be attached on a socket
    whose cookie is no token, or another user's: the socket is
    anonymous, or Fay's."""
    dan = token(plone, 'dan')
    status, page = livePage(plone, dan, '/Plone/published')
    assert status == 200
    for cookie in ('not-a-token', token(plone, 'fay')):
        with socket(plone, cookie) as ws:
            answer = attach(ws, page)
            assert answer['type'] == 'error', answer
            assert answer['error'] == 'forbidden'
    # Without View, no page: Fay may not view the private document.
    status, body = livePage(plone, token(plone, 'fay'), '/Plone/private')
    assert status in (401, 403), body


def ticketSocket(plone, ticket):
    """The socket as volto-zorg-live opens it with the @live answer's
    ticket, but without the token cookie: only the ticket says who."""
    origin = 'http://127.0.0.1:%d' % plone.port
    return connect('ws://127.0.0.1:%d/Plone/@@live?ticket=%s'
                   % (plone.port, ticket),
                   additional_headers={'Origin': origin}, open_timeout=30)


def test_the_live_answer_carries_a_ticket_for_the_socket(plone):
    """@live answers a connection ticket: on a socket without the token
    cookie, it alone makes the socket Dan's (the site is not asked), and
    his page attaches. A changed ticket counts for nothing: the socket is
    anonymous, and his page is refused."""
    dan = token(plone, 'dan')
    status, page = livePage(plone, dan, '/Plone/published')
    assert status == 200
    assert page['ticket'], page
    with ticketSocket(plone, page['ticket']) as ws:
        assert attach(ws, page) == {'type': 'attached', 'page': 1}
    forged = page['ticket'][:-4] + ('AAAA' if not page['ticket'].endswith(
        'AAAA') else 'BBBB')
    with ticketSocket(plone, forged) as ws:
        answer = attach(ws, page)
        assert answer['type'] == 'error', answer
        assert answer['error'] == 'forbidden'
