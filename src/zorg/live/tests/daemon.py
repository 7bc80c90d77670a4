"""A server process that a test starts beside the live processes (a
redis-server, a ZEO server): in a folder of its own (a temp one unless
given), on a loopback port; hang (SIGSTOP), resume, stop as a crash
would (SIGKILL), and start again on the same port."""

import shutil
import signal
import subprocess
import tempfile
import time

from zorg.live.tests.serverfixture import freePort


class Daemon:

    prefix = 'zorg-daemon-'

    def __init__(self, directory=None, port=None):
        self._tmp = None
        if directory is None:
            directory = self._tmp = tempfile.mkdtemp(prefix=self.prefix)
        self.dir = str(directory)
        self.port = port or freePort()
        self.process = None
        self.output = None

    def spawn(self, command, logfile, ready, timeout, what):
        """Start `command` with its output in `logfile` and wait until
        `ready()` is true (RuntimeError, with `what`, if it is not in
        time or the process exits)."""
        self.output = open(logfile, 'ab')
        self.process = subprocess.Popen(
            command, cwd=self.dir, stdout=self.output,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise RuntimeError('%s exited with %s; see %s' % (
                    what, self.process.returncode, logfile))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('%s did not answer on port %d in time; '
                                   'see %s' % (what, self.port, logfile))
            time.sleep(0.02)
        return self

    def hang(self):
        """SIGSTOP: the server keeps its sockets and answers nothing (calls
        hang rather than fail)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        """Kill the server (as a crash would) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        if self.output is not None:
            self.output.close()
            self.output = None
        self.process = None

    def cleanup(self):
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
