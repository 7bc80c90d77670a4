"""``python -m zorg.live.demo``: write the demo instance and serve it.

    python -m zorg.live.demo [--port 8080] [--dir var/demo]
    python -m zorg.live.demo send [--port 8080] [--group /lobby] "text"
    zorg-live send --config var/demo/zope.conf --user admin --group /lobby "text"

The first writes ``<dir>/zope.conf`` from the package's ``instance.conf``
(LiveServerHTTP on 127.0.0.1:<port>, a FileStorage in ``<dir>/var``, the
demo's site.zcml) and runs it in the foreground like ``zorg-live serve``;
Ctrl-C stops it, the data stays for the next start. The second pushes a
system message into a room through ``@@notify``, as the demo's manager,
like the third (the generic command) does with any login.
"""

import argparse
import errno
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SITE_ZCML = os.path.join(HERE, 'site.zcml')
TEMPLATE = os.path.join(HERE, 'instance.conf')
ADMIN = ('admin', 'admin')
LOGINS = [('alice', 'alice'), ('bob', 'bob'), ('carol', 'carol'),
          ('admin', 'admin (manager: @@live-status, @@notify)')]


def writeInstance(directory, port, host='127.0.0.1'):
    """Create the instance directory and its zope.conf; return the path."""
    directory = os.path.abspath(directory)
    var = os.path.join(directory, 'var')
    os.makedirs(var, exist_ok=True)
    with open(TEMPLATE) as f:
        text = f.read() % {'site_zcml': SITE_ZCML, 'host': host,
                           'port': port, 'var': var}
    config = os.path.join(directory, 'zope.conf')
    with open(config, 'w') as f:
        f.write(text)
    return config


def portTaken(host, port):
    """The reason the port cannot be bound, or None when it is free."""
    sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        return e
    finally:
        sock.close()
    return None


def portMessage(host, port, error):
    if getattr(error, 'errno', None) == errno.EADDRINUSE:
        why = 'is already in use (another demo or server runs there?)'
    else:
        why = 'cannot be used: %s' % error
    return ('zorg.live.demo: port %d on %s %s.\n'
            'Pick another one: make demo PORT=%d  '
            '(or python -m zorg.live.demo --port %d)'
            % (port, host, why, port + 1, port + 1))


def commands():
    """(demo, zorg-live): how to run this demo's ``send`` and the
    ``zorg-live`` command from a shell, for the banner. Started as a
    script (buildout's ``bin/demo``), the script itself and the
    ``zorg-live`` script beside it: their interpreter may not find
    zorg.live by itself (buildout puts the eggs on the path in each
    script). Started with ``python -m``, that python."""
    started = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] \
        else ''
    if started and os.path.basename(started) not in ('__main__.py', '-c') \
            and os.path.isfile(started):
        folder = os.path.dirname(started)
        demo = started
    else:
        folder = os.path.dirname(sys.executable)
        demo = '%s -m zorg.live.demo' % sys.executable
    zorgLive = os.path.join(folder, 'zorg-live')
    if not os.path.exists(zorgLive):
        zorgLive = '%s -m zorg.live' % sys.executable
    return demo, zorgLive


def serveDemo(argv):
    parser = argparse.ArgumentParser(
        prog='python -m zorg.live.demo',
        description='Run the zorg.live demo site (chat rooms, a shared '
                    'counter). Subcommand: send (push into a room).')
    parser.add_argument('--port', type=int, default=8080,
                        help='port to listen on (default 8080)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default 127.0.0.1)')
    parser.add_argument('--dir', default=os.path.join('var', 'demo'),
                        help='instance directory: zope.conf and var/ with '
                             'the database (default var/demo)')
    args = parser.parse_args(argv)

    error = portTaken(args.host, args.port)
    if error is not None:
        print(portMessage(args.host, args.port, error), file=sys.stderr)
        return 2
    config = writeInstance(args.dir, args.port, args.host)
    url = 'http://%s:%d/' % (args.host, args.port)
    print('zorg.live demo: instance %s' % os.path.dirname(config))
    print('zorg.live demo: open %s  (chat: %slobby, counter: %scounter, '
          'uploads: %suploads, status: %s@@live-status)'
          % (url, url, url, url, url))
    print('zorg.live demo: logins (user/password): %s'
          % ', '.join('%s/%s' % login for login in LOGINS))
    demo, zorgLive = commands()
    print('zorg.live demo: push a message: %s send '
          '--port %d --group /lobby "hello"' % (demo, args.port))
    print('zorg.live demo: or, as for any site: ZORG_LIVE_PASSWORD=admin '
          '%s send --config %s --user admin --group /lobby "hello"'
          % (zorgLive, config))
    print('zorg.live demo: Ctrl-C stops the server; the data stays in %s'
          % os.path.join(os.path.dirname(config), 'var'))
    sys.stdout.flush()

    from zorg.live.server.config import ConfigError
    from zorg.live.server.runner import serve
    try:
        serve(config)
    except ConfigError as e:
        print('zorg.live.demo: %s' % e, file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            print(portMessage(args.host, args.port, e), file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:   # before the server's own signal handling
        return 130
    return 0


def send(argv):
    """The demo's shortcut for `zorg-live send` (same client, same
    @@notify): the demo's address and its admin."""
    from zorg.live.server.send import SendError, describe, notify
    parser = argparse.ArgumentParser(
        prog='python -m zorg.live.demo send',
        description='Push a system message into a room of a running demo '
                    '(POST @@notify as the manager; `zorg-live send '
                    '--config var/demo/zope.conf` does the same).')
    parser.add_argument('--port', type=int, default=8080)
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--group', default='/lobby',
                        help='the room (group) path, default /lobby')
    parser.add_argument('--user', default='%s:%s' % ADMIN,
                        help='login:password of a manager (default the '
                             'demo admin)')
    parser.add_argument('text', help='the message')
    args = parser.parse_args(argv)
    login, _sep, password = args.user.partition(':')
    url = 'http://%s:%d/' % (args.host, args.port)
    try:
        answer = notify(url, {'group': args.group, 'text': args.text},
                        (login, password))
    except SendError as e:
        print('zorg.live.demo send: %s' % e, file=sys.stderr)
        return 1
    print(describe(answer))
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == 'send':
        return send(argv[1:])
    return serveDemo(argv)


if __name__ == '__main__':
    sys.exit(main())
