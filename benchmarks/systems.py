"""The systems under test: how to start each server, publish to it and
which adapter (adapters.py) its pages speak.

    SYSTEMS[name] -> System(name, adapter, start, kind)
    server = await system.start(port)  -> Server (pids, endpoints, stop(),
                                                  publisher())

A server may listen on several endpoints (zorg-redis-*: two zorg.live
processes sharing one redis-server); the load generator spreads the pages
over server.endpoints, publishers go to them in turn (the first to the
first endpoint). Peers (aiohttp broadcaster, nginx+nchan) are started here;
zorg.live servers through start_zorglive().
"""
import asyncio
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from peers import nchan as nchan_peer

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = '127.0.0.1'


class NotAvailable(Exception):
    """The system cannot run here (skipped with a note)."""


# --- zorg.live hook -----------------------------------------------------------

def start_zorglive(server_type, port, **settings):
    """Start a zorg.live site serving live pages on 127.0.0.1:<port>.

    server_type is 'wsgi-http' (waitress) or 'liveserver-http'; settings go
    to the <zorg-live> section (e.g. broker='redis://127.0.0.1:6379/0').
    Returns an object with:
      pids      list of int: the server process(es), for RSS (their child
                processes are added automatically)
      page_url  str: path of a LivePage (one group, the same for every
                render) whose GET registers a new page and renders the
                <script data-client-url=... data-last-event-id=...> tag
      stop()    stop the server and wait until it has exited
      kill()    SIGKILL it (reconnect storm)
    The page declares an input handler "publish" that publishes
    {"event": "custom", "name": "bench", "data": <its first argument>} to
    the page's group (the benchmark's publishers and chat senders POST
    {"handler": "publish", "arguments": [payload]} to <client URL>/input).
    It is called again with the same port after kill() (reconnect storm).
    """
    kind = {'wsgi-http': 'WSGI-HTTP',
            'liveserver-http': 'LiveServerHTTP'}[server_type]
    return ZorgLiveServer(kind, port, **settings)


class ZorgLiveServer:
    """`zorg-live serve` in a subprocess with the benchmark site (the test
    suite's RunningServer, on a given port, in a temp dir of its own that
    stop()/kill() remove)."""

    page_url = '/@@bench.html'

    def __init__(self, kind, port, **settings):
        from zorg.live.tests.serverfixture import RunningServer
        zcml = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'zorglive_site.zcml')
        self.dir = tempfile.mkdtemp(prefix='zorg-bench-')
        settings.setdefault('refresh_interval', 25)
        settings.setdefault('heartbeat_interval', 15)
        # The load generator is thousands of anonymous visitors at one
        # address: lift the caps meant for strangers.
        settings.setdefault('max_anonymous_pages', 100000)
        settings.setdefault('max_anonymous_per_address', 100000)
        # ...and the share of them one network prefix may hold (issue 22:
        # 0.1 of 100,000, so the 10,001st page was refused and every
        # publisher's page with it).
        settings.setdefault('max_prefix_share', 1.0)
        # On a busy machine rendering 10,000 pages takes longer than the
        # default client-timeout (60 s): the WebSocket systems attach them
        # only after all are rendered, and the first ones were dropped
        # (unknown-page).
        settings.setdefault('client_timeout', 300)
        self.server = RunningServer(
            self.dir, types=(kind,), threads=4, zcml=zcml, ports=[port],
            **settings)
        try:
            self.server.start()
        except Exception:
            self._cleanup()
            raise
        self.pids = [self.server.process.pid]

    def _cleanup(self):
        output = getattr(self.server, 'output', None)
        if output is not None:
            output.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self):
        try:
            self.server.stop(timeout=60)
        finally:
            self._cleanup()

    def kill(self):
        try:
            self.server.kill()
        finally:
            self._cleanup()


