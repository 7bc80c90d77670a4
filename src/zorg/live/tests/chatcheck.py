"""A chat through live processes that fail, and its count afterwards.

The pages are ``snapshot.html`` of the test site (lines stored in the
ZODB, each published with a key), kept as livepage.js keeps them over
long-poll: an answer that does not come (a process was killed under it)
is asked again with the same ``outputNum`` and ``lastEventId``; 404 means
register again, a reload event means render again. Lines are sent as
livepage.js sends input: with an ``X-Live-Input-Id``, again and again
until an answer comes (a 200, or a refusal that is final).

`tally` counts, from what was answered, stored and shown:

* lost: answered 200 and not stored;
* doubled: stored more than once;
* shown-unstored: shown by a page and not stored;
* refused-stored: refused (final 503) and stored all the same;
* missing: stored and not shown by a page that was open to the end.

Every count is 0 when the promises hold.
"""

import asyncio
import json
import re
import time

import aiohttp

LINE = re.compile(r'data-live-key="line-([^"]+)"')
UUID = re.compile(r'data-uuid="([^"]+)"')
FAILED = (asyncio.TimeoutError, aiohttp.ClientError)
# What a page may be answered besides 200 and 404: the broker or a process
# is away for now (503, and a proxy's 502/504). Anything else (a 500) is
# a failure of the test.
AWAY = (502, 503, 504)


def session():
    """One connection per request: each may land on another process."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=30))


class Page:
    """One open snapshot.html page; `lines` is what it shows. `transport`
    'longpoll' (output requests) or 'sse' (the event stream, opened again
    after ``Last-Event-ID`` when it breaks)."""

    def __init__(self, s, site, transport='longpoll'):
        self.s, self.site = s, site
        self.transport = transport
        self.lines = []
        self.reloads = 0
        self.uuid = None
        self.frames = 0     # SSE frames read (SSE only)
        self.streams = 0    # SSE streams opened (SSE only)

    async def render(self, deadline=60):
        until = time.monotonic() + deadline
        while True:
            try:
                async with self.s.get(self.site.url('snapshot.html')) as r:
                    if r.status == 200:
                        html = await r.text()
                        break
                    assert r.status in AWAY, r.status
            except FAILED:
                pass
            assert time.monotonic() < until, 'snapshot.html did not render'
            await asyncio.sleep(0.1)
        self.lines = LINE.findall(html)
        self.uuid = UUID.search(html).group(1)
        self.num, self.last = 0, None
        return self.lines

    def apply(self, event):
        """Apply one event as livepage.js does; False after a reload."""
        if 'id' in event:
            self.last = event['id']
        if event['event'] == 'reload':
            self.reloads += 1
            return False
        if event['event'] == 'append':
            # A keyed append is shown once (livepage.js): the render may
            # show a line that the stream brings too.
            key = event['key'][len('line-'):]
            if key not in self.lines:
                self.lines.append(key)
        return True

    async def run(self, stop):
        if self.transport == 'sse':
            return await self.stream(stop)
        await self.render()
        while not stop.is_set():
            url = self.site.url('@@snapshot.html/@@client/%s/output'
                                % self.uuid)
            params = {'outputNum': str(self.num)}
            if self.last:
                params['lastEventId'] = self.last
            try:
                async with self.s.get(url, params=params) as r:
                    status = r.status
                    body = await r.json() if status == 200 else None
            except FAILED:
                await asyncio.sleep(0.1)    # ask again, as livepage.js
                continue
            if status == 404:
                await self.render()
                continue
            if status != 200:
                assert status in AWAY, status
                await asyncio.sleep(0.2)
                continue
            self.num += 1
            for event in body['events']:
                if not self.apply(event):
                    await self.render()
                    break

    async def stream(self, stop):
        """The SSE stream until `stop`, as EventSource keeps it."""
        await self.render()
        while not stop.is_set():
            url = self.site.url('@@snapshot.html/@@client/%s/events'
                                % self.uuid)
            headers = {'Last-Event-ID': self.last} if self.last else {}
            try:
                async with self.s.get(url, headers=headers, timeout=(
                        aiohttp.ClientTimeout(total=None, sock_read=10))
                        ) as r:
                    if r.status == 404:
                        await self.render()
                        continue
                    if r.status != 200:
                        assert r.status in AWAY, r.status
                        await asyncio.sleep(0.2)
                        continue
                    self.streams += 1
                    if await self.readFrames(r, stop):
                        await self.render()
            except FAILED:
                await asyncio.sleep(0.1)    # EventSource reconnects

    async def readFrames(self, response, stop):
        """Apply the stream's frames; True when told to reload."""
        data = []
        async for raw in response.content:
            line = raw.decode().rstrip('\n')
            if line.startswith('data: '):
                data.append(line[len('data: '):])
            elif not line and data:
                self.frames += 1
                if not self.apply(json.loads('\n'.join(data))):
                    return True
                data = []
            if stop.is_set():
                return False
        return False


class Writer:
    """Sends lines through a page of its own, each until it is answered."""

    def __init__(self, s, site, name='w'):
        self.s, self.site, self.name = s, site, name
        self.page = Page(s, site)
        self.answers = {}       # text -> its final answer
        self.refusals = 0       # answers 502/503/504 that were retried

    async def say(self, text, deadline=60):
        if self.page.uuid is None:
            await self.page.render()
        url = self.site.url('@@snapshot.html/@@client/%s/input'
                            % self.page.uuid)
        headers = {'X-Live-Input-Id': '%s-%s' % (self.name, text)}
        until = time.monotonic() + deadline
        status = 'no answer'
        while time.monotonic() < until:
            try:
                async with self.s.post(url, headers=headers, json={
                        'handler': 'say', 'arguments': [text]}) as r:
                    status = r.status
            except FAILED:
                status = 'no answer'
                await asyncio.sleep(0.1)
                continue
            if status == 200 or status not in AWAY:
                break
            self.refusals += 1
            await asyncio.sleep(0.2)    # refused for now: try again
        self.answers[text] = status
        return status


def tally(answers, stored, pages):
    """The counts of the module's docstring (all 0 when nothing went
    wrong); `pages` are the lines that pages open to the end show."""
    accepted = {t for t, status in answers.items() if status == 200}
    refused = {t for t, status in answers.items() if status == 503}
    storedSet = set(stored)
    shown = set().union(*map(set, pages)) if pages else set()
    return {
        'lost': len(accepted - storedSet),
        'doubled': len(stored) - len(storedSet),
        'shown-unstored': len(shown - storedSet),
        'refused-stored': len(refused & storedSet),
        'missing': sum(len(storedSet - set(p)) for p in pages),
    }
