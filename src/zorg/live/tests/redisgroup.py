"""Several redis-server processes of one test (a Sentinel group, a
Cluster), each in a folder of one temp dir with its log there: start
them, wait for a condition with a deadline, show their logs when it does
not come, kill them all at the end."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from zorg.live.tests.redisfixture import MISSING, findRedisServer


def ping(port, timeout=0.5):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout) as sock:
            sock.sendall(b'PING\r\n')
            return sock.recv(64).startswith(b'+PONG')
    except OSError:
        return False


class RedisGroup:

    prefix = 'zorg-redis-group-'

    def __init__(self):
        self.executable = findRedisServer()
        if self.executable is None:
            pytest.fail(MISSING, pytrace=False)
        self.dir = tempfile.mkdtemp(prefix=self.prefix)
        self.processes = {}     # name -> Popen
        self.logs = []

    def folder(self, name):
        folder = os.path.join(self.dir, name)
        os.makedirs(folder, exist_ok=True)
        return folder

    def _run(self, name, args):
        """Start redis-server `args` as `name`, in its folder."""
        folder = self.folder(name)
        log = open(os.path.join(folder, 'redis.log'), 'ab')
        self.logs.append(log)
        self.processes[name] = subprocess.Popen(
            [self.executable] + args, cwd=folder, stdout=log,
            stderr=subprocess.STDOUT)
        return folder

    def waitFor(self, condition, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError('%s in %ds:\n%s' % (what, timeout,
                                                       self.log()))
            time.sleep(0.05)

    def log(self):
        text = []
        for name in self.processes:
            path = os.path.join(self.dir, name, 'redis.log')
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    text.append('== %s\n%s' % (name, f.read()[-1500:]))
        return '\n'.join(text)

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(10)
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
