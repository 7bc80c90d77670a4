"""``zorg-live send``: push a message into the groups of a running site.

    zorg-live send --config etc/zope.conf --group /lobby "deploy done"
    zorg-live send --url http://127.0.0.1:8080/ --group /auction/7 \\
                   --event new-bid --data '{"price": 42}'

It POSTs to the site's ``@@notify`` view (zorg/live/page/notify.py), the
same endpoint other systems use, so the message goes through the site's
security and transactions and reaches the pages of every process behind
any broker. The address is that of the first LiveServerHTTP (else the first
server) in zope.conf. The principal needs zorg.live.Notify: ``--user
LOGIN`` or ``ZORG_LIVE_USER``, password from ``ZORG_LIVE_PASSWORD`` or a
prompt (``LOGIN:PASSWORD`` works too, but shows in the process list).
"""

import base64
import getpass
import json
import os
import sys
import urllib.error
import urllib.request

from zorg.live.core import wire
from zorg.live.server.config import loadOptions

PREFERRED = ('LiveServerHTTP', 'WSGI-HTTP')
ANY_HOST = ('', '0.0.0.0', '::')


class SendError(Exception):
    """The message did not get through; the text says what to do."""


def siteURL(configfile):
    """(URL of the site root, server type) from zope.conf's servers."""
    servers = loadOptions(configfile).servers
    rank = {kind: i for i, kind in enumerate(PREFERRED)}
    section = min(servers, key=lambda s: rank.get(s.type, len(rank)))
    host, port = section.address
    if not port:
        raise SendError('%s gives port 0 for its %s server (a free port is '
                        'chosen at start): give the site\'s address with '
                        '--url' % (configfile, section.type))
    if host in ANY_HOST:   # listening everywhere: loopback reaches it
        host = '::1' if host == '::' else '127.0.0.1'
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%d/' % (host, port), section.type


def credentials(user, environ=os.environ, ask=None):
    """(login, password) or None from --user / ZORG_LIVE_USER."""
    user = user or environ.get('ZORG_LIVE_USER')
    if not user:
        return None
    login, sep, password = user.partition(':')
    if sep:
        return login, password
    password = environ.get('ZORG_LIVE_PASSWORD')
    if password is None:
        if ask is None and not sys.stdin.isatty():
            raise SendError('no password for %r: set ZORG_LIVE_PASSWORD, or '
                            'run in a terminal to be asked' % login)
        password = (ask or getpass.getpass)('password for %s: ' % login)
    return login, password


def notify(url, message, auth=None, timeout=30.0):
    """POST `message` (a dict: group, text, event, data) to <url>@@notify;
    the JSON answer, or SendError with what to do."""
    target = url.rstrip('/') + '/@@notify'
    headers = {'Content-Type': wire.JSON_TYPE}
    if auth is not None:
        token = base64.b64encode(('%s:%s' % auth).encode('utf-8'))
        headers['Authorization'] = 'Basic ' + token.decode('ascii')
    request = urllib.request.Request(
        target, data=json.dumps(message).encode('utf-8'), method='POST',
        headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
            return json.loads(answer) if answer else {}
    except urllib.error.HTTPError as e:
        raise SendError(explain(target, e.code, e.read(), auth)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, 'reason', e)
        raise SendError('nothing answers at %s (%s): is the site running? '
                        'Start it with `zorg-live serve <zope.conf>`, or '
                        'give its address with --url.'
                        % (target, reason)) from None


def explain(target, status, body, auth):
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {}
    message = error.get('message') or body.decode('utf-8', 'replace')[:300]
    if status == 401 and auth is None:
        return ('%s asks for a login: pass --user LOGIN (or set '
                'ZORG_LIVE_USER) of a principal with the permission '
                'zorg.live.Notify; the password comes from ZORG_LIVE_PASSWORD '
                'or a prompt.' % target)
    if status == 401:
        return ('%s refused the login %r: check the login and password.'
                % (target, auth[0]))
    if status == 403:
        return ('%r may not push into this site: grant it the permission '
                'zorg.live.Notify (%s answered 403).' % (auth[0], target)
                if auth else '%s answered 403: %s' % (target, message))
    if status == 404 and error.get('error') == 'unknown-group':
        return 'unknown group: %s' % message
    if status == 404:
        return ('%s does not exist: does the site include zorg.live '
                '(<include package="zorg.live" />), and is --url the '
                'site\'s root?' % target)
    return '%s answered %d: %s' % (target, status, message)


def describe(answer):
    """One line for the person who sent the message."""
    group = answer.get('group')
    if answer.get('handled'):
        extra = ', stored' if answer.get('stored') else ''
        return 'sent to %s (the site took it%s)' % (group, extra)
    return 'sent to %s (%d open page%s here)' % (
        group, answer.get('pages', 0), '' if answer.get('pages') == 1 else 's')


def addArguments(parser):
    parser.add_argument('--config', default=os.path.join('etc', 'zope.conf'),
                        help='the site\'s zope.conf, for its address '
                             '(default etc/zope.conf)')
    parser.add_argument('--url', help='the site\'s root URL instead, e.g. '
                                      'http://127.0.0.1:8080/')
    parser.add_argument('--group', required=True,
                        help='the group, e.g. /lobby (a page\'s group is '
                             'the path of the object it shows)')
    parser.add_argument('--user', help='LOGIN of a principal with '
                        'zorg.live.Notify (default $ZORG_LIVE_USER; password '
                        'from $ZORG_LIVE_PASSWORD or a prompt)')
    parser.add_argument('--event', default='notify', help='the custom '
                        'event\'s name when the site does not take the '
                        'message itself (default notify)')
    parser.add_argument('--data', help='JSON data for the event instead of '
                                       'the text')
    parser.add_argument('--timeout', type=float, default=30.0)
    parser.add_argument('text', nargs='?', help='the message')


def command(args):
    """Run `zorg-live send`; returns the exit status."""
    message = {'group': args.group, 'event': args.event}
    if args.text is not None:
        message['text'] = args.text
    if args.data is not None:
        try:
            message['data'] = json.loads(args.data)
        except ValueError as e:
            raise SendError('--data is not JSON: %s' % e)
    if args.text is None and args.data is None:
        raise SendError('give the message text (or --data JSON)')
    url = args.url or siteURL(args.config)[0]
    answer = notify(url, message, credentials(args.user), args.timeout)
    print(describe(answer))
    return 0
