#!/usr/bin/env python3
"""Give a zorg.live server a fifth of a core, as a machine at load ~10
does: SIGSTOP 0.4 s, SIGCONT 0.1 s, again and again, for SECONDS.

    python benchmarks/starve.py PID SECONDS [PROCESSES]

PID is the process of run.py (or simulate.py): the `zorg.live serve`
processes it starts (its children; PROCESSES of them, default 1) are
found when they appear, and only they are stopped and continued. For reproducing what a loaded machine does
to the open phase (results/s7-wsattach.md) without loading the machine.
"""
import os
import signal
import sys
import time


def serversOf(parent):
    """The pids of `parent`'s children running ``zorg.live serve``."""
    found = []
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
            found.append(int(pid))
    return found


def main():
    parent, seconds = int(sys.argv[1]), float(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    deadline = time.time() + 120
    while len(pids := serversOf(parent)) < count:
        if time.time() > deadline:
            raise SystemExit('not %d zorg.live servers under pid %d'
                             % (count, parent))
        time.sleep(0.2)
    print('starving', pids, flush=True)
    end = time.time() + seconds
    while time.time() < end:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.4)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        time.sleep(0.1)
    print('done', flush=True)


if __name__ == '__main__':
    main()
