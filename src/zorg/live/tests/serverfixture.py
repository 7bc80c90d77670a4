"""Run the real `zorg-live serve` in a subprocess, on a free loopback port.

Each RunningServer gets its own directory with a zope.conf, a FileStorage
and a log; tests talk HTTP to it and may stop, kill or restart it.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(__file__)
SITE_ZCML = os.path.join(HERE, 'site.zcml')

CONF = """\
site-definition %(zcml)s
threads %(threads)d
%(servers)s
<zorg-live>
%(settings)s
</zorg-live>
%(zodb)s
<eventlog>
  <logfile>
    path %(dir)s/server.log
  </logfile>
</eventlog>
"""

# One process, one database of its own (a ZEO server's zodbSection()
# when several processes share one: tests/zeofixture.py).
FILESTORAGE = """\
<zodb>
  <filestorage>
    path %(dir)s/Data.fs
  </filestorage>
</zodb>
"""

LISTENING = re.compile(r' (s\d+) listening on http://127\.0\.0\.1:(\d+)')

SERVER = """
<server %(name)s>
  type %(type)s
  address 127.0.0.1:%(port)d
</server>
"""


def freePort():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class ServerProcess:
    """Stopping a server process that a test started (`process`, with its
    output file `output`), and `with` for start and kill."""

    process = None

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process and self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        self.output.close()


class RunningServer(ServerProcess):
    """A zorg-live process; `types` lists its servers' types. `zodb` is
    the `<zodb>` section of its zope.conf (default: a FileStorage of its
    own; processes that share a database get a ZEOServer's
    `zodbSection()`). `args`: more arguments of ``zorg-live serve``."""

    def __init__(self, directory, types=('LiveServerHTTP',), threads=2,
                 zcml=SITE_ZCML, ports=None, zodb=None, args=(),
                 **settings):
        self.dir = str(directory)
        self.args = list(args)
        os.makedirs(self.dir, exist_ok=True)
        # Port 0: each server binds a free port itself and logs it (no race
        # between choosing a port and binding it); a restart reuses them.
        self.types = types
        self.ports = list(ports) if ports else [0 for _ in types]
        self.port = None
        self.settings = '\n'.join('  %s %s' % (k.replace('_', '-'), v)
                                  for k, v in settings.items())
        self.zcml, self.threads = zcml, threads
        self.zodb = zodb or FILESTORAGE % {'dir': self.dir}
        self.config = os.path.join(self.dir, 'zope.conf')
        self.writeConfig()
        self.process = None

    def writeConfig(self):
        servers = ''.join(
            SERVER % {'name': 's%d' % i, 'type': kind, 'port': port}
            for i, (kind, port) in enumerate(zip(self.types, self.ports)))
        with open(self.config, 'w') as f:
            f.write(CONF % {'zcml': self.zcml, 'threads': self.threads,
                            'servers': servers, 'settings': self.settings,
                            'zodb': self.zodb, 'dir': self.dir})

    def listening(self):
        """{server name: port} from the server log's 'listening' lines."""
        found = {}
        path = os.path.join(self.dir, 'server.log')
        if os.path.exists(path):
            with open(path, errors='replace') as f:
                for match in LISTENING.finditer(f.read()):
                    found[match.group(1)] = int(match.group(2))
        return found

    def url(self, path='', port=None):
        return 'http://127.0.0.1:%d/%s' % (port or self.port,
                                           path.lstrip('/'))

    def start(self, timeout=60):
        env = dict(os.environ)
        env.pop('ZORG_LIVE_BROKER', None)
        self.output = open(os.path.join(self.dir, 'stdout.log'), 'ab')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'zorg.live', 'serve', self.config]
            + self.args,
            cwd=self.dir, stdout=self.output, stderr=subprocess.STDOUT,
            env=env)
        deadline = time.monotonic() + timeout
        for i, port in enumerate(self.ports):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError('the server exited with %s:\n%s'
                                       % (self.process.returncode,
                                          self.log()))
                if not port:
                    port = self.listening().get('s%d' % i, 0)
                try:
                    if port:
                        socket.create_connection(('127.0.0.1', port),
                                                 0.5).close()
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError('the server did not listen in time:'
                                       '\n%s' % self.log())
                time.sleep(0.05)
            self.ports[i] = port
        self.port = self.ports[0]
        self.writeConfig()
        return self

    def log(self):
        text = []
        for name in ('stdout.log', 'server.log'):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    text.append(f.read()[-5000:])
        return '\n'.join(text)
