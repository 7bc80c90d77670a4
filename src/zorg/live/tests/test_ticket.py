"""Connection tickets (issue 21, item 6): the rules of core/ticket.py,
then the real LiveServerHTTP, whose handshake takes a valid ticket
without asking the site and asks the site, as before, about any other.

A refused ticket is no answer at all: the site decides, so a forged
ticket of alice carried by an anonymous connection gets an anonymous
connection, which alice's pages refuse."""

import asyncio
import os
import re
import stat
import time

import pytest
import websockets

from zorg.live.core.ticket import MAX_TICKET, Tickets, siteOf, siteOfURL
from zorg.live.page.redactlog import redactText
from zorg.live.server.settings import Settings
from zorg.live.server.tickets import (
    SECRET_FILE, principalByTicket, secretFromFile, ticketOf, ticketsFor)
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import (
    ALICE, BOB, SITE_ZCML as DEMO_ZCML, Page, session)
from zorg.live.tests.test_exactness import output, post
from zorg.live.tests.test_websocket import LIMIT, Socket, readStream

SECRET = b's' * 32
SITE = 'example.com/site/@@live'
TICKET = re.compile(r'data-live-ticket="([^"]+)"')


# -- the rules (core/ticket.py) ----------------------------------------------

def forge(ticket):
    """`ticket` with the first character of its MAC changed."""
    head, mac = ticket.rsplit('.', 1)
    return '%s.%s%s' % (head, 'A' if mac[0] != 'A' else 'B', mac[1:])


def test_only_the_one_spelling_of_a_ticket_counts():
    """base64 spells a MAC (and a principal) several ways: the spare bits
    of the last character. Only the server's own spelling is valid."""
    tickets = Tickets(SECRET)
    for principal in ('alice', 'bob', 'carol'):
        ticket = tickets.issue(principal, SITE, now=1000)
        head, mac = ticket.rsplit('.', 1)
        alphabet = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                    '0123456789-_')
        spare = alphabet[alphabet.index(mac[-1]) ^ 1]
        assert tickets.check('%s.%s%s' % (head, mac[:-1], spare), SITE,
                             now=1000) is None
        parts = ticket.split('.')
        name = parts[2]
        parts[2] = name[:-1] + alphabet[alphabet.index(name[-1]) ^ 1]
        assert tickets.check('.'.join(parts), SITE, now=1000) is None


def test_a_ticket_names_its_principal_at_its_site_until_it_expires():
    tickets = Tickets(SECRET, lifetime=60)
    ticket = tickets.issue('alice', SITE, now=1000)
    assert tickets.check(ticket, SITE, now=1000) == 'alice'
    assert tickets.check(ticket, SITE, now=1059.9) == 'alice'
    assert tickets.check(ticket, SITE, now=1060) is None


def test_any_principal_id_fits():
    tickets = Tickets(SECRET)
    for principal in ('zope.anybody', 'a.b.c', 'Ünïcødé user', 'x' * 200,
                      '', 'with\nnewline'):
        assert tickets.check(tickets.issue(principal, SITE, 0), SITE,
                             1) == principal


@pytest.mark.parametrize('change', [
    'mac', 'principal', 'expiry', 'format'])
def test_a_changed_ticket_is_refused(change):
    tickets = Tickets(SECRET)
    parts = tickets.issue('alice', SITE, now=1000).split('.')
    if change == 'mac':
        parts[3] = ('A' if parts[3][0] != 'A' else 'B') + parts[3][1:]
    elif change == 'principal':
        parts[2] = 'Ym9i'     # bob
    elif change == 'expiry':
        parts[1] = str(int(parts[1]) + 1)
    else:
        parts[0] = '2'
    assert tickets.check('.'.join(parts), SITE, now=1000) is None


def test_a_ticket_is_for_the_credentials_it_was_issued_with():
    tickets = Tickets(SECRET)
    basic = 'Basic YWxpY2U6YWxpY2U='
    ticket = tickets.issue('alice', SITE, 1000, credentials=basic)
    assert tickets.check(ticket, SITE, 1000, credentials=basic) == 'alice'
    for other in ('', 'Basic Ym9iOmJvYg==', basic + ' '):
        assert tickets.check(ticket, SITE, 1000, credentials=other) is None
    plain = tickets.issue('alice', SITE, 1000)
    assert tickets.check(plain, SITE, 1000, credentials=basic) is None


