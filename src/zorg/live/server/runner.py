"""The ``zorg-live`` command.

``zorg-live serve etc/zope.conf`` starts every server of zope.conf in one
process and one event loop (uvloop) and stops them cleanly on SIGINT or
SIGTERM. ``zorg-live send --config etc/zope.conf --group /lobby "text"``
pushes a message into a running site (see send.py).
"""

import argparse
import asyncio
import logging
import resource
import signal
import sys

from zorg.live.server import send
from zorg.live.server.config import ConfigError, createServers

log = logging.getLogger('zorg.live.server')


def raiseFileLimit():
    """Each open page is a socket: use all the descriptors we may have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serveAll(servers):
    loop = asyncio.get_running_loop()

    def stop(signum):
        log.warning('received %s: telling waiting pages to reconnect, '
                    'finishing requests, stopping', signal.Signals(signum).name)
        for server in servers:
            server.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    await asyncio.gather(*(server.serve() for server in servers))


def serve(configfile):
    raiseFileLimit()
    servers, _settings = createServers(configfile)
    try:
        import uvloop
        uvloop.run(serveAll(servers))
    except ImportError:
        asyncio.run(serveAll(servers))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='zorg-live', description='Run a Zope site with live pages.')
    commands = parser.add_subparsers(dest='command', required=True)
    serve_cmd = commands.add_parser(
        'serve', help='start every <server> of zope.conf in one process')
    serve_cmd.add_argument('config', help='path of zope.conf')
    send.addArguments(commands.add_parser(
        'send', help='push a message into a group of a running site '
                     '(POST to its @@notify)'))
    args = parser.parse_args(argv)
    try:
        if args.command == 'serve':
            serve(args.config)
        elif args.command == 'send':
            return send.command(args)
    except ConfigError as e:
        print('zorg-live: %s' % e, file=sys.stderr)
        return 2
    except send.SendError as e:
        print('zorg-live send: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # at the password prompt
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