def end_process(proc, timeout=5):
    """SIGTERM a subprocess we started (by its pid), SIGKILL it if it
    has not ended within timeout."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class RedisProcess:
    """A redis-server of the benchmark's own: free loopback port, temp dir,
    no persistence (--save '' --appendonly no); stop() ends it by pid."""

    def __init__(self, replicaOf=None):
        # replicaOf: another RedisProcess whose replica this one is.
        self.replicaOf = replicaOf
        self.executable = shutil.which('redis-server') or next(
            (p for p in ('/usr/bin/redis-server',
                         '/usr/local/bin/redis-server')
             if os.access(p, os.X_OK)), None)
        if self.executable is None:
            raise NotAvailable('redis-server is not installed (Debian '
                               'package redis-server)')
        self.proc = None

    @property
    def url(self):
        return 'redis://%s:%d/0' % (HOST, self.port)

    def start(self, timeout=10.0):
        self.dir = tempfile.mkdtemp(prefix='zorg-bench-redis-')
        self.port = free_port()
        self.log = open(os.path.join(self.dir, 'redis.log'), 'ab')
        self.proc = subprocess.Popen(
            [self.executable, '--port', str(self.port), '--bind', HOST,
             '--save', '', '--appendonly', 'no', '--dir', self.dir,
             '--protected-mode', 'yes', '--maxclients', '1000']
            + (['--replicaof', HOST, str(self.replicaOf.port)]
               if self.replicaOf else []),
            cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection((HOST, self.port), 0.5) as c:
                    c.sendall(b'PING\r\n')
                    if c.recv(64).startswith(b'+PONG'):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        with open(os.path.join(self.dir, 'redis.log'), 'rb') as f:
            tail = f.read()[-800:].decode('utf-8', 'replace')
        self.stop()
        raise NotAvailable('redis-server did not start: ' + tail)

    @property
    def pid(self):
        return self.proc.pid

    def pause(self):
        """SIGSTOP this redis-server (by its pid): calls hang rather
        than fail. resume() (SIGCONT) must follow; stop() resumes too."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if getattr(self, 'paused', False) and self.proc is not None and \
                self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        self.resume()
        end_process(self.proc)
        if self.proc is not None:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
        self.proc = None


class DelayProxy:
    """delayproxy.py in a subprocess of its own between the zorg.live
    processes and redis-server: slow(True) makes every Redis answer
    `delay` seconds late (SIGUSR1), slow(False) ends that (SIGUSR2); stop()
    ends it by pid."""

    def __init__(self, delay=0.05):
        self.delay = delay
        self.proc = None

    @property
    def url(self):
        return 'redis://%s:%d/0' % (HOST, self.port)

    def start(self, target_port, timeout=10.0):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'delayproxy.py'),
             '--listen', str(self.port), '--target',
             '%s:%d' % (HOST, target_port), '--delay', str(self.delay)],
            stdout=subprocess.PIPE)
        line = b''
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if select.select([self.proc.stdout], [], [], 0.2)[0]:
                line = self.proc.stdout.readline()
                break
        if not line.startswith(b'ready'):
            self.stop()
            raise NotAvailable('delayproxy.py did not start')
        return self

    def slow(self, on):
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self):
        end_process(self.proc)
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None


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


MEMPROBE = os.path.join(HERE, 'memprobe')


def enable_memprobe():
    """Python processes started from now on load memprobe/sitecustomize
    (PYTHONPATH), which collects garbage and trims the heap on SIGUSR2;
    returns its directory (removed by the caller)."""
    d = tempfile.mkdtemp(prefix='zorg-bench-memprobe-')
    os.environ['ZORG_BENCH_MEMPROBE'] = d
    os.environ['PYTHONPATH'] = os.pathsep.join(
        [MEMPROBE] + [p for p in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if p])
    return d