def test_no_two_fields_read_alike():
    """A principal id with the separator of another field in it does
    not make another ticket's MAC."""
    tickets = Tickets(SECRET)
    ticket = tickets.issue('alice\n1', 'example.com', 1000)
    head, mac = ticket.rsplit('.', 1)
    assert tickets.check(ticket, 'example.com', 1000) == 'alice\n1'
    assert tickets.check(ticket, 'example.com\nalice', 1000) is None


def test_another_secret_or_site_refuses_it():
    ticket = Tickets(SECRET).issue('alice', SITE, now=1000)
    assert Tickets(b't' * 32).check(ticket, SITE, now=1000) is None
    for site in ('example.com/other/@@live', 'evil.test/site/@@live',
                 'example.com:8080/site/@@live'):
        assert Tickets(SECRET).check(ticket, site, now=1000) is None


@pytest.mark.parametrize('ticket', [
    '', '.', '1', '1...', '1.abc.YWxpY2U.AAAA', '1.-5.YWxpY2U.AAAA',
    '1.1060.***.AAAA', '1.1060.YWxpY2U.***', '1.1060.YWxpY2U.AAAA.x',
    '1.1060.%%%.AAAA', '1.1060.YWxpY2U', '1.1060.\u0661.AAAA',
    None, 1060, b'1.1060.YWxpY2U.AAAA'])
def test_a_malformed_ticket_is_refused(ticket):
    assert Tickets(SECRET).check(ticket, SITE, now=1000) is None


def test_an_oversized_ticket_is_refused_though_its_mac_is_right():
    tickets = Tickets(SECRET)
    ticket = tickets.issue('x' * MAX_TICKET, SITE, now=1000)
    assert len(ticket) > MAX_TICKET
    assert tickets.check(ticket, SITE, now=1000) is None
    flood = '1.1060.' + 'A' * (10 * MAX_TICKET) + '.AAAA'
    assert tickets.check(flood, SITE, now=1000) is None


def test_a_ticket_valid_longer_than_the_lifetime_allows_is_refused():
    """Issued while the lifetime was an hour; checked once it is a
    minute: refused (beyond a few seconds of clock skew)."""
    ticket = Tickets(SECRET, lifetime=3600).issue('alice', SITE, now=1000)
    assert Tickets(SECRET, lifetime=60).check(ticket, SITE, now=1000) is None
    skewed = Tickets(SECRET, lifetime=62).issue('alice', SITE, now=1000)
    assert Tickets(SECRET, lifetime=60).check(skewed, SITE,
                                              now=1000) == 'alice'


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        Tickets(b'short')
    with pytest.raises(ValueError, match='ticket-secret'):
        Settings(ticket_secret='short')


def test_neither_secret_nor_ticket_is_shown_whole():
    tickets = Tickets(SECRET)
    assert 'sss' not in repr(tickets)
    ticket = tickets.issue('alice', SITE, now=1000)
    mac = ticket.split('.')[3]
    for text in ('GET /@@live?ticket=%s HTTP/1.1' % ticket,
                 'GET /@@live/events?page=1,x,&ticket=%s' % ticket):
        assert mac not in redactText(text)
        assert 'ticket=1.1060.YWxp...' in redactText(text)


def test_the_site_is_the_host_and_the_live_path():
    assert siteOfURL('http://Example.com/site/@@live') == SITE
    assert siteOf('EXAMPLE.COM', '/site/@@live') == SITE
    tickets = Tickets(SECRET)
    ticket = tickets.issue('alice', SITE, time.time())
    assert principalByTicket(tickets, ticket, '/site/@@live',
                             [(b'host', b'example.com')]) == 'alice'
    assert principalByTicket(tickets, ticket, '/site/@@live',
                             [(b'host', b'evil.test')]) is None
    assert principalByTicket(tickets, ticket, '/other/@@live',
                             [(b'host', b'example.com')]) is None
    assert principalByTicket(tickets, None, '/site/@@live',
                             [(b'host', b'example.com')]) is None
    bound = tickets.issue('alice', SITE, time.time(), credentials='Basic x')
    assert principalByTicket(tickets, bound, '/site/@@live', [
        (b'host', b'example.com'), (b'authorization', b'Basic x')]) == \
        'alice'
    assert principalByTicket(tickets, bound, '/site/@@live',
                             [(b'host', b'example.com')]) is None


def test_the_ticket_of_a_query():
    assert ticketOf(b'ticket=1.2.3.4') == '1.2.3.4'
    assert ticketOf('page=1,x,&ticket=1.2.3.4&page=2,y,') == '1.2.3.4'
    assert ticketOf(b'page=1,x,') is None
    assert ticketOf('ticket=' + 'A' * (MAX_TICKET + 1)) is None
    assert ticketOf('&'.join(['a=1'] * 5000) + '&ticket=1.2.3.4') is None


