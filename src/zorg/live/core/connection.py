"""The rules of a shared connection: many pages of one person over one
WebSocket (or one SSE stream), the messages it carries and who may attach.

A browser keeps one connection per site, shared by its tabs (livepage.js
holds it in a SharedWorker, or in one tab elected with Web Locks). The
rules, sans I/O (server/livesocket.py and server/asgi.py drive them):

1. A connection belongs to the principal its handshake was authenticated
   as (the site's credentials, checked by the publisher).
2. A page attaches by its page id under a small page number chosen by the
   connection's owner (1 .. max-connection-pages); every message about
   the page names that number. A number in use is refused.
3. Only a page of the connection's principal attaches (403-like error,
   nothing changes): a page id is a capability for reading, but the
   connection's credentials are what input runs as.
4. Each page keeps its own delivery state: the rules of delivery.py apply
   per page, unchanged (the stream rules: a page starts at its last event
   id, gets everything after it once and in order, or a reload).
5. Attaching a page id that is attached elsewhere takes it over, as a new
   SSE stream supersedes an old one.

    >>> parseMessage('{"type":"attach","page":1,"uuid":"abc",'
    ...              '"lastEventId":"7","url":"http://x/p/@@client/abc"}')[:2]
    ('attach', 1)
    >>> parseMessage('{"type":"attach","page":0,"uuid":"abc"}')
    Traceback (most recent call last):
    ...
    zorg.live.interfaces.BadRequest: "page" must be a number from 1 to 100
    >>> parseMessage('{"type":"shout"}')
    Traceback (most recent call last):
    ...
    zorg.live.interfaces.BadRequest: unknown message type 'shout'; a page sends attach, detach, input or ping
"""

import json
import re

from zorg.live.interfaces import BadRequest, Forbidden
from zorg.live.core.inputs import checkDepth, checkInputId

KINDS = ('attach', 'detach', 'input', 'ping')
PAGE_ID = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')
MAX_URL = 2048


def _field(message, name, kinds, page=None, required=True):
    value = message.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kinds) or isinstance(value, bool):
        error = BadRequest('"%s" is missing or not a %s' % (
            name, 'text' if kinds is str else 'number'))
        error.page = page
        raise error
    return value


def parseMessage(text, maxPages=100, maxDepth=32):
    """``(kind, page number or None, message)`` of one message from a
    page's owner; BadRequest (with ``.page`` when it named one) says what
    is wrong."""
    checkDepth(text, maxDepth)
    try:
        message = json.loads(text)
    except ValueError as e:
        raise BadRequest('a message is one JSON object; this is not JSON: '
                         '%s' % e)
    if not isinstance(message, dict):
        raise BadRequest('a message is one JSON object with a "type"')
    return checkMessage(message, maxPages)


def checkMessage(message, maxPages=100):
    """`parseMessage` of a message already decoded (a dict)."""
    kind = message.get('type')
    if kind not in KINDS:
        raise BadRequest('unknown message type %r; a page sends %s'
                         % (kind if isinstance(kind, str) else
                            json.dumps(kind)[:40],
                            ', '.join(KINDS[:-1]) + ' or ' + KINDS[-1]))
    if kind == 'ping':
        return kind, None, message
    page = message.get('page')
    if (not isinstance(page, int) or isinstance(page, bool)
            or not 1 <= page <= maxPages):
        raise BadRequest('"page" must be a number from 1 to %d' % maxPages)
    if kind == 'attach':
        uuid = _field(message, 'uuid', str, page)
        if not PAGE_ID.match(uuid):
            error = BadRequest('"uuid" is not a page id')
            error.page = page
            raise error
        _field(message, 'lastEventId', str, page, required=False)
        url = _field(message, 'url', str, page, required=False)
        if url is not None and len(url) > MAX_URL:
            error = BadRequest('"url" is longer than %d characters' % MAX_URL)
            error.page = page
            raise error
    elif kind == 'input':
        try:
            checkInputId(message.get('id'))
        except BadRequest as error:
            error.page = page
            raise
        _field(message, 'handler', str, page)
    return kind, page, message


def checkAttach(principal, client):
    """Rule 3: `client` (a page) may attach to a connection of
    `principal`; Forbidden otherwise."""
    if client.principal != principal:
        raise Forbidden('This page belongs to another user: a connection '
                        'carries the pages of the user it was opened by. '
                        'Reload the page.')


def inputPath(url, uuid):
    """The path of page `uuid`'s input step from the client URL its owner
    gave when attaching (``<page URL>/@@client/<uuid>``); BadRequest when
    it is not that page's client URL. The publisher checks the rest (the
    page's permission, principal, class and group), as for a POST."""
    if url is None:
        raise BadRequest('attach with the page\'s "url" (its client URL) to '
                         'send input over the connection')
    path = re.sub(r'^[a-z]+://[^/]*', '', url).split('?')[0]
    if not path.startswith('/') or not path.endswith('/@@client/' + uuid):
        raise BadRequest('"url" is not the client URL of this page')
    return path + '/input'
