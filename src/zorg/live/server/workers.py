"""Several worker processes on one set of listening sockets.

``workers N`` in the <server> sections of zope.conf (or ``zorg-live serve
--workers N``) makes ``zorg-live serve`` a supervising parent, as
gunicorn's and ``uvicorn --workers`` are:

* the parent reads zope.conf, binds every server's address once and
  forks N workers before it opens anything else (no database, no
  thread), so each worker starts clean with the inherited sockets
  (listening.py) and makes its own site, database connection, broker,
  event loop and worker threads;
* the kernel gives each new connection to one of the workers; a page
  whose next request lands on another worker is adopted there through
  the Redis broker (so ``workers`` > 1 needs ``broker redis://...``, and
  a database that processes share: ZEO or RelStorage);
* a worker that dies (killed, crashed) is started again on the same
  sockets; one that dies right after it started is started again after a
  growing pause (up to `maxDelay`), one that exits with status 2 (its
  configuration cannot work) stops them all;
* the first worker starts alone, and the others once it serves (or
  after `startTimeout`): the first start of a site creates its database
  (RelStorage's tables, the root folder), which N processes at once
  would race for;
* SIGTERM or SIGINT to the parent is passed on as SIGTERM to every
  worker, which drains as a single process does (waiting pages are told
  to reconnect, requests in flight finish); the parent exits when the
  last worker has. A parent that is killed outright takes its workers
  with it (Linux's parent-death signal), so none keeps the port.
"""

import ctypes
import ctypes.util
import select

import logging
import os
import signal
import sys
import time
import traceback

from zorg.live.server import listening

log = logging.getLogger('zorg.live.server')

CONFIG_ERROR = 2
PR_SET_PDEATHSIG = 1


def dieWithParent(parent):
    """SIGTERM this process when its parent dies (Linux; elsewhere the
    workers of a killed parent are ended by hand)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:     # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def describe(status):
    """'status 1' or 'signal SIGKILL', from os.wait's status."""
    if os.WIFSIGNALED(status):
        return 'signal %s' % signal.Signals(os.WTERMSIG(status)).name
    return 'status %d' % os.waitstatus_to_exitcode(status)


class Supervisor:
    """The parent of `count` workers serving zope.conf's servers."""

    quick = 5.0       # a worker that dies sooner than this is "failing"
    maxDelay = 10.0   # seconds, the longest pause before a restart
    startTimeout = 120.0  # seconds the others wait for the first worker

    def __init__(self, configfile, options, count, serve):
        self.configfile = configfile
        self.options = options
        self.count = count
        self.serve = serve   # serve(configfile, options, ready) in a worker
        self.sockets = {}           # (host, port) -> listening socket
        self.children = {}          # pid -> (slot, start time)
        self.failures = [0] * count  # quick deaths in a row, per slot
        self.stopping = None
        self.exitCode = 0

    def bindAll(self):
        for section in self.options.servers:
            host, port = section.address
            host = host or '0.0.0.0'
            sock = listening.bind(host, port)
            port = sock.getsockname()[1]
            # Port 0: every worker serves the port the parent got.
            section.address = (section.address[0], port)
            self.sockets[(host, port)] = sock

    def spawn(self, slot):
        """Fork the worker of `slot`; returns a pipe that becomes readable
        when it serves (or dies)."""
        readable, writable = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(readable)
            self.work(slot, parent, writable)     # never returns
        os.close(writable)
        self.children[pid] = (slot, time.monotonic())
        log.warning('worker %d started (pid %d)', slot, pid)
        return readable

    def waitReady(self, readable):
        """Until the worker of pipe `readable` serves, dies or takes
        longer than `startTimeout`."""
        try:
            select.select([readable], [], [], self.startTimeout)
        finally:
            os.close(readable)

    def work(self, slot, parent, ready):
        """In the worker: serve, then leave without the parent's exit
        handlers."""
        code = 1
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            dieWithParent(parent)
            listening.inherit(self.sockets)

            def serving():
                try:
                    os.write(ready, b'.')
                except OSError:
                    pass    # the parent waits for the first worker only
                os.close(ready)
            code = self.serve(self.configfile, self.options, serving) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop(self, signum, _frame=None):
        if self.stopping is None:
            log.warning('received %s: stopping %d workers',
                        signal.Signals(signum).name, len(self.children))
        self.stopping = signum
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self):
        """Start the workers and keep them running until SIGTERM/SIGINT;
        returns the exit code."""
        self.options.eventlog()
        self.bindAll()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)
        self.waitReady(self.spawn(0))
        for slot in range(1, self.count):
            if self.stopping is None:
                os.close(self.spawn(slot))
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            slot, started = self.children.pop(pid, (None, 0))
            if slot is None or self.stopping is not None:
                continue
            if (os.WIFEXITED(status)
                    and os.WEXITSTATUS(status) == CONFIG_ERROR):
                log.error('worker %d (pid %d) cannot start (%s): stopping',
                          slot, pid, describe(status))
                self.exitCode = CONFIG_ERROR
                self.stop(signal.SIGTERM)
                continue
            self.failures[slot] = (self.failures[slot] + 1
                                   if time.monotonic() - started < self.quick
                                   else 0)
            delay = min(self.maxDelay, 0.5 * (2 ** self.failures[slot]) - 0.5)
            log.error('worker %d (pid %d) ended with %s; starting it again%s',
                      slot, pid, describe(status),
                      ' in %.1f s' % delay if delay else '')
            if delay:
                # (A signal meanwhile ends the pause: PEP 475 retries the
                # sleep, so check after it.)
                time.sleep(delay)
                if self.stopping is not None:
                    continue
            os.close(self.spawn(slot))
        for sock in self.sockets.values():
            sock.close()
        log.warning('all workers stopped')
        return self.exitCode
