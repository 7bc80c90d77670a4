"""What every request of the site passes before the Zope publisher sees it:
cross-site requests refused, input bodies bounded.

Cross-site request forgery: a page of another site makes the visitor's
browser send a request here, with the visitor's cookies or HTTP auth. Every
browser in use tells where a request comes from: ``Sec-Fetch-Site`` (the
browser's own header, which a page cannot set) and ``Origin`` (on every
POST). A request that changes state -- any method but GET, HEAD and
OPTIONS, and the protocol's input, register and close steps whatever their
method -- is refused with 403 ``cross-site`` when

- ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site`` (another port or
  subdomain is another origin: it may be another application), or
- ``Origin`` names another origin than the site's own -- the request's
  scheme (or a trusted proxy's ``X-Forwarded-Proto``), its ``Host`` and
  port, the scheme's default port filled in -- nor one of the setting
  trusted-origins, compared the same way; ``Origin: null`` (sandboxed
  frames, data: URLs) is never trusted.

A request with neither header is not a browser's request from a page (a
script, curl, ``zorg-live send``) and passes: ``@@notify`` with credentials
keeps working for scripts. This needs no token in the page, so a cached or
static copy of a page stays valid.

The same check (`crossSite`) guards the close step that LiveServerHTTP
answers in its event loop (server/asgi.py and its drivers), and is the one to use for a
WebSocket handshake.
"""

import io
import re
from urllib.parse import urlsplit

from zorg.live.interfaces import CrossSite, TooLarge
from zorg.live.page import redactlog
from zorg.live.page.manager import markRequests
from zorg.live.core.wire import wsgiError

SAFE_METHODS = ('GET', 'HEAD', 'OPTIONS')
# The steps of the protocol that change state, whatever the method.
STATE_STEP = re.compile(
    r'/@@client/(?:[A-Za-z0-9_-]{1,64}/input|register|'
    r'[A-Za-z0-9_-]{1,64}/close)$')
INPUT_STEP = re.compile(r'/@@client/[A-Za-z0-9_-]{1,64}/input$')
DEFAULT_PORTS = {'http': 80, 'https': 443}