def catches_sigusr2(pid):
    """Whether pid has a handler for SIGUSR2 (SigCgt in /proc): only
    then is it sent (its default action ends a process, and nginx takes
    it for a binary upgrade)."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('SigCgt:'):
                    return bool(int(line.split()[1], 16) &
                                (1 << (signal.SIGUSR2 - 1)))
    except (OSError, ValueError):
        pass
    return False


def collect_memory(pids, timeout=5.0):
    """Ask the memory probe of each of pids (and their children) that
    has one to collect its garbage and trim its heap; wait until all have
    (bounded). Returns the bytes their Python allocations hold
    (tracemalloc, when they run with PYTHONTRACEMALLOC) or None."""
    d = os.environ.get('ZORG_BENCH_MEMPROBE')
    if not d:
        return 0
    asked = []
    for root in pids:
        for pid in descendants(root):
            if catches_sigusr2(pid):
                path = os.path.join(d, str(pid))
                try:
                    os.unlink(path)
                except OSError:
                    pass
                os.kill(pid, signal.SIGUSR2)
                asked.append(path)
    deadline = time.time() + timeout
    while time.time() < deadline and not all(os.path.exists(p)
                                             for p in asked):
        time.sleep(0.02)
    traced = []
    for p in asked:
        try:
            with open(p) as f:
                traced.append(int(f.read().split()[2]))
        except (OSError, ValueError, IndexError):
            traced.append(-1)
    # bytes Python holds (tracemalloc), None unless every process traced
    return sum(traced) if traced and min(traced) >= 0 else None


def cpu_by_process(pids):
    """{pid: user + system CPU seconds} of pids and their children, each
    process apart (which one is at 100 % of a core?)."""
    tick = float(os.sysconf('SC_CLK_TCK'))
    out = {}
    for root in pids:
        for pid in descendants(root):
            try:
                with open('/proc/%d/stat' % pid) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                pass
    return out


def cpu_s(pids):
    """Sum of user + system CPU seconds of pids and their children
    (/proc/<pid>/stat)."""
    tick = os.sysconf('SC_CLK_TCK')
    total = 0
    for root in pids:
        for pid in descendants(root):
            try:
                with open('/proc/%d/stat' % pid) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, ValueError, IndexError):
                pass
    return total / float(tick)


def machine_cpu():
    """(busy, total, interrupts) CPU seconds of the whole machine, all
    cores (/proc/stat; idle and iowait count as not busy; interrupts: irq
    + softirq, mostly the loopback traffic, in no process's figures)."""
    tick = float(os.sysconf('SC_CLK_TCK'))
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = sum(fields[:8])             # without guest (counted in user)
    idle = fields[3] + fields[4]
    return (total - idle) / tick, total / tick, \
        (fields[5] + fields[6]) / tick


class Server:
    kind = 'peer'

    def __init__(self, port):
        self.port = port

    @property
    def endpoints(self):
        """[(host, port)]: where pages connect (spread evenly)."""
        return [(HOST, self.port)]

    @property
    def pids(self):
        return [self.proc.pid]

    def rss_kb(self):
        return rss_kb(self.pids)

    def cpu_s(self):
        return cpu_s(self.pids)

    def collect_memory(self):
        return collect_memory(self.pids)

    def cpu_by_process(self):
        return cpu_by_process(self.pids)

    def aux_pids(self):
        """{name: pid} of helper processes not counted as the server
        (redis-server): reported separately."""
        return {}

    async def restart(self):
        """Crash (SIGKILL) and start again on the same endpoints
        (reconnect storm)."""
        self.kill()
        await self.start()

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
    script = 'aiohttp_broadcaster.py'

    async def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'peers', self.script),
             str(self.port)])
        if not await wait_port(self.port):
            self.stop()
            raise NotAvailable('aiohttp broadcaster did not start')


class AiohttpWsServer(AiohttpServer):
    script = 'aiohttp_ws_broadcaster.py'


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

    def __init__(self, port, server_type, **settings):
        Server.__init__(self, port)
        self.server_type = server_type
        self.settings = settings
        self.handle = None

    async def start(self):
        try:
            self.handle = await asyncio.get_running_loop().run_in_executor(
                None, lambda: start_zorglive(self.server_type, self.port,
                                             **self.settings))
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


