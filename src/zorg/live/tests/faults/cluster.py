"""The processes of one run: a ZEO server, a redis-server and two or
three `zorg-live serve` processes on them (the fault-chat site), started,
killed, restarted and healed as the plan says."""

import os
import threading

from zorg.live.tests.faults.chat import ATTRIBUTE
from zorg.live.tests.redisfixture import RedisServer
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.zeofixture import ZEOServer, readRoot

SITE_ZCML = os.path.join(os.path.dirname(__file__), 'site.zcml')
REFRESH = 2             # the processes' refresh-interval (long-poll hold)
SETTINGS = dict(refresh_interval=REFRESH, heartbeat_interval=1,
                client_timeout=30, threads=4,
                max_anonymous_pages=100000,
                max_anonymous_per_address=100000)


class Cluster:
    """ZEO, redis-server and the live processes of one run."""

    def __init__(self, directory, processes):
        self.dir = str(directory)
        self.zeo = ZEOServer(os.path.join(self.dir, 'zeo'))
        os.makedirs(os.path.join(self.dir, 'redis'), exist_ok=True)
        self.redis = RedisServer(os.path.join(self.dir, 'redis'))
        self.live = []
        self.count = processes
        self.hung = False

    def start(self):
        self.zeo.start()
        self.redis.start()
        self.live = [
            RunningServer(os.path.join(self.dir, 'live%d' % n),
                          zcml=SITE_ZCML,
                          zodb=self.zeo.zodbSection('live%d' % n),
                          broker=self.redis.url, **SETTINGS)
            for n in range(self.count)]
        # The first process alone: it creates the site in the empty
        # database (zope.app.appsetup's bootstrap), which processes that
        # start at the same moment would do too, and conflict.
        try:
            self.live[0].start()
        except Exception:
            self.stop()
            raise
        errors = []

        def start(server):
            try:
                server.start()
            except Exception as e:    # reported below, in this thread
                errors.append(e)
        threads = [threading.Thread(target=start, args=(server,))
                   for server in self.live[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def url(self, n, path):
        return self.live[n].url(path)

    def isUp(self, n):
        process = self.live[n].process
        return process is not None and process.poll() is None

    def killLive(self, n):
        server = self.live[n]
        server.kill()
        server.output.close()

    def restartLive(self, n):
        self.live[n].start()

    def heal(self):
        """Everything running again (at the end, or after an error)."""
        if self.hung and self.redis.process is not None:
            self.redis.resume()
        self.hung = False
        if self.redis.process is None:
            self.redis.start()
        for n in range(len(self.live)):
            if not self.isUp(n):
                self.restartLive(n)

    def stored(self):
        """The chat as the database holds it, read through ZEO."""
        db = self.zeo.open()
        try:
            return readRoot(db, lambda root: list(getattr(root, ATTRIBUTE,
                                                          ())))
        finally:
            db.close()

    def stopLive(self):
        for server in self.live:
            try:
                server.stop(timeout=30)
            except Exception:
                server.kill()
            output = getattr(server, 'output', None)
            if output is not None and not output.closed:
                output.close()

    def stop(self):
        self.stopLive()
        self.redis.cleanup()
        self.zeo.cleanup()