# -- the secret ----------------------------------------------------------------

def test_the_secret_file_is_made_once_private_and_kept(tmp_path):
    path = str(tmp_path / SECRET_FILE)
    secret = secretFromFile(path)
    assert len(secret) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secretFromFile(path) == secret
    assert os.listdir(tmp_path) == [SECRET_FILE]   # no temporary left


def test_the_setting_comes_before_the_file(tmp_path):
    path = str(tmp_path / SECRET_FILE)
    settings = Settings(ticket_secret='x' * 20, ticket_secret_file=path)
    ticket = ticketsFor(settings).issue('alice', SITE, 1000)
    assert Tickets('x' * 20).check(ticket, SITE, 1000) == 'alice'
    assert not os.path.exists(path)


def test_without_a_setting_a_process_signs_with_its_own_secret():
    one, two = ticketsFor(Settings()), ticketsFor(Settings())
    ticket = one.issue('alice', SITE, 1000)
    assert one.check(ticket, SITE, 1000) == 'alice'
    assert two.check(ticket, SITE, 1000) is None


# -- the real server ---------------------------------------------------------

def serverTickets(server):
    """The Tickets of a running server: its secret is kept beside its
    FileStorage (zope.conf's default)."""
    path = os.path.join(server.dir, SECRET_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        return Tickets(f.read().strip())


def liveSite(server):
    return siteOfURL(server.url('@@live'))


def ticketOf_(page):
    return TICKET.search(page.html).group(1)


class TicketSocket(Socket):
    """A Socket whose URL carries `ticket`."""

    def __init__(self, server, ticket, headers=None):
        super().__init__(server, headers)
        if ticket is not None:
            self.url += '?ticket=' + ticket


def test_a_rendered_page_gets_a_ticket_of_its_principal_and_site(tmp_path):
    async def run(server):
        tickets = serverTickets(server)
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            ticket = ticketOf_(page)
            now = time.time()
            principal = tickets.check(ticket, liveSite(server), now,
                                      ALICE['Authorization'])
            assert principal is not None
            # for alice's credentials only
            assert tickets.check(ticket, liveSite(server), now) is None
            assert int(ticket.split('.')[1]) <= now + 60
            # Anonymous pages get one too (of the anonymous principal).
            other = await Page(server, s, 'zope/chat.html').open()
            assert tickets.check(ticketOf_(other), liveSite(server),
                                 now) not in (None, principal)
            # The secret file stays private and the same (made once).
            with open(os.path.join(server.dir, SECRET_FILE)) as f:
                assert f.read().strip()
        with open(os.path.join(server.dir, 'server.log')) as f:
            assert ticket.split('.')[3] not in f.read()

    with RunningServer(tmp_path, zcml=DEMO_ZCML,
                       refresh_interval=2) as server:
        asyncio.run(run(server))


def test_a_ticket_attaches_with_the_credentials_it_was_rendered_with(
        tmp_path):
    """Alice's ticket with alice's credentials: alice's connection, for
    the socket and for the shared SSE stream. Without them (or with
    bob's), the ticket does not count and the site decides: alice's page
    is refused."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            ticket = ticketOf_(page)
            async with TicketSocket(server, ticket, ALICE) as ws:
                assert (await ws.attach(1, page))['type'] == 'attached'
            for headers in ({}, BOB):
                async with TicketSocket(server, ticket, headers) as ws:
                    error = await ws.attach(1, page)
                    assert error['error'] == 'forbidden', (headers, error)
            async with s.get(server.url('@@live/events'), headers=ALICE,
                             params=[('page', '1,%s,' % page.uuid),
                                     ('ticket', ticket)]) as r:
                assert r.status == 200
                message = (await readStream(r, lambda ms: ms))[0]
                assert message['type'] == 'attached', message

    with RunningServer(tmp_path, zcml=DEMO_ZCML,
                       refresh_interval=2) as server:
        asyncio.run(run(server))


def refusedTickets(server, page):
    """Tickets of alice that must not count, by what is wrong."""
    tickets = serverTickets(server)
    site, now = liveSite(server), time.time()
    basic = ALICE['Authorization']
    genuine = ticketOf_(page)
    principal = tickets.check(genuine, site, now, basic)
    return {
        'forged': forge(genuine),
        'expired': tickets.issue(principal, site, now - 61, basic),
        'other-site': tickets.issue(principal, 'evil.test/@@live', now,
                                    basic),
        'other-host': tickets.issue(
            principal, siteOfURL(server.url('@@live').replace(
                '127.0.0.1', 'localhost')), now, basic),
        'other-credentials': tickets.issue(principal, site, now,
                                           BOB['Authorization']),
        'malformed': genuine.replace('.', ':'),
        'oversized': genuine + 'A' * (2 * MAX_TICKET),
    }


def test_a_refused_ticket_leaves_it_to_the_site(tmp_path):
    """Forged, expired, other-site, other-credentials, malformed and
    oversized tickets of alice: carried by an anonymous connection, the
    site says anonymous, and alice's page is refused; carried with
    alice's credentials, the site says alice, and it attaches."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            for why, ticket in refusedTickets(server, page).items():
                async with TicketSocket(server, ticket) as ws:
                    error = await ws.attach(1, page)
                    assert error['type'] == 'error', (why, error)
                    assert error['error'] == 'forbidden', (why, error)
                async with TicketSocket(server, ticket, ALICE) as ws:
                    attached = await ws.attach(1, page)
                    assert attached['type'] == 'attached', (why, attached)
                async with s.get(server.url('@@live/events'), params=[
                        ('page', '1,%s,' % page.uuid),
                        ('ticket', ticket)]) as r:
                    assert r.status == 200, why
                    message = (await readStream(r, lambda ms: ms))[0]
                    assert message['error'] == 'forbidden', (why, message)

    with RunningServer(tmp_path, zcml=DEMO_ZCML,
                       refresh_interval=2) as server:
        asyncio.run(run(server))


def test_another_principals_ticket_cannot_attach_your_page(tmp_path):
    """Bob's own, valid ticket (with his credentials) makes the
    connection bob's: alice's page is refused, and input for it goes
    nowhere. Bob's ticket beside alice's credentials does not count:
    the site says alice, and her page attaches, his does not."""
    async def run(server):
        async with session() as s:
            alices = await Page(server, s, 'zope/chat.html', ALICE).open()
            bobs = await Page(server, s, 'zope/chat.html', BOB).open()
            for headers in (BOB, {}):
                async with TicketSocket(server, ticketOf_(bobs),
                                        headers) as ws:
                    error = await ws.attach(1, alices)
                    assert error['error'] == 'forbidden', error
                    await ws.send(type='input', page=1, id='b1',
                                  handler='say', arguments=['forged'])
                    await ws.until(lambda m: m['type'] == 'error', 2)
            async with TicketSocket(server, ticketOf_(bobs), BOB) as ws:
                assert (await ws.attach(2, bobs))['type'] == 'attached'
            async with TicketSocket(server, ticketOf_(bobs), ALICE) as ws:
                assert (await ws.attach(1, alices))['type'] == 'attached'
                error = await ws.attach(2, bobs)
                assert error['error'] == 'forbidden', error

    with RunningServer(tmp_path, zcml=DEMO_ZCML,
                       refresh_interval=2) as server:
        asyncio.run(run(server))


def test_a_handshake_with_a_ticket_does_not_wait_for_the_site(tmp_path):
    """Both worker threads of the site are held (two inputs that
    published an event, which the page reads in the loop, and stopped;
    nothing lets them go on before the server is killed). A
    handshake without a ticket waits for a thread; one with the page's
    ticket opens and attaches the page meanwhile."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'snapshot.html').open()
            others = [await Page(server, s, 'snapshot.html').open()
                      for n in range(2)]
            held = [asyncio.ensure_future(post(
                s, server, other.uuid, 'announceAndHold',
                ['held-%d' % n, 'ticket-%d' % n]))
                for n, other in enumerate(others)]
            seen, num, last = set(), 0, None
            deadline = time.monotonic() + LIMIT
            while seen != {'held-0', 'held-1'}:
                assert time.monotonic() < deadline, seen
                lines, last = await output(s, server, page.uuid, num, last)
                seen.update(lines)
                num += 1
            waiting = asyncio.ensure_future(websockets.connect(
                Socket(server).url, open_timeout=None))
            try:
                async with TicketSocket(server, ticketOf_(page)) as ws:
                    assert (await ws.attach(1, page))['type'] == 'attached'
                    # The site cannot have answered anyone meanwhile.
                    assert not waiting.done()
                    assert not any(task.done() for task in held)
            finally:
                server.kill()
                for task in held + [waiting]:
                    task.cancel()
                await asyncio.gather(*held, waiting, return_exceptions=True)

    with RunningServer(tmp_path, threads=2, refresh_interval=2) as server:
        asyncio.run(run(server))