class ZorgRedisServer(Server):
    """A redis-server and `processes` zorg.live LiveServerHTTP processes
    with the redis broker (`broker redis://...` in <zorg-live>), each on a
    port of its own. Pages are spread over the processes; publishers go to
    them in turn, the first to the first process. restart() (reconnect
    storm) SIGKILLs the zorg.live processes and starts them again on the
    same ports; redis-server and its history stay."""
    kind = 'zorg'

    def __init__(self, port, processes=2, server_type='liveserver-http',
                 proxy=False, **settings):
        Server.__init__(self, port)
        self.ports = [port] + [free_port() for _ in range(processes - 1)]
        self.server_type = server_type
        self.settings = settings
        self.redis = RedisProcess()
        # proxy: the zorg.live processes reach redis-server through a
        # DelayProxy (slow-redis scenario), delay off until slow(True)
        self.proxy = DelayProxy() if proxy else None
        self.handles = []
        self._turn = 0

    async def start(self):
        loop = asyncio.get_running_loop()
        if self.redis.proc is None:
            await loop.run_in_executor(None, self.redis.start)
        url = self.redis.url
        if self.proxy is not None:
            if self.proxy.proc is None:
                await loop.run_in_executor(None, self.proxy.start,
                                           self.redis.port)
            url = self.proxy.url
        # all at once (each start is mostly Python importing Zope)
        started = await asyncio.gather(*(loop.run_in_executor(
            None, lambda p=port: start_zorglive(
                self.server_type, p, broker=url, **self.settings))
            for port in self.ports), return_exceptions=True)
        self.handles = [h for h in started
                        if not isinstance(h, BaseException)]
        failed = [h for h in started if isinstance(h, BaseException)]
        try:
            if failed:
                raise failed[0]
            for port in self.ports:
                if not await wait_port(port):
                    raise NotAvailable('zorg.live server did not start')
        except BaseException:
            self.stop()
            raise

    @property
    def endpoints(self):
        return [(HOST, p) for p in self.ports]

    @property
    def pids(self):
        return [pid for h in self.handles for pid in h.pids]

    def aux_pids(self):
        return {'redis-server': self.redis.pid} if self.redis.proc else {}

    @property
    def page_url(self):
        return ZorgLiveServer.page_url

    def stop(self):
        try:
            self.redis.resume()        # never leave it stopped
            while self.handles:
                self.handles.pop().stop()
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            self.redis.stop()

    def kill(self):
        """SIGKILL the zorg.live processes (redis-server stays)."""
        while self.handles:
            self.handles.pop().kill()

    def publisher(self):
        port = self.ports[self._turn % len(self.ports)]
        self._turn += 1
        return ZorgPublisher(port, self.page_url)


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


