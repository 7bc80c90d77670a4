"""A real PostgreSQL cluster for tests: made in a temporary folder with
Debian's initdb, started with pg_ctl on a free loopback port, removed at
the end. RelStorage keeps the site's ZODB in it, so several live
processes share one database.

PostgreSQL refuses to run as root: as root (CI, this machine) the
cluster's programs run as the ``postgres`` user that Debian's package
creates, in a folder of that user's. Nothing is skipped: without the
package the test fails and says how to get it.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from zorg.live.tests.serverfixture import freePort

MISSING = ('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/'
           'initdb): `make test` installs it (Debian package postgresql)')


def findBin():
    """The folder of the newest installed PostgreSQL's programs."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'),
                   key=lambda path: int(path.split('/')[-3]))
    return os.path.dirname(found[-1]) if found else None


class PostgresCluster:
    """One PostgreSQL cluster with a database `dbname` for user `user`
    (trust authentication, loopback only, fsync off: a test's data)."""

    user = 'zorg'
    dbname = 'zodb'

    def __init__(self):
        self.bin = findBin()
        if self.bin is None:
            pytest.fail(MISSING, pytrace=False)
        self.dir = tempfile.mkdtemp(prefix='zorg-pg-')
        self.data = os.path.join(self.dir, 'data')
        self.port = freePort()
        self.runAs = None
        if os.getuid() == 0:
            account = pwd.getpwnam('postgres')
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.runAs = 'postgres'

    def run(self, program, *args, timeout=120):
        result = subprocess.run(
            [os.path.join(self.bin, program)] + list(args),
            user=self.runAs, cwd=self.dir, capture_output=True, text=True,
            timeout=timeout)
        if result.returncode:
            raise RuntimeError('%s failed (%d): %s%s\n%s' % (
                program, result.returncode, result.stdout, result.stderr,
                self.log()))
        return result.stdout

    def log(self):
        path = os.path.join(self.dir, 'postgres.log')
        if os.path.exists(path):
            with open(path, errors='replace') as f:
                return f.read()[-3000:]
        return ''

    def start(self):
        self.run('initdb', '-D', self.data, '-U', self.user,
                 '--auth=trust', '-E', 'UTF8', '--no-sync')
        self.run('pg_ctl', '-D', self.data, '-l',
                 os.path.join(self.dir, 'postgres.log'), '-w', '-t', '60',
                 '-o', '-p %d -k %s -c listen_addresses=127.0.0.1 '
                       '-c fsync=off -c max_connections=100'
                 % (self.port, self.dir), 'start')
        self.run('createdb', '-h', '127.0.0.1', '-p', str(self.port),
                 '-U', self.user, self.dbname)
        return self

    @property
    def dsn(self):
        return ("dbname='%s' user='%s' host='127.0.0.1' port='%d'"
                % (self.dbname, self.user, self.port))

    def zodbSection(self):
        """The <zodb> section of a process's zope.conf for this database
        (RunningServer's `zodb`), as README's "Running in production"
        shows it."""
        return RELSTORAGE % {'dsn': self.dsn}

    def stop(self):
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            try:
                self.run('pg_ctl', '-D', self.data, '-m', 'immediate',
                         '-w', 'stop', timeout=60)
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


RELSTORAGE = """\
<zodb>
  <relstorage>
    <postgresql>
      dsn %(dsn)s
    </postgresql>
  </relstorage>
</zodb>
"""


@pytest.fixture
def postgres():
    """A running PostgreSQL cluster of its own for one test."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
