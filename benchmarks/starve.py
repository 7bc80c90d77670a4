#!/usr/bin/env python3
"""Give a zorg.live server a fifth of a core, as a machine at load ~10
does: SIGSTOP 0.4 s, SIGCONT 0.1 s, again and again, for SECONDS.

    python benchmarks/starve.py PID SECONDS

PID is the process of run.py (or simulate.py): the `zorg.live serve`
process it starts (its child) is found when it appears, and only that
one is stopped and continued. For reproducing what a loaded machine does
to the open phase (results/s7-wsattach.md) without loading the machine.
"""
import os
import signal
import sys
import time


def serverOf(parent):
    """The pid of `parent`'s child running ``zorg.live serve``, or None."""
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b'zorg.live' in argv and b'serve' in argv:
            return int(pid)
    return None


def main():
    parent, seconds = int(sys.argv[1]), float(sys.argv[2])
    deadline = time.time() + 120
    while (pid := serverOf(parent)) is None:
        if time.time() > deadline:
            raise SystemExit('no zorg.live server under pid %d' % parent)
        time.sleep(0.2)
    print('starving', pid, flush=True)
    end = time.time() + seconds
    while time.time() < end:
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.4)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.1)
    print('done', flush=True)


if __name__ == '__main__':
    main()
