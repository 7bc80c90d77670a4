"""Run the ``zorg-live`` command as a user does: a site written by
``zorg-live new`` into a fresh folder outside the source tree, served by
``zorg-live serve`` from that folder (test_newsite.py and
test_example_browser.py)."""

import os
import re
import signal
import subprocess
import sys
import time

LISTENING = re.compile(r' listening on http://127\.0\.0\.1:(\d+)')


def command():
    """The installed ``zorg-live`` script (else ``python -m zorg.live``)."""
    script = os.path.join(os.path.dirname(sys.executable), 'zorg-live')
    return [script] if os.path.exists(script) else [
        sys.executable, '-m', 'zorg.live']


def environ():
    env = dict(os.environ)
    # The site runs with the memory broker, whatever the test run uses.
    # (PYTHONPATH stays: under buildout it holds the eggs.)
    env.pop('ZORG_LIVE_BROKER', None)
    return env


def run(args, cwd, timeout=120):
    """Run ``zorg-live ARGS`` to its end: CompletedProcess (text)."""
    return subprocess.run(command() + list(args), cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout,
                          env=environ())


def newSite(tmp_path, name='mysite'):
    """`zorg-live new mysite --port 0` in tmp_path; the site's folder.
    (Port 0: the server takes a free port and logs it.)"""
    done = run(['new', name, '--port', '0'], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / name


class Served:
    """``zorg-live serve CONFIG`` in the background, from `cwd`."""

    def __init__(self, config, cwd):
        self.config, self.cwd = str(config), str(cwd)
        self.process = None
        self.port = None

    def start(self, timeout=60):
        self.logPath = os.path.join(self.cwd, 'serve-%d.log' % time.time_ns())
        self.output = open(self.logPath, 'wb')
        self.process = subprocess.Popen(
            command() + ['serve', self.config], cwd=self.cwd,
            stdout=self.output, stderr=subprocess.STDOUT, env=environ())
        deadline = time.monotonic() + timeout
        while True:
            match = LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError('zorg-live serve exited with %s:\n%s'
                                   % (self.process.returncode, self.log()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError('zorg-live serve did not listen in time:'
                                   '\n%s' % self.log())
            time.sleep(0.05)

    def url(self, path=''):
        return 'http://127.0.0.1:%d/%s' % (self.port, path.lstrip('/'))

    def log(self):
        with open(self.logPath, errors='replace') as f:
            return f.read()

    def stop(self, signum=signal.SIGTERM, timeout=30):
        """Send `signum` and wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self.output.close()
        return self.process.returncode

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.output.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
