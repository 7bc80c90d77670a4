"""A real Zope 6 instance for tests and benchmarks.

Created with Zope's own ``mkwsgiinstance``, given the example's ZCML in
``etc/site.zcml`` (as docs/zope6.txt says: mkwsgiinstance makes no
``package-includes``), users and folders (through Zope's API, before
it serves), and started with ``runwsgi etc/zope.ini`` -- the way Zope 6
users start an instance -- with ``[server:main]`` either zorg.live's
(``use = egg:zorg.live#main``) or Zope's default (waitress).
"""

import os
import re
import socket
import subprocess
import sys
import textwrap
import time

from zorg.live.tests.serverfixture import ServerProcess

BIN = os.path.dirname(sys.executable)
LISTENING = re.compile(r'LiveServerHTTP main listening on '
                       r'http://127\.0\.0\.1:(\d+)')


LIVE_SERVER = """\
[server:main]
use = egg:zorg.live#main
host = 127.0.0.1
port = %(port)d
threads = %(threads)d
%(settings)s
"""

WAITRESS_SERVER = """\
[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = %(port)d
threads = %(threads)d
"""

# Run by the instance's Python before it serves (Zope's API, one commit).
SETUP = textwrap.dedent("""\
    import sys, transaction
    from Zope2.Startup.run import configure_wsgi
    configure_wsgi(sys.argv[1])
    import Zope2
    app = Zope2.app()
    for login, fullname in (('alice', 'Alice Liddell'), ('bob', 'Bob Dylan'),
                            ('carol', 'Carol King')):
        app.acl_users._doAddUser(login, login, [], [])
    app.manage_addFolder('room', 'Room')
    app.manage_addFolder('private', 'Private')
    # Logged-in users may view the room (so the browser logs in), only
    # managers the private folder.
    app.room.manage_permission('View', ['Authenticated', 'Manager'],
                               acquire=0)
    app.private.manage_permission('View', ['Manager'], acquire=0)
    app._p_jar.transaction_manager.commit()
    app._p_jar.close()
    Zope2.DB.close()
    """)


def freePort():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class ZopeInstance(ServerProcess):
    """A Zope 6 instance home in `directory`; ``server`` is 'zorg.live'
    or 'waitress'."""

    packages = ('zorg.live.zope6.example', 'zorg.live.zope6.tests')
    zcmlFiles = {'zorg.live.zope6.tests': 'probe.zcml'}
    setupScript = SETUP

    def __init__(self, directory, server='zorg.live', threads=2, port=0,
                 **settings):
        # port 0: LiveServerHTTP binds a free one and logs it (a fixed
        # one where another program must know it beforehand: Volto).
        self.fixedPort = port
        self.dir = str(directory)
        self.server = server
        self.threads = threads
        self.settings = settings
        self.process = None
        self.port = None
        if not os.path.exists(os.path.join(self.dir, 'etc', 'zope.ini')):
            self.create()

    def create(self):
        subprocess.run([os.path.join(BIN, 'mkwsgiinstance'), '-d', self.dir,
                        '-u', 'admin:admin'], check=True,
                       stdout=subprocess.DEVNULL)
        if self.packages:
            # After Zope's products, before the overrides (docs/zope6.txt).
            siteZcml = os.path.join(self.dir, 'etc', 'site.zcml')
            with open(siteZcml) as f:
                text = f.read()
            lines = ''.join(
                '  <include package="%s" file="%s" />\n'
                % (name, self.zcmlFiles.get(name, 'configure.zcml'))
                for name in self.packages)
            anchor = '  <five:loadProducts />\n'
            assert anchor in text, text
            with open(siteZcml, 'w') as f:
                f.write(text.replace(anchor, anchor + lines, 1))
        script = os.path.join(self.dir, 'setup-instance.py')
        with open(script, 'w') as f:
            f.write(self.setupScript)
        subprocess.run([sys.executable, script, self.zopeConf],
                       check=True, cwd=self.dir)

    @property
    def zopeConf(self):
        return os.path.join(self.dir, 'etc', 'zope.conf')

    @property
    def zopeIni(self):
        return os.path.join(self.dir, 'etc', 'zope.ini')

    def writeServer(self):
        """Replace zope.ini's [server:main] section (nothing else)."""
        with open(self.zopeIni) as f:
            text = f.read()
        if self.server == 'waitress':
            self.port = freePort()
            section = WAITRESS_SERVER % {'port': self.port,
                                         'threads': self.threads}
        else:
            section = LIVE_SERVER % {
                'threads': self.threads, 'port': self.fixedPort,
                'settings': ''.join('%s = %s\n' % (k.replace('_', '-'), v)
                                    for k, v in self.settings.items())}
        text = re.sub(r'\[server:main\]\n(?:[^\[\n].*\n|\n)*', section + '\n',
                      text, count=1)
        with open(self.zopeIni, 'w') as f:
            f.write(text)

    def start(self, timeout=90):
        self.port = None
        self.writeServer()
        env = dict(os.environ)
        env.pop('ZORG_LIVE_BROKER', None)
        self.output = open(os.path.join(self.dir, 'stdout.log'), 'wb')
        self.process = subprocess.Popen(
            [os.path.join(BIN, 'runwsgi'), self.zopeIni], cwd=self.dir,
            stdout=self.output, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError('runwsgi exited with %s:\n%s'
                                   % (self.process.returncode, self.log()))
            if self.port is None:
                match = LISTENING.search(self.log())
                if match:
                    self.port = int(match.group(1))
            if self.port:
                try:
                    socket.create_connection(('127.0.0.1', self.port),
                                             0.5).close()
                    return self
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError('runwsgi did not listen in time:\n%s'
                                   % self.log())
            time.sleep(0.05)

    def url(self, path=''):
        return 'http://127.0.0.1:%d/%s' % (self.port, path.lstrip('/'))

    def log(self):
        path = os.path.join(self.dir, 'stdout.log')
        if not os.path.exists(path):
            return ''
        with open(path, errors='replace') as f:
            return f.read()[-20000:]
