"""Connection tickets: who a browser's shared connection belongs to,
without asking the site again.

Opening a WebSocket (or the shared SSE stream) must say whose it is. The
site knows (the publisher authenticates the request's credentials), but
asking it costs a worker thread and about 2.5 ms of CPU per handshake:
after a restart, ten thousand browsers reconnecting cost half a minute of
a core before the first event flows. The page that the browser shows was
rendered by the publisher moments before, for the same principal, so the
render hands the browser a ticket that says so, and the live server
checks it in the event loop: one HMAC, no thread, no site request.

A ticket is the text ``1.<expiry>.<principal>.<mac>``:

- ``1`` is the format;
- ``expiry`` is when it stops being valid, in whole seconds of the Unix
  epoch (wall-clock time, so that a ticket rendered by one process can be
  checked by another);
- ``principal`` is the principal id, base64url without padding (any
  characters an id may hold);
- ``mac`` is HMAC-SHA256, keyed with the site secret, over the format,
  the site, the principal, the expiry and the credentials (a JSON list:
  no two of them read alike), base64url without padding.

The site (what tells the sites of one server apart: the host and the
path of its ``@@live`` URL) and the credentials are in the MAC but not in
the ticket: the checker supplies those of the handshake it checks, so a
ticket of another site (or another host) fails like a forged one.

The credentials are the request's ``Authorization`` header (HTTP basic
or bearer authentication), empty without one. A connection's input runs
through the site with the credentials of its handshake, so a connection
may be its ticket's principal only when it carries the credentials the
page was rendered with; a browser that sends them only once challenged
(basic authentication outside the page's path) is challenged by the site
first, and its next handshake, with them, is taken by the ticket.
Cookies are not bound: a site's scripts change them for reasons of their
own, and a ticket that never matched would be no use.

Rules (each a test in tests/test_ticket.py):

1. A ticket is refused, never trusted in part, when it is longer than
   MAX_TICKET, not of the form above, of another format, signed with
   another secret or for another site, principal or credentials (the MAC,
   compared in constant time), expired, or valid for longer than the lifetime allows
   (a ticket from a time the lifetime was longer). A refused ticket is
   no answer: the caller asks the site as if there were no ticket.
2. A valid ticket says only who the principal was when the page was
   rendered. Logging out of a cookie session, or logging in as someone
   else, does not take back a ticket already handed out: it stays valid
   until its expiry, so the lifetime is short (setting ticket-lifetime,
   60 seconds). After that, the connection is authenticated by the site,
   as without one.
3. Neither a ticket nor the secret is logged in full (`redact`).

The clock is passed in (``now``): the rules are tested without waiting.

    >>> tickets = Tickets(b'k' * 32, lifetime=60)
    >>> ticket = tickets.issue('alice', 'example.com/site/@@live', now=1000)
    >>> ticket.split('.')[:3]
    ['1', '1060', 'YWxpY2U']
    >>> tickets.check(ticket, 'example.com/site/@@live', now=1030)
    'alice'
    >>> tickets.check(ticket, 'example.com/other/@@live', now=1030)
    >>> tickets.check(ticket, 'example.com/site/@@live', now=1061)
    >>> tickets.check(ticket, 'example.com/site/@@live', now=1030,
    ...               credentials='Basic Ym9iOmJvYg==')
    >>> redact(ticket)
    '1.1060.YWxp...'
"""

import base64
import binascii
import hmac
import json
from urllib.parse import urlsplit

FORMAT = '1'
# The WSGI environ key under which a server that checks tickets offers
# the pages it renders `issue(principal, site, now)`: its Tickets' issue
# for the request's credentials (server/tickets.py).
TICKETS = 'zorg.live.tickets'
# Longer tickets are refused before anything is decoded: a principal id
# of some hundred characters fits, a flood does not.
MAX_TICKET = 512
# Seconds a ticket's expiry may lie beyond now + lifetime: the clocks of
# the processes that render and that check may differ a little.
SKEW = 5
MIN_SECRET = 16


def _encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _decode(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def siteOf(host, path):
    """The site a ticket is bound to: the host (as the browser names it
    in the Host header) and the path of the site's ``@@live`` URL.

    >>> siteOf('Example.com:8080', '/plone/@@live')
    'example.com:8080/plone/@@live'
    """
    return '%s%s' % (host.lower(), path)


def siteOfURL(liveURL):
    """The site of a page's ``@@live`` URL (what the page renders).

    >>> siteOfURL('http://Example.com:8080/plone/@@live')
    'example.com:8080/plone/@@live'
    """
    parts = urlsplit(liveURL)
    return siteOf(parts.netloc, parts.path)


def redact(ticket):
    """A ticket as it may appear in logs: its format and expiry, and no
    more than the start of the principal (never the MAC)."""
    parts = str(ticket).split('.')
    if len(parts) != 4:
        return '%s...' % str(ticket)[:4]
    return '%s.%s.%s...' % (parts[0][:4], parts[1][:12], parts[2][:4])


class Tickets:
    """Issue and check the connection tickets of one secret."""

    def __init__(self, secret, lifetime=60.0):
        if isinstance(secret, str):
            secret = secret.encode('utf-8')
        if len(secret) < MIN_SECRET:
            raise ValueError('a ticket secret needs at least %d bytes'
                             % MIN_SECRET)
        self._secret = secret
        self.lifetime = lifetime

    def __repr__(self):
        return '<Tickets lifetime=%gs>' % self.lifetime   # not the secret

    def _mac(self, site, principal, expiry, credentials):
        message = json.dumps([FORMAT, site, principal, expiry, credentials])
        # hmac.digest with the name: OpenSSL's one-shot HMAC, no object.
        return hmac.digest(self._secret, message.encode('utf-8'), 'sha256')

    def issue(self, principal, site, now, credentials=''):
        """A ticket for `principal` at `site`, for requests with
        `credentials`, valid for the lifetime from `now` (seconds of the
        epoch)."""
        expiry = int(now + self.lifetime)
        return '.'.join((FORMAT, str(expiry),
                         _encode(principal.encode('utf-8')),
                         _encode(self._mac(site, principal, expiry,
                                           credentials))))

    def check(self, ticket, site, now, credentials=''):
        """The principal id of a valid `ticket` for `site` and
        `credentials` at `now`, else None (rule 1)."""
        if not isinstance(ticket, str) or len(ticket) > MAX_TICKET:
            return None
        parts = ticket.split('.')
        if len(parts) != 4 or parts[0] != FORMAT or not parts[1].isdigit():
            return None
        try:
            principal = _decode(parts[2]).decode('utf-8')
        except (binascii.Error, ValueError):
            return None
        expiry = int(parts[1])
        # Text against text: base64 has several spellings of one MAC
        # (the last character's spare bits); only ours counts.
        expected = _encode(self._mac(site, principal, expiry, credentials))
        if not hmac.compare_digest(parts[3].encode('utf-8'),
                                   expected.encode('ascii')):
            return None
        if _encode(principal.encode('utf-8')) != parts[2]:
            return None
        if not now < expiry <= now + self.lifetime + SKEW:
            return None
        return principal
