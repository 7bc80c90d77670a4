"""The systems under test: how to start each server, publish to it and
which adapter (adapters.py) its pages speak.

    SYSTEMS[name] -> System(name, adapter, start, kind)
    server = await system.start(port)  -> Server (pids, stop(), publisher())

Peers (aiohttp broadcaster, nginx+nchan) are started here. zorg.live
servers are started through start_zorglive(), the hook to be wired up.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from peers import nchan as nchan_peer

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = '127.0.0.1'


class NotAvailable(Exception):
    """The system cannot run here (skipped with a note)."""


# --- zorg.live hook -----------------------------------------------------------

def start_zorglive(server_type, port):
    """Start a zorg.live site serving live pages on 127.0.0.1:<port>.

    server_type is 'wsgi-http' (waitress) or 'liveserver-http'.
    Must return an object with:
      pids      list of int: the server process(es), for RSS (their child
                processes are added automatically)
      page_url  str: path of a LivePage (one group, the same for every
                render) whose GET registers a new page and renders the
                <script data-client-url=... data-last-event-id=...> tag
      stop()    stop the server and wait until it has exited
    The page must declare an input handler "publish" that publishes
    {"event": "custom", "name": "bench", "data": <its first argument>} to
    the page's group (the benchmark's publishers and chat senders POST
    {"handler": "publish", "arguments": [payload]} to <client URL>/input).
    It is called again with the same port after stop() (reconnect storm).
    """
    kind = {'wsgi-http': 'WSGI-HTTP',
            'liveserver-http': 'LiveServerHTTP'}[server_type]
    return ZorgLiveServer(kind, port)


class ZorgLiveServer:
    """`zorg-live serve` in a subprocess with the benchmark site (the test
    suite's RunningServer, on a given port)."""

    page_url = '/@@bench.html'

    def __init__(self, kind, port):
        import tempfile
        from zorg.live.tests.serverfixture import RunningServer
        zcml = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'zorglive_site.zcml')
        self.server = RunningServer(
            tempfile.mkdtemp(prefix='zorg-bench-'), types=(kind,),
            threads=4, zcml=zcml, ports=[port], refresh_interval=25,
            heartbeat_interval=15).start()
        self.pids = [self.server.process.pid]

    def stop(self):
        self.server.stop(timeout=60)

    def kill(self):
        self.server.kill()



# --- servers ------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r, w = await asyncio.open_connection(HOST, port)
            w.close()
            return True
        except OSError:
            await asyncio.sleep(0.02)
    return False


def descendants(pid):
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open('/proc/%s/stat' % d) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def rss_kb(pids):
    """Sum of VmRSS (kB, /proc/<pid>/status) of pids and their children."""
    total = 0
    for root in pids:
        for pid in descendants(root):
            try:
                with open('/proc/%d/status' % pid) as f:
                    for line in f:
                        if line.startswith('VmRSS:'):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


class Server:
    kind = 'peer'

    def __init__(self, port):
        self.port = port

    @property
    def pids(self):
        return [self.proc.pid]

    def rss_kb(self):
        return rss_kb(self.pids)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        """Crash: SIGKILL the server and its children (reconnect storm)."""
        if self.proc and self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait(5)

    def publisher(self):
        return PostPublisher(self.port, self.publish_path)


class AiohttpServer(Server):
    publish_path = '/publish'

    async def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'peers',
                                          'aiohttp_broadcaster.py'),
             str(self.port)])
        if not await wait_port(self.port):
            self.stop()
            raise NotAvailable('aiohttp broadcaster did not start')


class NchanServer(Server):
    publish_path = '/pub'

    async def start(self):
        if not nchan_peer.available():
            raise NotAvailable('nginx or the nchan module is not installed')
        self.nchan = nchan_peer.Nchan(self.port)
        self.proc = self.nchan.start()
        if not await wait_port(self.port):
            errors = self.nchan.errors()
            self.stop()
            raise NotAvailable('nginx did not start: ' + errors)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)    # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                Server.kill(self)
        self.nchan.cleanup()

    def kill(self):
        Server.kill(self)
        self.nchan.cleanup()


class ZorgServer(Server):
    kind = 'zorg'

    def __init__(self, port, server_type):
        Server.__init__(self, port)
        self.server_type = server_type
        self.handle = None

    async def start(self):
        try:
            self.handle = await asyncio.get_running_loop().run_in_executor(
                None, start_zorglive, self.server_type, self.port)
        except NotImplementedError as e:
            raise NotAvailable(str(e))
        if not await wait_port(self.port):
            raise NotAvailable('zorg.live server did not start')

    @property
    def pids(self):
        return list(self.handle.pids)

    @property
    def page_url(self):
        return self.handle.page_url

    def stop(self):
        if self.handle is not None:
            self.handle.stop()

    def kill(self):
        getattr(self.handle, 'kill', self.handle.stop)()

    def publisher(self):
        return ZorgPublisher(self.port, self.handle.page_url)


