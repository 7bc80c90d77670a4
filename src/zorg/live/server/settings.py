"""Every tunable of zorg.live, declared once (after waitress.adjustments).

zope.conf's ``<zorg-live>`` section, the PasteDeploy ini and the
``ZORG_LIVE_<NAME>`` environment variables are all read through this table;
the ZConfig schema keys are generated from it.
"""

import os
import re
import resource

from zorg.live.core.ticket import MIN_SECRET


def _size(value):
    """Bytes from '1048576', '512KB', '10MB' or '1GB'."""
    text = str(value).strip().upper().replace(' ', '')
    for suffix, factor in (('GB', 1 << 30), ('MB', 1 << 20), ('KB', 1 << 10),
                           ('B', 1)):
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(text)


def _bool(value):
    """True or False from 'on'/'off', 'true'/'false', 'yes'/'no', '1'/'0'."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('on', 'true', 'yes', '1'):
        return True
    if text in ('off', 'false', 'no', '0', ''):
        return False
    raise ValueError(value)


_bool.__name__ = 'on/off'


def _default_connections():
    # Each connection is a file descriptor; leave room for files, the
    # database, redis and the worker threads' sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 65536
    return max(100, limit - 500)


# name, type, default, what it means
TABLE = [
    ('threads', int, 4,
     'Worker threads of the Zope publisher (pages, input handlers, '
     'resources). Waiting pages never use one under LiveServerHTTP.'),
    ('refresh-interval', float, 25.0,
     'Seconds one long-poll output request is held before it answers '
     'idle. Keep it below your reverse proxy\'s read timeout.'),
    ('client-timeout', float, 60.0,
     'Seconds after its last request before a silent page is dropped '
     '(and its principal leaves the group when it was the last page).'),
    ('heartbeat-interval', float, 15.0,
     'Seconds between SSE comment lines that keep proxies from closing '
     'an idle stream.'),
    ('max-pages-per-principal', int, 30,
     'Open pages one principal may have; a page over the cap gets an '
     'error event and is closed.'),
    ('history-size', int, 1000,
     'Events kept per group, so that a page that reconnects gets what it '
     'missed; a page that falls further behind is told to reload.'),
    ('max-connections', int, _default_connections,
     'Open connections the live server accepts; further ones get 503 '
     'with Retry-After. Default: the open-file limit minus 500.'),
    ('retry-after', int, 5,
     'Seconds the 503 answer asks a client to wait.'),
    ('max-body-size', _size, 100 << 20,
     'Largest request body (413 above it). Sizes accept KB, MB, GB.'),
    ('header-timeout', float, 10.0,
     'Seconds a new connection may take to send its request headers.'),
    ('send-timeout', float, 30.0,
     'Seconds a slow reader may block one write before it is dropped.'),
    ('graceful-timeout', float, 30.0,
     'Seconds in-flight requests may take to finish on SIGTERM.'),
    ('broker', str, 'memory://',
     'Where group logs live: memory:// (one process), '
     'redis://host:port/db (several processes), '
     'redis+sentinel://host:port,host:port/service/db (Redis Sentinel) or '
     'redis+cluster://host:port,host:port (Redis Cluster).'),
    ('broker-replicas', int, 0,
     'Redis broker: replicas that must acknowledge a publish (WAIT) '
     'before its transaction commits, so that a failover loses nothing '
     'that was answered 200. Set 1 with Sentinel.'),
    ('broker-timeout', float, 2.0,
     'Redis broker: seconds any one broker call of a request (publishing '
     'a transaction\'s events, the mark, an input\'s claim, a page '
     'record) may take before the request answers 503; after a failure, '
     'calls fail at once for a second. A hung Redis never holds a worker '
     'thread longer.'),
    ('commit-timeout', float, 10.0,
     'Redis broker: seconds a transaction may take from its vote to its '
     'finish. Its events are shown when it finishes; a process that dies '
     'in between holds them (and what follows them in their groups) back '
     'this long, then their pages reload and a resend of its input is '
     'answered input-unknown. Keep it above your slowest commit.'),
    ('presence-timeout', float, 30.0,
     'Redis broker: seconds after its last heartbeat before the pages of '
     'a process that died, stopped or lost Redis leave their groups (the '
     'heartbeat comes every third of it).'),
    ('max-idle-groups', int, 1000,
     'Memory broker: logs kept of groups that no page reads (published to '
     'by model updates nobody views, or left by their last page); the '
     'least recently used are dropped first.'),
    ('broker-threads', int, 4,
     'LiveServerHTTP with the Redis broker: threads that make the broker '
     'calls the event loop must not wait for.'),
    ('health-timeout', float, 3.0,
     'Seconds within which the health probe (a publish through the broker '
     'back to this process) must come back; @@live-health answers 503 '
     'after that.'),
    ('max-header-size', _size, 64 << 10,
     'Largest request head (request line and headers) LiveServerHTTP and '
     'WSGI-HTTP read; 431 above it.'),
    ('max-header-count', int, 100,
     'Most request headers LiveServerHTTP reads; 431 above it.'),
    ('max-input-size', _size, 1 << 20,
     'Largest body of an input request (a page calling a handler), JSON '
     'or form-encoded; 413 above it.'),
    ('max-argument-depth', int, 32,
     'Deepest nesting of lists and objects in handler arguments; 400 '
     'above it.'),
    ('max-anonymous-pages', int, 10000,
     'Pages of anonymous visitors a process keeps open; a new one over it '
     'gets 503 with Retry-After.'),
    ('max-anonymous-per-address', int, 1000,
     'Pages of anonymous visitors from one client address (after a trusted '
     'proxy\'s X-Forwarded-For) a process keeps open; 503 over it.'),
    ('trusted-origins', str, '',
     'Other origins (scheme://host:port, space-separated) whose pages may '
     'send state-changing requests to this site; its own origin always '
     'may.'),
    ('max-input-ids', int, 100,
     'Input ids remembered per page with their answers, so that an input '
     'the client sends again (its answer was lost) is not run twice.'),
    ('max-message-size', _size, 1 << 20,
     'Largest WebSocket message LiveServerHTTP reads (close 1009 above '
     'it).'),
    ('max-connection-pages', int, 100,
     'Pages one shared connection (a browser\'s WebSocket or shared SSE '
     'stream) may carry.'),
    ('websocket-deflate', _bool, False,
     'Compress WebSocket messages (permessage-deflate). Off: it costs tens '
     'of KB of memory per connection, and one encoded frame can no longer '
     'serve every receiver.'),
    ('socket-messages', float, 50.0,
     'Messages (and frames) per second one WebSocket may send, with a '
     'burst of budget-burst seconds of it; over it the socket is read '
     'more slowly, and closed (1008) if it stays over for budget-grace.'),
    ('socket-bytes', _size, 512 << 10,
     'Bytes per second one WebSocket may send (the same rule).'),
    ('http-requests', float, 20.0,
     'Requests per second one HTTP connection of LiveServerHTTP may send '
     '(long-polls, streams, close, the site\'s pages); over it the '
     'connection is read more slowly, and answered 429 with Retry-After '
     'and closed if it stays over for budget-grace.'),
    ('budget-burst', float, 4.0,
     'Seconds of socket-messages, socket-bytes and http-requests a '
     'connection may send at once (a browser attaching many pages).'),
    ('budget-grace', float, 10.0,
     'Seconds a connection may stay over its budget (slowed) before it '
     'is closed.'),
    ('max-connections-per-address', int, 1000,
     'Open connections to LiveServerHTTP from one client address; 503 '
     'with Retry-After over it. A trusted proxy\'s are not counted.'),
    ('max-prefix-share', float, 0.1,
     'The share of max-connections, and of max-anonymous-pages, that the '
     'addresses of one network prefix may hold together; 503 over it.'),
    ('ipv4-prefix', int, 24,
     'Bits of the network prefix that groups IPv4 client addresses.'),
    ('ipv6-prefix', int, 64,
     'Bits of the network prefix that groups IPv6 client addresses.'),
    ('ticket-lifetime', float, 60.0,
     'Seconds a connection ticket stays valid: a rendered live page gets '
     'one that lets its browser open the WebSocket (or shared SSE stream) '
     'without the site being asked who the user is. Logging out does not '
     'take back a ticket already handed out, so keep this short; after '
     'it, the site is asked again.'),
    ('ticket-secret', str, '',
     'The secret that signs connection tickets (at least 16 characters). '
     'Set the same one in every process that serves the site, or give '
     'ticket-secret-file. Never logged.'),
    ('ticket-secret-file', str, '',
     'A file holding the ticket secret, made (mode 0600, random) when it '
     'does not exist. Default with zope.conf: zorg-live-ticket.key beside '
     'the site\'s FileStorage; else each process makes a secret of its '
     'own, and a ticket works only in the process that rendered its page '
     '(elsewhere the site is asked, as without one).'),
    ('allow-get-input', _bool, False,
     'UNSAFE: also accept input requests as GET (the original zorg.live '
     'form), which links and images on other sites can make. Off.'),
]

# Settings that must be positive, and those that may be zero.
_POSITIVE = ('threads', 'refresh-interval', 'client-timeout',
             'heartbeat-interval', 'max-pages-per-principal', 'history-size',
             'max-connections', 'retry-after', 'max-body-size',
             'header-timeout', 'send-timeout', 'presence-timeout',
             'broker-timeout', 'commit-timeout',
             'broker-threads', 'health-timeout', 'max-header-size',
             'max-header-count', 'max-input-size', 'max-argument-depth',
             'max-anonymous-pages', 'max-anonymous-per-address',
             'max-input-ids', 'max-message-size', 'max-connection-pages',
             'socket-messages', 'socket-bytes', 'http-requests',
             'budget-burst', 'budget-grace', 'max-connections-per-address',
             'max-prefix-share', 'ticket-lifetime')
_NOT_NEGATIVE = ('graceful-timeout', 'max-idle-groups', 'broker-replicas')
# Browsers' timers and proxies: a page told to wait longer than this for
# its next byte would be taken for dead by any proxy in between.
MAX_WAIT = 3600.0

_BY_NAME = {row[0]: row for row in TABLE}


def attribute(name):
    """The Python attribute for a setting name ('refresh-interval' ->
    'refresh_interval')."""
    return name.replace('-', '_')


class Settings:
    """Typed settings with defaults; construct with any subset of names
    (dashes or underscores) as strings or values."""

    def __init__(self, **values):
        for name, kind, default, _doc in TABLE:
            setattr(self, attribute(name),
                    default() if callable(default) else default)
        self.update(values)

    def update(self, values):
        for key, value in values.items():
            name = key.replace('_', '-').lower()
            if name not in _BY_NAME:
                raise ValueError(
                    'unknown zorg.live setting %r; known settings: %s'
                    % (key, ', '.join(sorted(_BY_NAME))))
            if value is None:
                continue
            kind = _BY_NAME[name][1]
            try:
                converted = kind(value)
            except (TypeError, ValueError):
                raise ValueError('setting %s: %r is not a valid %s'
                                 % (name, value, getattr(kind, '__name__',
                                                         kind)))
            setattr(self, attribute(name), converted)
        self.check()
        return self

    def check(self):
        """Check the settings together; ValueError says what to change."""
        for name in _POSITIVE:
            if not getattr(self, attribute(name)) > 0:
                raise ValueError('setting %s must be positive, got %r'
                                 % (name, getattr(self, attribute(name))))
        for name in _NOT_NEGATIVE:
            if getattr(self, attribute(name)) < 0:
                raise ValueError('setting %s must not be negative, got %r'
                                 % (name, getattr(self, attribute(name))))
        for name in ('refresh-interval', 'heartbeat-interval',
                     'ticket-lifetime'):
            if getattr(self, attribute(name)) > MAX_WAIT:
                raise ValueError(
                    'setting %s is %g seconds: proxies and browsers drop a '
                    'connection silent for that long; use at most %d'
                    % (name, getattr(self, attribute(name)), MAX_WAIT))
        if (self.max_anonymous_per_address
                > self.max_anonymous_pages):
            raise ValueError(
                'setting max-anonymous-per-address (%d) is larger than '
                'max-anonymous-pages (%d); lower it'
                % (self.max_anonymous_per_address,
                   self.max_anonymous_pages))
        if self.max_prefix_share > 1:
            raise ValueError('setting max-prefix-share is a share (0 to 1), '
                             'got %r' % self.max_prefix_share)
        for name, most in (('ipv4-prefix', 32), ('ipv6-prefix', 128)):
            if not 8 <= getattr(self, attribute(name)) <= most:
                raise ValueError('setting %s: a prefix of 8 to %d bits, got '
                                 '%r' % (name, most,
                                         getattr(self, attribute(name))))
        for origin in self.trusted_origins.split():
            if not re.match(r'^https?://[^/\s]+$', origin):
                raise ValueError(
                    'setting trusted-origins: %r is not an origin; write '
                    'scheme://host or scheme://host:port' % origin)
        if 0 < len(self.ticket_secret.encode('utf-8')) < MIN_SECRET:
            raise ValueError('setting ticket-secret: use at least %d '
                             'random characters (or leave it out)'
                             % MIN_SECRET)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and self.max_connections > hard:
            raise ValueError(
                'setting max-connections is %d but this process may open '
                'only %d files: lower max-connections or raise the '
                'open-file limit (ulimit -n)' % (self.max_connections, hard))

    @classmethod
    def fromEnviron(cls, environ=None, **values):
        """Settings from ZORG_LIVE_* environment variables, then `values`."""
        environ = os.environ if environ is None else environ
        found = {}
        for name, *_rest in TABLE:
            env = 'ZORG_LIVE_' + attribute(name).upper()
            if env in environ:
                found[name] = environ[env]
        settings = cls(**found)
        return settings.update(values)

    def applyToPages(self):
        """Make the page settings the defaults of every client and of the
        manager utility (they are class attributes, as in the original
        zorg.live)."""
        from zorg.live.page.client import LivePageClient
        from zorg.live.page.manager import LivePageManager
        LivePageClient.refreshInterval = self.refresh_interval
        LivePageClient.clientTimeout = self.client_timeout
        LivePageClient.heartbeatInterval = self.heartbeat_interval
        LivePageManager.maxPagesPerPrincipal = self.max_pages_per_principal
        from zorg.live.page.page import LivePage
        from zorg.live.page.views import ClientView
        LivePage.maxArgumentsDepth = self.max_argument_depth
        LivePage.retryAfter = self.retry_after
        from zorg.live.page import strangers
        strangers.configure(self)
        ClientView.maxInputSize = self.max_input_size
        ClientView.allowGetInput = self.allow_get_input
        from zorg.live.page.inputonce import InputOnce
        InputOnce.keep = self.max_input_ids

    def schemaKeys(self):
        """ZConfig <key> elements for the <zorg-live> section."""
        return '\n'.join(
            '<key name="%s" required="no"><description>%s</description>'
            '</key>' % (name, doc) for name, _k, _d, doc in TABLE)