class WsPublisher:
    """Publishing over a WebSocket of its own (the chat's senders: input
    over the socket), with the `websockets` library's asyncio client.

    zorg.live: a page of its own is rendered and attached (page 1), and
    each publish is {"type":"input","page":1,"id":...,"handler":
    "publish","arguments":[payload]}, done when its {"type":"ack"} is
    back (ok: status 200). The peers: the payload is sent as a text frame
    (published to everyone, the sender included), done when the
    sender's own copy is back."""

    def __init__(self, port, path, page_url=None, timeout=10.0):
        self.port, self.path, self.page_url = port, path, page_url
        self.timeout = timeout
        self.ws = self.reader = None
        self.waiting = {}           # input id / seq -> future
        self.attached = None

    async def _open(self):
        from websockets.asyncio.client import connect
        path = self.path
        if self.page_url is not None:       # zorg.live: a page first
            from adapters import CLIENT_URL_RE, LAST_ID_RE, _path
            from wsclient import LIVE_URL_RE, UUID_RE
            client = HttpClient(self.port)
            status, body = await client.request('GET', self.page_url)
            client.close()
            m, u = CLIENT_URL_RE.search(body), UUID_RE.search(body)
            if status != 200 or not (m and u):
                raise OSError('render: HTTP %d' % status)
            live = LIVE_URL_RE.search(body)
            if live:
                path = _path(live.group(1).decode())
            last = LAST_ID_RE.search(body)
            attach = {'type': 'attach', 'page': 1,
                      'uuid': u.group(1).decode(),
                      'lastEventId': (last.group(1).decode() or None)
                      if last else None,
                      'url': _path(m.group(1).decode())}
        origin = 'http://%s:%d' % (HOST, self.port)
        self.ws = await connect(origin.replace('http', 'ws', 1) + path,
                                origin=origin, compression=None,
                                open_timeout=self.timeout,
                                ping_interval=None, max_size=2 ** 20)
        self.reader = asyncio.ensure_future(self._read())
        if self.page_url is not None:
            self.attached = asyncio.get_running_loop().create_future()
            await self.ws.send(json.dumps(attach))
            await asyncio.wait_for(self.attached, self.timeout)

    async def _read(self):
        from adapters import BENCH_RE
        try:
            async for text in self.ws:
                if isinstance(text, bytes):
                    continue
                if self.page_url is None:
                    key = None
                    m = BENCH_RE.search(text.encode())
                    if m:
                        key = int(m.group(1))
                    fut = self.waiting.pop(key, None)
                    if fut is not None and not fut.done():
                        fut.set_result(True)
                    continue
                if '"zb"' in text and '"ack"' not in text:
                    continue        # the chat's events: not ours to count
                msg = json.loads(text)
                if msg.get('type') == 'attached' and self.attached and \
                        not self.attached.done():
                    self.attached.set_result(True)
                elif msg.get('type') == 'ack':
                    fut = self.waiting.pop(msg.get('id'), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg.get('status') == 200)
                elif msg.get('type') == 'error' and self.attached and \
                        not self.attached.done():
                    self.attached.set_exception(OSError(text))
        except Exception:
            pass
        finally:
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_result(False)
            self.waiting.clear()

    async def publish(self, seq):
        """Publish event seq; returns (ok, t) with t the publish time."""
        try:
            if self.ws is None:
                await self._open()
            t = time.time()
            fut = asyncio.get_running_loop().create_future()
            if self.page_url is not None:
                key = 'b%d' % seq
                frame = {'type': 'input', 'page': 1, 'id': key,
                         'handler': 'publish',
                         'arguments': [payload(seq, t)]}
            else:
                key, frame = seq, payload(seq, t)
            self.waiting[key] = fut
            await self.ws.send(json.dumps(frame))
            ok = await asyncio.wait_for(fut, self.timeout)
            return ok, t
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            self.close()
            return False, time.time()
        except Exception:       # the connection closed (websockets)
            self.close()
            return False, time.time()

    def close(self):
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            asyncio.ensure_future(self.ws.close())
        self.ws = self.reader = None


def chat_publisher(system, server):
    """The chat's senders: over a WebSocket of their own for the
    WebSocket systems (input over the socket), else server.publisher()
    (HTTP POST)."""
    if system.adapter.endswith('-ws'):
        if system.kind == 'zorg':
            return WsPublisher(server.port, '/@@live', server.page_url)
        return WsPublisher(server.port, '/ws')
    return server.publisher()


# --- registry -----------------------------------------------------------------

class System:
    """baseline: the name of the system this one is compared with in an
    extra ratio column (zorg-redis-sse against zorg-live-sse); quick: the
    settings (scenarios.QUICK keys) this system uses in --quick mode instead
    of the common ones; in_quick: whether --quick runs it when --systems is
    not given; quick_scenarios: the only scenarios --quick runs for it when
    --scenarios is not given (None: all)."""

    def __init__(self, name, adapter, factory, kind='peer', label=None,
                 baseline=None, quick=None, in_quick=True,
                 quick_scenarios=None, options=None):
        self.name, self.adapter, self.factory = name, adapter, factory
        self.options = options or {}
        self.kind = kind
        self.label = label or name
        self.baseline = baseline
        self.quick = quick or {}
        self.in_quick = in_quick
        self.quick_scenarios = quick_scenarios

    async def start(self, port):
        server = self.factory(port)
        await server.start()
        return server

    def adapter_options(self, server):
        if self.kind == 'zorg':
            return dict(self.options, page_url=server.page_url)
        return dict(self.options)