# --- publishing ---------------------------------------------------------------

def payload(seq, t, text='hello from the benchmark'):
    return {'zb': [seq, t], 'text': text}


class HttpClient:
    """One keep-alive HTTP/1.1 connection; enough for POSTs and GETs with
    Content-Length or chunked answers. Reconnects after any error."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method, path, body=b'', timeout=10.0):
        try:
            return await asyncio.wait_for(
                self._request(method, path, body), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                ValueError) as e:
            self.close()
            return 0, repr(e).encode()

    async def _request(self, method, path, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                HOST, self.port)
        self.writer.write((
            '%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json'
            '\r\nContent-Length: %d\r\n\r\n' % (
                method, path, HOST, self.port, len(body))).encode() + body)
        head = await self.reader.readuntil(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ':' in line:
                k, v = line.split(':', 1)
                headers[k.strip().lower()] = v.strip()
        if 'content-length' in headers:
            data = await self.reader.readexactly(
                int(headers['content-length']))
        elif headers.get('transfer-encoding', '').lower() == 'chunked':
            parts = []
            while True:
                size = int((await self.reader.readuntil(b'\r\n')).split(
                    b';')[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b''.join(p[:-2] for p in parts)
        else:
            data = await self.reader.read()
            self.close()
        if headers.get('connection', '').lower() == 'close':
            self.close()
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class PostPublisher:
    def __init__(self, port, path):
        self.client = HttpClient(port)
        self.path = path

    async def publish(self, seq):
        """Publish event seq; returns (ok, t) with t the publish time."""
        t = time.time()
        body = json.dumps(payload(seq, t)).encode()
        status, _ = await self.client.request('POST', self.path, body)
        return 200 <= status < 300, t

    def close(self):
        self.client.close()


class ZorgPublisher:
    """A page of its own that publishes through its input handler."""

    def __init__(self, port, page_url):
        self.client = HttpClient(port)
        self.page_url = page_url
        self.client_url = None

    async def publish(self, seq):
        from adapters import CLIENT_URL_RE, _path
        if self.client_url is None:
            status, body = await self.client.request('GET', self.page_url)
            m = CLIENT_URL_RE.search(body) if status == 200 else None
            if not m:
                return False, time.time()
            self.client_url = _path(m.group(1).decode())
        t = time.time()
        body = json.dumps({'handler': 'publish',
                           'arguments': [payload(seq, t)]}).encode()
        status, _ = await self.client.request(
            'POST', self.client_url + '/input', body)
        if status == 404:
            self.client_url = None
        return status == 200, t

    def close(self):
        self.client.close()


# --- registry -----------------------------------------------------------------

class System:
    def __init__(self, name, adapter, factory, kind='peer', label=None):
        self.name, self.adapter, self.factory = name, adapter, factory
        self.kind = kind
        self.label = label or name

    async def start(self, port):
        server = self.factory(port)
        await server.start()
        return server

    def adapter_options(self, server):
        if self.kind == 'zorg':
            return {'page_url': server.page_url}
        return {}


SYSTEMS = {s.name: s for s in [
    # WSGI-HTTP offers no SSE (501: a thread per stream would be held for
    # good), so only its long-poll is measured.
    System('zorg-wsgi-lp', 'zorg-lp',
           lambda port: ZorgServer(port, 'wsgi-http'), 'zorg',
           'zorg.live WSGI-HTTP long-poll'),
    System('zorg-live-sse', 'zorg-sse',
           lambda port: ZorgServer(port, 'liveserver-http'), 'zorg',
           'zorg.live LiveServerHTTP SSE'),
    System('zorg-live-lp', 'zorg-lp',
           lambda port: ZorgServer(port, 'liveserver-http'), 'zorg',
           'zorg.live LiveServerHTTP long-poll'),
    System('aiohttp-sse', 'aiohttp-sse', AiohttpServer, 'peer',
           'aiohttp broadcaster SSE'),
    System('nchan-sse', 'nchan-sse', NchanServer, 'peer', 'nginx+nchan SSE'),
    System('nchan-lp', 'nchan-lp', NchanServer, 'peer',
           'nginx+nchan long-poll'),
]}