def originOf(text, scheme=None):
    """``(scheme, host, port)`` of an origin ``scheme://host[:port]``, the
    default port of its scheme filled in; or, with `scheme`, of a Host
    header ``host[:port]`` of a site served over `scheme`. None for
    anything else (``null``, another scheme, garbage). Two origins are
    the same only when all three parts are: ``http://example.org`` is
    not the https site ``example.org`` (a network attacker can write
    pages of the first)."""
    if not text:
        return None
    text = text.strip()
    if scheme is not None:
        text = '%s://%s' % (scheme, text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    name = parts.scheme.lower()
    if name not in DEFAULT_PORTS or not parts.hostname:
        return None
    if scheme is None and (parts.path or parts.query or parts.fragment):
        return None
    return name, parts.hostname.lower(), port or DEFAULT_PORTS[name]


def sameOrigin(origin, host, scheme='http'):
    """Whether the Origin header `origin` names the site at `host` (the
    Host header) served over `scheme` (the request's, or a trusted
    proxy's X-Forwarded-Proto). A Host without a port (a proxy that sent
    ``$host``, or the default port) means the scheme's default port."""
    site = originOf(host, scheme)
    return site is not None and originOf(origin) == site


def trustedOrigins(text):
    """The setting trusted-origins (space-separated origins) as the set of
    whole origins `crossSite` compares with."""
    return frozenset(filter(None, map(originOf, text.split())))


def crossSite(get, trusted=(), scheme='http'):
    """Why a request is a cross-site one from a browser, or None.

    `get(name)` gives a request header (lower-case name) or None;
    `trusted` is a set of other origins that may send (`trustedOrigins`);
    `scheme` is the site's own scheme for this request."""
    fetchSite = (get('sec-fetch-site') or '').strip().lower()
    if fetchSite in ('cross-site', 'same-site'):
        return ('this request comes from a page of another site '
                '(Sec-Fetch-Site: %s)' % fetchSite)
    origin = get('origin')
    if origin is None:
        return None
    origin = origin.strip()
    if originOf(origin) in trusted or sameOrigin(origin, get('host'),
                                                  scheme):
        return None
    return ('this request comes from a page of another origin (%s); only '
            'pages of this site (or of the setting trusted-origins) may '
            'send it' % origin[:100])


def refusal(trusted=()):
    """A CrossSite error for a request from a page of another origin:
    ``check(get, scheme)``; `trusted` is the setting's text or origins."""
    if isinstance(trusted, str):
        trusted = trustedOrigins(trusted)
    else:
        trusted = frozenset(filter(None, map(originOf, trusted)))

    def check(get, scheme='http'):
        why = crossSite(get, trusted, scheme)
        return CrossSite(why[0].upper() + why[1:] + '.') if why else None
    return check


def changesState(method, path):
    return method not in SAFE_METHODS or STATE_STEP.search(path) is not None


def headerGetter(headers):
    """`get` over ASGI headers (lowercase bytes pairs; the last of a
    repeated header counts), for `crossSite` outside WSGI."""
    values = dict(headers)

    def get(name):
        value = values.get(name.encode('latin-1'))
        return None if value is None else value.decode('latin-1')
    return get


def environGetter(environ):
    def get(name):
        if name == 'host':
            return environ.get('HTTP_HOST')
        return environ.get('HTTP_' + name.upper().replace('-', '_'))
    return get


def siteApplication(app, manager, settings, transports=('sse', 'longpoll')):
    """The site's WSGI application as both servers run it: a request is
    refused here when it must be, else marked (manager.markRequests: the
    broker's position before the database opens, and the `transports` the
    server offers) and passed on."""
    return guardRequests(markRequests(app, manager, transports), settings)


def guardRequests(app, settings):
    """WSGI middleware: refuse cross-site state changes (403) and input
    bodies over max-input-size (413) before `app` sees them."""
    # The servers' requests carry page ids: no log line holds one whole.
    redactlog.install()
    check = refusal(settings.trusted_origins)
    limit = settings.max_input_size

    def guarded(environ, start_response):
        path = environ.get('PATH_INFO', '')
        if changesState(environ.get('REQUEST_METHOD', 'GET'), path):
            error = check(environGetter(environ),
                          environ.get('wsgi.url_scheme', 'http'))
            if error is not None:
                drain(environ)
                return wsgiError(error, start_response)
        if INPUT_STEP.search(path):
            # Read here, up to the limit: a form-encoded body is parsed
            # by the publisher before any view could measure it.
            length = environ.get('CONTENT_LENGTH') or ''
            if length.isdigit() and int(length) > limit:
                return wsgiError(inputTooLarge(limit), start_response)
            body = environ['wsgi.input'].read(
                min(int(length), limit + 1) if length.isdigit()
                else limit + 1)
            if len(body) > limit:
                return wsgiError(inputTooLarge(limit), start_response)
            environ['wsgi.input'] = io.BytesIO(body)
            environ['CONTENT_LENGTH'] = str(len(body))
        return app(environ, start_response)
    return guarded


DRAIN = 65536


def drain(environ):
    """Read a small refused body, so that the connection (a proxy's
    kept-alive one) stays usable and the answer is not cut short; a larger
    one is left unread (the server closes that connection)."""
    length = environ.get('CONTENT_LENGTH') or ''
    if length.isdigit() and 0 < int(length) <= DRAIN:
        try:
            environ['wsgi.input'].read(int(length))
        except Exception:
            pass   # the client went away: nothing to answer anyway


def inputTooLarge(limit):
    return TooLarge('the input body is larger than %d bytes (setting '
                    'max-input-size)' % limit)
