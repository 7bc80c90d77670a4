"""The ``zorg-live`` command.

``zorg-live new mysite`` writes a site to start from (the example poll
site: zope.conf, site.zcml, poll.py, poll.pt, site.ini and var/).
``zorg-live serve mysite/zope.conf`` starts every server of zope.conf in
one process and one event loop (uvloop) and stops them cleanly on SIGINT
or SIGTERM, closing the database (``--port`` moves its first server,
``--workers N`` runs N such processes on the same sockets, workers.py); ``zorg-live serve mysite/site.ini``
does the same for a PasteDeploy ini file. ``zorg-live send --config
etc/zope.conf --group /lobby "text"`` pushes a message into a running site
(see send.py).
"""

import argparse
import asyncio
import configparser
import logging
import os
import re
import resource
import signal
import sys

from zorg.live.server import send
from zorg.live.server.config import (
    ConfigError, checkWorkers, closeDatabases, createServers, loadOptions,
    overridePort, workersOf)

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


def runLoop(main):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def serve(configfile, port=None, workers=None):
    """Serve zope.conf: in this process, or (workers > 1) in that many
    worker processes under a supervising parent (workers.py). `port`
    overrides the port of the first <server>. Returns the exit code."""
    options = loadOptions(configfile)
    overridePort(options, port)
    if workers is None:
        workers = workersOf(options, configfile)
    checkWorkers(options, workers, configfile)
    if workers > 1:
        from zorg.live.server.workers import Supervisor
        return Supervisor(configfile, options, workers, serveWorker).run()
    serveOptions(configfile, options)
    return 0


def serveOptions(configfile, options, ready=None):
    """Serve in this process; `ready()` is called once the servers are
    bound and the site is open."""
    raiseFileLimit()
    try:
        # (A server that cannot bind its address fails after the database
        # was opened: it is closed all the same.)
        servers, _settings = createServers(configfile, options)
        if ready is not None:
            ready()
        runLoop(serveAll(servers))
    finally:
        # After SIGINT/SIGTERM (or a failure): close the database, so a
        # FileStorage saves its index and the next start does not warn
        # "Ignoring index" and rebuild it.
        closeDatabases()


def serveWorker(configfile, options, ready):
    """One worker of a Supervisor; its exit code."""
    try:
        serveOptions(configfile, options, ready)
    except ConfigError as e:
        print('zorg-live: %s' % e, file=sys.stderr)
        return 2
    return 0


EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'example')
EXAMPLE_FILES = ('zope.conf', 'site.zcml', 'poll.py', 'poll.pt', 'site.ini')


def newSite(directory, port=8080):
    """Write the example site into `directory` (new or empty), listening
    on 127.0.0.1:`port`; returns the path of its zope.conf."""
    if os.path.exists(directory) and (not os.path.isdir(directory)
                                      or os.listdir(directory)):
        raise ConfigError('%s exists and is not an empty folder: name a new '
                          'folder (nothing is overwritten)' % directory)
    os.makedirs(os.path.join(directory, 'var'))
    for name in EXAMPLE_FILES:
        with open(os.path.join(EXAMPLE, name)) as f:
            text = f.read()
        if port != 8080:
            text = re.sub(r'(address 127\.0\.0\.1:|port = )8080',
                          r'\g<1>%d' % port, text)
        with open(os.path.join(directory, name), 'w') as f:
            f.write(text)
    return os.path.join(directory, 'zope.conf')


def isIni(path):
    """A PasteDeploy file: *.ini, or a file that starts with a [section]."""
    if path.endswith('.ini'):
        return True
    try:
        with open(path) as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith(('#', ';')):
                    return line.lstrip().startswith('[')
    except OSError:
        pass
    return False


def servePaste(inifile):
    """Load [app:main] and [server:main] of a PasteDeploy file and serve."""
    from paste.deploy import loadapp, loadserver
    if not os.path.exists(inifile):
        raise ConfigError('%s does not exist; give the path of your '
                          'PasteDeploy file' % inifile)
    url = 'config:' + os.path.abspath(inifile)
    try:
        app = loadapp(url)
        server = loadserver(url)
    except BaseException as e:
        closeDatabases()    # the application may have opened it
        if isinstance(e, (LookupError, configparser.Error)):
            raise ConfigError(
                '%s: %s (it needs [app:main] and [server:main], see '
                'site.ini of `zorg-live new`)' % (inifile, e)) from None
        raise
    server(app)     # closes the database when it stops


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='zorg-live', description='Run a Zope site with live pages.')
    commands = parser.add_subparsers(dest='command', required=True)
    serve_cmd = commands.add_parser(
        'serve', help='start every <server> of zope.conf (or the '
                      '[server:main] of a PasteDeploy .ini) in one process')
    serve_cmd.add_argument('config', help='path of zope.conf, or of a '
                           'PasteDeploy .ini file')
    serve_cmd.add_argument('--port', type=int, default=None,
                           help='listen on this port instead of the one '
                                'of the first <server> of zope.conf')
    serve_cmd.add_argument('--workers', type=int, default=None,
                           help='run this many worker processes on the '
                                'same sockets (instead of zope.conf\'s '
                                '"workers"); more than 1 needs ZEO or '
                                'RelStorage and the Redis broker')
    new_cmd = commands.add_parser(
        'new', help='write a site to start from (the example poll site) '
                    'into a new folder')
    new_cmd.add_argument('directory', help='the new folder')
    new_cmd.add_argument('--port', type=int, default=8080,
                         help='port of its server (default 8080)')
    send.addArguments(commands.add_parser(
        'send', help='push a message into a group of a running site '
                     '(POST to its @@notify)'))
    args = parser.parse_args(argv)
    try:
        if args.command == 'serve' and isIni(args.config):
            if args.port is not None or args.workers is not None:
                raise ConfigError('--port and --workers apply to zope.conf; '
                                  'set port in the ini file\'s [server:main]')
            servePaste(args.config)
        elif args.command == 'serve':
            return serve(args.config, args.port, args.workers)
        elif args.command == 'new':
            config = newSite(args.directory, args.port)
            print('zorg-live: wrote the site %s\n'
                  'start it:  zorg-live serve %s\n'
                  'then open: http://127.0.0.1:%s/  (log in as alice/alice '
                  'or bob/bob)' % (args.directory, config, args.port or
                                   '<the port it says it listens on>'))
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
