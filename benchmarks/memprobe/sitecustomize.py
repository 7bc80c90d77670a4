"""Memory probe for the benchmark's Python servers (zorg.live, the aiohttp
peer): on the PYTHONPATH of the processes run.py starts, and active only
with ZORG_BENCH_MEMPROBE set to a directory.

On SIGUSR2 the process collects its garbage (gc.collect(): a page render
leaves reference cycles that wait for the next full collection) and gives
its free heap back to the system (glibc malloc_trim(0)), then writes
<dir>/<pid> ("done <time> <bytes traced by tracemalloc, or -1>"). RSS read after that is the memory the process
holds, not the high-water mark of the last burst of requests. The
benchmark sends the signal by pid to servers it started, and reads RSS
from /proc itself.
"""
import os

_dir = os.environ.get('ZORG_BENCH_MEMPROBE')

if _dir:
    import signal

    def _probe(signum, frame):
        import ctypes
        import gc
        import time
        gc.collect()
        try:
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):
            pass
        import tracemalloc
        # with PYTHONTRACEMALLOC=1 (capacity_tracemalloc=1): the bytes
        # Python has allocated, whatever RSS says (freed memory that the
        # allocator keeps, reused by the next step, is not in it)
        traced = tracemalloc.get_traced_memory()[0] \
            if tracemalloc.is_tracing() else -1
        path = os.path.join(_dir, str(os.getpid()))
        with open(path + '.tmp', 'w') as f:
            f.write('done %f %d\n' % (time.time(), traced))
        os.replace(path + '.tmp', path)

    try:
        signal.signal(signal.SIGUSR2, _probe)
    except ValueError:          # not the main thread
        pass
