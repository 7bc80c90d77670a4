"""A real ZEO server for tests: one database that several `zorg-live
serve` processes share, as production Zope runs them.

`ZEOServer` runs ZEO's own `runzeo` (the ZEO package) over a FileStorage
in a temp folder, on a free loopback port; it stops, kills, hangs
(SIGSTOP) and resumes like RedisServer. `zodbSection()` is the `<zodb>`
section that each process's zope.conf gets (RunningServer's `zodb`):
ZEO's `<clientstorage>`, imported with ``%import ZEO``. `open()` gives
the test its own client of that database, to count what was stored in
the one place it is stored.

The `zeoServer` fixture gives one test a started server.
"""

import os
import socket
import sys

import pytest

from zorg.live.tests.daemon import Daemon

# ZEO's own section type (`%import ZEO`): ZODB's built-in <zeoclient>
# cannot set server-sync, and without it a process may begin a
# transaction before the invalidations of a commit that another process
# finished have arrived, and render a page from a snapshot older than an
# event its mark already passed.
ZODB_SECTION = """\
%%import ZEO
<zodb>
  <clientstorage>
    server 127.0.0.1:%(port)d
    client-label %(label)s
    server-sync on
    wait-timeout %(waitTimeout)d
  </clientstorage>
</zodb>
"""


class ZEOServer(Daemon):
    """One `runzeo` process over `<dir>/Data.fs`. stop() kills it as a
    crash would; start() again reopens the same file on the same port."""

    prefix = 'zorg-zeo-'

    def __init__(self, directory=None, port=None):
        super().__init__(directory, port)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, 'Data.fs')

    @property
    def address(self):
        return ('127.0.0.1', self.port)

    def zodbSection(self, label='zorg-live', waitTimeout=30):
        """The `<zodb>` section of a client process's zope.conf."""
        return ZODB_SECTION % {'port': self.port, 'label': label,
                               'waitTimeout': waitTimeout}

    def start(self, timeout=30):
        # `python -m ZEO.runzeo` rather than the console script: the same
        # interpreter as the test, wherever the virtualenv's bin is.
        return self.spawn(
            [sys.executable, '-m', 'ZEO.runzeo',
             '-a', '127.0.0.1:%d' % self.port, '-f', self.path],
            os.path.join(self.dir, 'zeo.log'), self.listens, timeout,
            'runzeo')

    def listens(self):
        try:
            socket.create_connection(self.address, 0.5).close()
            return True
        except OSError:
            return False

    def open(self, timeout=30):
        """A DB of this server for the test itself (close it after use)."""
        import ZODB
        from ZEO.ClientStorage import ClientStorage
        storage = ClientStorage(self.address, wait_timeout=timeout)
        return ZODB.DB(storage)


def readRoot(db, read):
    """`read(application)` on the site's root folder in a fresh
    transaction of `db` (the test's view of the shared database)."""
    import transaction
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        manager.begin()
        return read(connection.root()['Application'])
    finally:
        manager.abort()
        connection.close()


@pytest.fixture
def zeoServer(tmp_path):
    """A running ZEO server over an empty database, for one test."""
    server = ZEOServer(tmp_path / 'zeo')
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