SYSTEMS = {s.name: s for s in [
    # WSGI-HTTP offers no SSE (501: a thread per stream would be held for
    # good), so only its long-poll is measured. Its capacity is its thread
    # count: most pages never get an answer and every other scenario only
    # waits for its timeouts, so --quick runs its capacity alone, at 1,000
    # pages with a short timeout.
    System('zorg-wsgi-lp', 'zorg-lp',
           lambda port: ZorgServer(port, 'wsgi-http'), 'zorg',
           'zorg.live WSGI-HTTP long-poll',
           quick=dict(capacity_sizes=[1000], open_timeout=5.0),
           quick_scenarios=['capacity']),
    System('zorg-live-sse', 'zorg-sse',
           lambda port: ZorgServer(port, 'liveserver-http'), 'zorg',
           'zorg.live LiveServerHTTP SSE'),
    System('zorg-live-lp', 'zorg-lp',
           lambda port: ZorgServer(port, 'liveserver-http'), 'zorg',
           'zorg.live LiveServerHTTP long-poll'),
    # Two LiveServerHTTP processes on one redis-server, pages half on each
    # (issue 6): compared with zorg-live-sse / -lp, one process with the
    # in-memory broker.
    # --quick: capacity and fan-out at 5,000 pages only (the 1,000 rows of
    # two processes mostly show their fixed overhead).
    System('zorg-redis-sse', 'zorg-sse', ZorgRedisServer, 'zorg',
           'zorg.live redis broker, 2 processes, SSE',
           baseline='zorg-live-sse',
           quick=dict(capacity_sizes=[5000], fanout_sizes=[5000])),
    System('zorg-redis-lp', 'zorg-lp', ZorgRedisServer, 'zorg',
           'zorg.live redis broker, 2 processes, long-poll',
           baseline='zorg-live-lp', in_quick=False,
           quick=dict(capacity_sizes=[5000], fanout_sizes=[5000])),
    System('aiohttp-sse', 'aiohttp-sse', AiohttpServer, 'peer',
           'aiohttp broadcaster SSE'),
    System('nchan-sse', 'nchan-sse', NchanServer, 'peer', 'nginx+nchan SSE'),
    System('nchan-lp', 'nchan-lp', NchanServer, 'peer',
           'nginx+nchan long-poll'),
    # WebSocket (issue 13): `make bench-ws`. zorg.live's pages are
    # rendered, then attached to <app URL>/@@live (one page per
    # connection unless a scenario asks for more); the chat's senders
    # send their input over a socket of their own (chat_publisher).
    # Connection tickets live 600 s here, not 60: capacity registers all
    # N pages before it opens any socket, which at 10,000 pages on a busy
    # machine takes longer than a browser takes from render to connect.
    System('zorg-live-ws', 'zorg-ws',
           lambda port: ZorgServer(port, 'liveserver-http',
                                   ticket_lifetime=600), 'zorg',
           'zorg.live LiveServerHTTP WebSocket', in_quick=False),
    # The same without the connection ticket (issue 21): each handshake
    # asks the site who it is (the publisher, in a worker thread).
    System('zorg-live-ws-noticket', 'zorg-ws',
           lambda port: ZorgServer(port, 'liveserver-http',
                                   ticket_lifetime=600), 'zorg',
           'zorg.live LiveServerHTTP WebSocket, no ticket', in_quick=False,
           baseline='zorg-live-ws', options={'ticket': 0}),
    System('aiohttp-ws', 'aiohttp-ws', AiohttpWsServer, 'peer',
           'aiohttp broadcaster WebSocket', in_quick=False),
    System('nchan-ws', 'nchan-ws', NchanServer, 'peer',
           'nginx+nchan WebSocket', in_quick=False),
]}
