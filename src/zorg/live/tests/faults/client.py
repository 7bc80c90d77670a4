"""A client that behaves as livepage.js does (see driver.py), and
records each of its steps in the run's history."""

import asyncio
import json
import re

import aiohttp

from zorg.live.tests.faults.cluster import REFRESH
from zorg.live.tests.faults.model import PageModel

PAGE = 'fault-chat.html'
UUID = re.compile(r'data-uuid="([^"]+)"')
LAST = re.compile(r'data-last-event-id="([^"]*)"')
KEY = re.compile(r'data-live-key="([^"]+)"')
INPUT_TIMEOUT = 10.0    # a client gives an input up after this, and resends
INPUT_ATTEMPTS = 8
# A refused attach, as the status the same refusal has over HTTP.
SOCKET_ERRORS = {'unknown-page': 404, 'broker-unavailable': 503,
                 'busy': 503}


class PageState:
    """The page a client holds: its browser state and where it is."""

    def __init__(self, name, uuid, model):
        self.name, self.uuid, self.model = name, uuid, model
        self.outputNum = 0
        self.ended = False

    def path(self, step):
        return '%s/@@client/%s/%s' % (PAGE, self.uuid, step)


class Client:

    def __init__(self, run, plan):
        self.run, self.plan = run, plan
        self.name = plan.name
        self.rng = run.plan.clientRandom(plan.name)
        self.history = run.history
        self.page = None
        self.pages = 0
        self.posted = 0
        self.closeRequested = False
        self.newPage = asyncio.Event()
        self.registering = asyncio.Lock()
        self.sockets = None     # (ws, process, page) while one is open
        self.acks = {}          # input id -> future of (status, reply)
        self.stats = {'dropped-input': 0, 'dropped-stream': 0,
                      'slow-commit': 0}

    def process(self):
        return self.rng.randrange(self.run.cluster.count)

    async def backoff(self, longest=0.5):
        await asyncio.sleep(self.rng.uniform(0.02, longest))

    # -- pages ---------------------------------------------------------

    async def render(self, s):
        """Render a new page (retrying until one renders or the run is
        over)."""
        self.pages += 1
        name = '%s.p%d' % (self.name, self.pages)
        while not self.run.over():
            n = self.process()
            op = self.history.begin('render', n, self.name, name)
            try:
                async with s.get(self.run.cluster.url(n, PAGE),
                                 timeout=aiohttp.ClientTimeout(
                                     total=15)) as r:
                    html = await r.text()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                op.finish(error=errorName(e))
                await self.backoff()
                continue
            if status != 200 or not UUID.search(html):
                op.finish(status=status)
                await self.backoff()
                continue
            uuid = UUID.search(html).group(1)
            last = LAST.search(html).group(1)
            shown = KEY.findall(html)
            op.finish(status=200, uuid=uuid, lastEventId=last, shown=shown)
            self.page = PageState(name, uuid, PageModel(shown, last))
            self.newPage.set()
            return self.page
        return None

    def end(self, page, reason):
        if not page.ended:
            page.ended = True
            self.history.add('end', None, self.name, page.name,
                             reason=reason)
        if self.page is page:
            self.page = None
            self.newPage.clear()

    async def register(self, s, page, uuid):
        """After a 404 for `uuid`: register the page again (once, whoever
        of reader and writer saw the 404 first)."""
        async with self.registering:
            if page.ended or page.uuid != uuid:
                return
            n = self.process()
            op = self.history.begin('register', n, self.name, page.name)
            params = {}
            if page.model.lastEventId:
                params['lastEventId'] = page.model.lastEventId
            try:
                async with s.post(self.run.cluster.url(
                        n, '%s/@@client/register' % PAGE), params=params,
                        timeout=aiohttp.ClientTimeout(total=10)) as r:
                    status = r.status
                    body = await r.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError,
                    ValueError) as e:
                op.finish(error=errorName(e))
                await self.backoff()
                return
            if not isinstance(body, dict):
                body = {}
            recovered = body.get('recovered') if status == 200 else None
            op.finish(status=status, uuid=body.get('uuid'),
                      recovered=recovered)
            if status == 200 and recovered is True:
                page.uuid = body['uuid']
                page.outputNum = 0
            elif status == 200 or (400 <= status < 500):
                self.end(page, 'reload')     # as livepage.js reloads
            else:
                await self.backoff()

    async def close(self, s, page):
        n = self.process()
        op = self.history.begin('close', n, self.name, page.name)
        try:
            async with s.post(self.run.cluster.url(n, page.path('close')),
                              timeout=aiohttp.ClientTimeout(total=5)) as r:
                op.finish(status=r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            op.finish(error=errorName(e))
        self.end(page, 'closed')

    # -- reading -------------------------------------------------------

    def transport(self):
        if self.plan.transport == 'mixed':
            return self.rng.choice(['sse', 'longpoll'])
        return self.plan.transport

    def applyEvents(self, page, events):
        for event in events:
            if page.model.apply(event) == 'reload':
                self.end(page, 'reload')
                return

    async def read(self, s, page):
        """One output request or SSE connection of `page`."""
        transport = self.transport()
        if transport == 'sse':
            status = await self.stream(s, page)
        elif transport == 'ws':
            status = await self.socket(s, page)
        else:
            status = await self.poll(s, page)
        if status in (404, 400):
            await self.register(s, page, page.uuid)
        elif status != 200:
            await self.backoff(1.0)

    async def poll(self, s, page):
        n = self.process()
        num = page.outputNum
        params = {'outputNum': str(num)}
        if page.model.lastEventId:
            params['lastEventId'] = page.model.lastEventId
        op = self.history.begin('read', n, self.name, page.name,
                                transport='longpoll', outputNum=num)
        request = self.getJSON(s, self.run.cluster.url(n, page.path(
            'output')), params, REFRESH + 8)
        if self.rng.random() < self.plan.dropStream:
            self.stats['dropped-stream'] += 1
            try:
                status, body = await asyncio.wait_for(
                    request, self.rng.uniform(0.05, REFRESH + 0.5))
            except asyncio.TimeoutError:
                op.finish(error='dropped')
                return None
        else:
            status, body = await request
        if status != 200 or not isinstance(body, dict):
            op.finish(status=status, error=body if status is None else None)
            return status
        events = body.get('events') or []
        op.finish(status=200, events=events)
        if any(e.get('event') == 'reconnect' for e in events):
            return None       # not recorded by the server: ask again
        self.applyEvents(page, events)
        page.outputNum = num + 1
        return 200

    async def getJSON(self, s, url, params, timeout):
        try:
            async with s.get(url, params=params, headers={
                    'Accept': 'application/json'},
                    timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return r.status, await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            return None, errorName(e)

    async def stream(self, s, page):
        n = self.process()
        params = {}
        if page.model.lastEventId:
            params['lastEventId'] = page.model.lastEventId
        op = self.history.begin('read', n, self.name, page.name,
                                transport='sse', events=[])
        dropped = self.rng.random() < self.plan.dropStream
        lasts = self.rng.uniform(0.05 if dropped else 0.3,
                                 self.plan.streamFor)
        if dropped:
            self.stats['dropped-stream'] += 1
        try:
            return await asyncio.wait_for(
                self._stream(s, page, n, params, op), lasts)
        except asyncio.TimeoutError:
            op.finish(status=200 if op.result.get('status') is None
                      else op.result['status'],
                      error='dropped' if dropped else None)
            return 200
        except (aiohttp.ClientError, ValueError) as e:
            op.finish(error=errorName(e))
            return None

    async def _stream(self, s, page, n, params, op):
        url = self.run.cluster.url(n, page.path('events'))
        async with s.get(url, params=params, headers={
                'Accept': 'text/event-stream'},
                timeout=aiohttp.ClientTimeout(total=None,
                                              sock_connect=5)) as r:
            op.result['status'] = r.status
            if r.status != 200:
                op.finish()
                return r.status
            data, eventId = [], None
            async for raw in r.content:
                line = raw.decode('utf-8').rstrip('\r\n')
                if line.startswith('data:'):
                    data.append(line[5:].lstrip(' '))
                elif line.startswith('id:'):
                    eventId = line[3:].strip()
                elif not line and data:
                    event = json.loads('\n'.join(data))
                    data = []
                    if eventId and 'id' not in event:
                        event['id'] = eventId
                    eventId = None
                    if event.get('event') == 'reconnect':
                        break
                    op.result['events'].append(event)
                    self.applyEvents(page, [event])
                    if page.ended:
                        break
            op.finish()
            return 200

    async def socket(self, s, page):
        """One WebSocket (``<app URL>/@@live``) with `page` attached to
        it as page 1; the writer's inputs go over it while it is open."""
        n = self.process()
        op = self.history.begin('read', n, self.name, page.name,
                                transport='ws', events=[])
        dropped = self.rng.random() < self.plan.dropStream
        lasts = self.rng.uniform(0.05 if dropped else 0.3,
                                 self.plan.streamFor)
        if dropped:
            self.stats['dropped-stream'] += 1
        url = self.run.cluster.url(n, '@@live').replace('http', 'ws', 1)
        try:
            async with s.ws_connect(url, timeout=aiohttp.ClientWSTimeout(
                    ws_close=2), max_msg_size=0) as ws:
                try:
                    return await asyncio.wait_for(
                        self._socket(ws, n, page, op), lasts)
                except asyncio.TimeoutError:
                    op.finish(status=200, error='dropped' if dropped
                              else None)
                    return 200
                finally:
                    self.sockets = None
                    for future in self.acks.values():
                        if not future.done():
                            future.set_result((None, 'connection'))
                    self.acks = {}
        except (aiohttp.ClientError, ValueError) as e:
            op.finish(error=errorName(e))
            return None

    async def _socket(self, ws, n, page, op):
        clientURL = self.run.cluster.url(n, '%s/@@client/%s' % (
            PAGE, page.uuid))
        await ws.send_json({'type': 'attach', 'page': 1,
                            'uuid': page.uuid, 'url': clientURL,
                            'lastEventId': page.model.lastEventId})
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            kind = data.get('type')
            if kind == 'attached':
                self.sockets = (ws, n, page)
            elif kind == 'events':
                op.result['events'].extend(data['events'])
                self.applyEvents(page, data['events'])
                if page.ended:
                    break
            elif kind == 'ack':
                self.answer(data.get('id'), data.get('status'),
                            data.get('reply'))
            elif kind == 'error':
                if 'id' in data:          # an input refused
                    self.answer(data['id'], 503 if data.get('error') ==
                                'busy' else 400, data)
                    continue
                error = data.get('error')
                op.finish(status=SOCKET_ERRORS.get(error, 400), error=error)
                return op.result['status']
            elif kind == 'reconnect':
                break
        op.finish(status=200)
        return 200

    def answer(self, inputId, status, reply):
        future = self.acks.pop(inputId, None)
        if future is not None and not future.done():
            future.set_result((status, reply))

    async def reader(self, s):
        while True:
            page = self.page
            if page is None:
                if self.run.drained(self):
                    return
                page = await self.render(s)
                if page is None:
                    return
                continue
            if self.run.drained(self):
                self.end(page, 'final')
                return
            if self.closeRequested:
                self.closeRequested = False
                await self.close(s, page)
                continue
            await self.read(s, page)

    # -- posting -------------------------------------------------------

    async def writer(self, s):
        while not self.run.postingOver():
            await asyncio.sleep(min(self.rng.expovariate(
                1 / self.plan.pause), 2.0))
            if self.run.postingOver():
                break
            self.posted += 1
            text = '%s-%d' % (self.name, self.posted)
            slow = 0
            if self.rng.random() < self.plan.slowCommit:
                slow = round(self.rng.uniform(0.1, 1.5), 2)
                self.stats['slow-commit'] += 1
            await self.post(s, text, slow)
            if self.rng.random() < self.plan.closePage:
                self.closeRequested = True

    async def currentPage(self, timeout=30):
        try:
            await asyncio.wait_for(self.newPage.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return self.page

    async def post(self, s, text, slow, attempts=INPUT_ATTEMPTS,
                   drops=True):
        """Post `text` until it is answered 200 (True), refused for good,
        or its page is gone (False)."""
        page = await self.currentPage()
        if page is None:
            return False
        for attempt in range(attempts):
            if page.ended:
                return False    # a reload forgets what the page sent
            n = self.process()
            uuid = page.uuid
            op = self.history.begin('input', n, self.name, page.name,
                                    id=text, slow=slow, attempt=attempt,
                                    uuid=uuid)
            if self.sockets is not None and self.sockets[2] is page:
                # Over the page's WebSocket, as the shared connection
                # sends it.
                ws, n, _page = self.sockets
                op.process = n
                op.result['via'] = 'ws'
                request = self.sendInput(ws, page, text, slow)
            else:
                request = self.postInput(s, n, page, text, slow)
            if drops and self.rng.random() < self.plan.dropInput:
                self.stats['dropped-input'] += 1
                try:
                    status, body = await asyncio.wait_for(
                        request, self.rng.uniform(0.005, 0.5))
                except asyncio.TimeoutError:
                    op.finish(error='dropped')
                    continue
            else:
                status, body = await request
            if status is None:
                op.finish(error=body)
                await self.backoff()
                continue
            op.finish(status=status, error=body.get('error')
                      if isinstance(body, dict) else None)
            if status == 200:
                return True
            if status == 404:
                await self.register(s, page, uuid)
            elif status in (500, 503):
                await self.backoff(1.0)
            else:
                return False
        return False

    async def sendInput(self, ws, page, text, slow):
        future = asyncio.get_running_loop().create_future()
        self.acks[text] = future
        try:
            await ws.send_json({'type': 'input', 'page': 1, 'id': text,
                                'handler': 'post',
                                'arguments': [text, slow]})
            return await asyncio.wait_for(future, INPUT_TIMEOUT)
        except asyncio.TimeoutError:
            return None, 'timeout'
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
            return None, errorName(e)
        finally:
            self.acks.pop(text, None)

    async def postInput(self, s, n, page, text, slow):
        url = self.run.cluster.url(n, page.path('input'))
        try:
            async with s.post(url, json={'handler': 'post',
                                         'arguments': [text, slow]},
                              headers={'X-Live-Input-Id': text},
                              timeout=aiohttp.ClientTimeout(
                                  total=INPUT_TIMEOUT)) as r:
                try:
                    body = await r.json(content_type=None)
                except ValueError:
                    body = None
                return r.status, body
        except asyncio.TimeoutError:
            return None, 'timeout'
        except aiohttp.ClientError as e:
            return None, errorName(e)


def errorName(error):
    if isinstance(error, asyncio.TimeoutError):
        return 'timeout'
    if isinstance(error, aiohttp.ClientConnectionError):
        return 'connection'
    return type(error).__name__
