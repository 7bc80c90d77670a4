#!/usr/bin/env python3
"""A delaying TCP proxy on loopback: "Redis answers slowly".

    python benchmarks/delayproxy.py --listen PORT --target HOST:PORT
                                    [--delay 0.05] [--both-ways]

Forwards every connection to the target. While the delay is on, each chunk
read from the target is written to the client `delay` seconds after it
arrived (order kept, so a Redis answer comes `delay` late; with
--both-ways the requests too). It starts with the delay off: SIGUSR1
turns it on, SIGUSR2 off again (the benchmark opens its pages at full
speed, then slows Redis down). SIGTERM ends it. Prints "ready" once it
listens. Only 127.0.0.1; at most --max-connections at once.
"""
import argparse
import asyncio
import signal
import sys


class Proxy:
    def __init__(self, target, delay, both_ways, max_connections):
        self.target = target
        self.delay = delay
        self.both_ways = both_ways
        self.on = False
        self.slots = asyncio.Semaphore(max_connections)

    async def handle(self, creader, cwriter):
        if self.slots.locked():
            cwriter.close()
            return
        async with self.slots:
            try:
                ureader, uwriter = await asyncio.open_connection(
                    *self.target)
            except OSError:
                cwriter.close()
                return
            await asyncio.gather(
                self.pipe(ureader, cwriter, True),
                self.pipe(creader, uwriter, self.both_ways),
                return_exceptions=True)
            for w in (cwriter, uwriter):
                w.close()

    async def pipe(self, reader, writer, delayed):
        """Copy reader -> writer; when delayed and the delay is on, each
        chunk leaves `delay` after it arrived (a queue keeps the order and
        lets chunks arrive while earlier ones wait)."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        async def sender():
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        task = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                due = loop.time() + (self.delay if delayed and self.on
                                     else 0.0)
                queue.put_nowait((due, data))
        finally:
            queue.put_nowait((0, None))
            try:
                await task
            except (OSError, ConnectionError):
                pass
            writer.close()


async def main(args):
    host, port = args.target.rsplit(':', 1)
    proxy = Proxy((host, int(port)), args.delay, args.both_ways,
                  args.max_connections)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(proxy, 'on',
                                                            True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(proxy, 'on',
                                                            False))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(proxy.handle, '127.0.0.1',
                                        args.listen)
    print('ready', flush=True)
    async with server:
        await stop.wait()


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--listen', type=int, required=True)
    p.add_argument('--target', required=True, help='HOST:PORT')
    p.add_argument('--delay', type=float, default=0.05)
    p.add_argument('--both-ways', action='store_true')
    p.add_argument('--max-connections', type=int, default=1000)
    args = p.parse_args()
    if not args.target.startswith('127.0.0.1:'):
        sys.exit('loopback targets only')
    asyncio.run(main(args))
