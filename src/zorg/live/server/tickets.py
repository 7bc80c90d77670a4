"""The live server's connection tickets (core/ticket.py): its secret,
the tickets it offers the pages it renders, and the handshake's check.

The secret, in this order:

1. the setting ``ticket-secret`` (the same in every process of a site);
2. the file of ``ticket-secret-file``, made when it does not exist (32
   random bytes, hex, mode 0600; made under another name and linked into
   place, so that processes starting together all read one whole
   secret). With zope.conf its default is ``zorg-live-ticket.key``
   beside the site's FileStorage (server/config.py);
3. else a secret of this process only: tickets work in the process that
   rendered the page, and elsewhere the site is asked, as without one.

Neither the secret nor a ticket is logged (page/redactlog.py shortens a
``ticket=`` in any URL logged).
"""

import binascii
import functools
import logging
import os
import stat
import tempfile
import time
from urllib.parse import parse_qs

from zorg.live.core.ticket import TICKETS, MAX_TICKET, Tickets, siteOf

log = logging.getLogger('zorg.live.server')

SECRET_BYTES = 32
SECRET_FILE = 'zorg-live-ticket.key'
# A query with more fields is not searched for a ticket (the shared
# stream's lists its pages: at most max-connection-pages).
MAX_FIELDS = 1000


def secretFromFile(path):
    """The secret in `path`, made first if there is none."""
    if not os.path.exists(path):
        folder = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(dir=folder, prefix='.ticket-')
        try:
            with os.fdopen(fd, 'w') as f:     # mkstemp: mode 0600
                f.write(binascii.hexlify(os.urandom(SECRET_BYTES)).decode())
            try:
                os.link(temporary, path)
                log.info('made the connection ticket secret %s', path)
            except FileExistsError:
                pass      # another process made it first: that one holds
        finally:
            os.unlink(temporary)
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning('the ticket secret %s may be read by others (mode %o): '
                    'chmod 600 it', path, stat.S_IMODE(mode))
    with open(path) as f:
        secret = f.read().strip()
    if not secret:
        raise ValueError('the ticket secret file %s is empty: delete it '
                         '(it is made again) or write a secret in it' % path)
    return secret


def ticketsFor(settings):
    """The `Tickets` of these settings (the secret as said above)."""
    if settings.ticket_secret:
        secret = settings.ticket_secret
    elif settings.ticket_secret_file:
        secret = secretFromFile(settings.ticket_secret_file)
    else:
        secret = os.urandom(SECRET_BYTES)
        log.info('connection tickets are signed with a secret of this '
                 'process only (set ticket-secret or ticket-secret-file '
                 'when several processes serve the site)')
    return Tickets(secret, settings.ticket_lifetime)


def offerTickets(app, tickets):
    """WSGI middleware: the pages `app` renders may issue tickets, for
    the request's credentials (taken here: Zope's publisher removes the
    Authorization header from the environ it gives the page)."""
    def offered(environ, start_response):
        environ[TICKETS] = functools.partial(
            tickets.issue,
            credentials=environ.get('HTTP_AUTHORIZATION', ''))
        return app(environ, start_response)
    return offered


def ticketOf(query):
    """The ``ticket`` parameter of a query string (bytes or text), or
    None; an oversized query is not parsed for it."""
    if isinstance(query, bytes):
        query = query.decode('latin-1')
    if 'ticket=' not in query:
        return None
    try:
        found = parse_qs(query, max_num_fields=MAX_FIELDS).get('ticket')
    except ValueError:
        return None
    if not found or len(found[0]) > MAX_TICKET:
        return None
    return found[0]


def principalByTicket(tickets, ticket, path, headers, now=None):
    """The principal of a valid `ticket` for the site at `path` (the
    ``@@live`` path) and the request's Host and Authorization headers,
    or None."""
    if ticket is None:
        return None
    host = credentials = b''
    for name, value in headers:
        if name == b'host':
            host = value
        elif name == b'authorization':
            credentials = value
    return tickets.check(ticket, siteOf(host.decode('latin-1'), path),
                         time.time() if now is None else now,
                         credentials.decode('latin-1'))
