"""Protocol adapters: how one page of each system talks to its server.

An adapter is used inside a load-generator worker (loadgen.py). It builds
the raw HTTP/1.1 requests of one page and interprets the answers; the
connection, HTTP framing (httptools) and bookkeeping live in loadgen.Page.

    first(page)                      -> (request bytes, streaming)
    on_stream(page, data)            body bytes of a streaming request
                                     answered 200 (SSE); the page is live
    on_response(page, status, headers, body) -> next (request, streaming)
                                     or None; a complete response (also a
                                     streaming request answered non-200)

Benchmark events carry ``"zb": [seq, t]`` somewhere in their JSON, t being
the publisher's time.time(); page.deliver(seq, t) records them.
"""
import array
import json
import re

BENCH_RE = re.compile(rb'"zb":\s*\[(\d+),\s*([0-9.eE+-]+)\]')
CLIENT_URL_RE = re.compile(rb'data-client-url="([^"]+)"')
LAST_ID_RE = re.compile(rb'data-last-event-id="([^"]*)"')
EVENT_ID_RE = re.compile(rb'"id":\s*"([^"]*)"')


def get(path, host, headers=()):
    lines = ['GET %s HTTP/1.1' % path, 'Host: %s' % host]
    lines.extend(headers)
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')


def post(path, host, body=b'', ctype='application/json'):
    return (('POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n'
             'Content-Length: %d\r\n\r\n') % (path, host, ctype, len(body))
            ).encode('latin-1') + body


def deliver_all(page, data):
    for m in BENCH_RE.finditer(data):
        page.deliver(int(m.group(1)), float(m.group(2)))


def record(worker, page, seq, t, now):
    """Page `page` (with .seen, .nrecv) received event seq, published at
    t, at `now`: its latency goes to worker.recs[seq]; a duplicate is
    counted (worker.dups), not used."""
    i, bit = seq >> 3, 1 << (seq & 7)      # seen-bitmap
    seen = page.seen
    if i >= len(seen):
        seen.extend(bytes(i + 16 - len(seen)))
    elif seen[i] & bit:
        worker.dups += 1
        return
    seen[i] |= bit
    page.nrecv += 1
    recs = worker.recs.get(seq)
    if recs is None:
        recs = worker.recs[seq] = array.array('d')
    recs.append(now - t)


class Adapter:
    name = 'base'
    live_on_send = False      # long-poll: "live" once the request is out

    def __init__(self, options=None):
        self.options = options or {}

    # --- SSE ------------------------------------------------------------
    def on_stream(self, page, data):
        if page.sbuf:
            data = page.sbuf + data
        if b'\r' in data:
            data = data.replace(b'\r\n', b'\n')
        end = data.rfind(b'\n\n')
        if end < 0:
            page.sbuf = data
            return
        page.sbuf = data[end + 2:]
        block = data[:end]
        if b'zb' in block:
            deliver_all(page, block)
        if b'id:' in block:
            for line in block.split(b'\n'):
                if line.startswith(b'id:'):
                    page.last_id = line[3:].strip().decode('latin-1')

    def on_response(self, page, status, headers, body):
        page.fail('unexpected-response-%d' % status)
        return None


class AiohttpSSE(Adapter):
    """peers/aiohttp_broadcaster.py: GET /sub."""
    name = 'aiohttp-sse'

    def first(self, page):
        return get('/sub', page.hosthdr, ['Accept: text/event-stream']), True


class NchanSSE(Adapter):
    """nchan eventsource subscriber, resuming with Last-Event-ID."""
    name = 'nchan-sse'

    def first(self, page):
        headers = ['Accept: text/event-stream']
        if page.last_id:
            headers.append('Last-Event-ID: %s' % page.last_id)
        return get('/sse', page.hosthdr, headers), True


class NchanLongPoll(Adapter):
    """nchan long-poll: If-Modified-Since / If-None-Match from the last
    answer's Last-Modified / Etag ask for the next message."""
    name = 'nchan-lp'
    live_on_send = True

    def first(self, page):
        headers = []
        if page.lp_lastmod:
            headers.append('If-Modified-Since: %s' % page.lp_lastmod)
            headers.append('If-None-Match: %s' % page.lp_etag)
        return get('/lp', page.hosthdr, headers), False

    def on_response(self, page, status, headers, body):
        if status == 200:
            deliver_all(page, body)
            page.lp_lastmod = headers.get(b'last-modified', b'').decode()
            page.lp_etag = headers.get(b'etag', b'').decode()
        elif status not in (304, 408):
            page.error('http-%d' % status)
        return self.first(page)


# --- zorg.live (PROTOCOL.txt) ---------------------------------------------

def _path(url):
    """Absolute or relative URL -> path (a page keeps talking to the
    endpoint (process) it was given)."""
    if '://' in url:
        url = '/' + url.split('://', 1)[1].split('/', 1)[1]
    return url


class _Zorg(Adapter):
    """Pages are created by rendering options['page_url'] (a LivePage) and
    reading data-client-url / data-last-event-id from its script tag. An
    unknown page (404) registers again with its last applied event id."""

    def render(self, page):
        page.zstate = 'render'
        return get(self.options['page_url'], page.hosthdr), False

    def register(self, page):
        page.zstate = 'register'
        base = page.client_url.rsplit('/@@client/', 1)[0]
        path = '%s/@@client/register?lastEventId=%s' % (base,
                                                       page.last_id or '')
        return post(path, page.hosthdr), False

    def first(self, page):
        if page.client_url is None:
            return self.render(page)
        return self.stream_request(page)

    def on_response(self, page, status, headers, body):
        state = page.zstate
        if state == 'render':
            if status != 200:
                page.fail('render-http-%d' % status)
                return None
            m = CLIENT_URL_RE.search(body)
            if not m:
                page.fail('render-no-client-url')
                return None
            page.client_url = _path(m.group(1).decode())
            m = LAST_ID_RE.search(body)
            page.last_id = m.group(1).decode() if m else None
            page.num = 0
            if page.hold_after_render:      # capacity: registered only
                page.hold()
                return None
            return self.stream_request(page)
        if state == 'register':
            if status != 200:
                page.fail('register-http-%d' % status)
                return None
            data = json.loads(body)
            page.client_url = _path(data['clientURL'])
            page.num = 0
            page.registrations += 1
            if not data.get('recovered', True):
                page.error('not-recovered')
            return self.stream_request(page)
        if status == 404:
            return self.register(page)
        return self.on_stream_response(page, status, headers, body)


class ZorgLongPoll(_Zorg):
    """GET <client URL>/output?outputNum=N; N+1 acknowledges N; a failed
    request is repeated with the same N (loadgen resends page.request)."""
    name = 'zorg-lp'
    live_on_send = True

    def stream_request(self, page):
        page.zstate = 'output'
        return get('%s/output?outputNum=%d' % (page.client_url, page.num),
                   page.hosthdr), False

    def on_stream_response(self, page, status, headers, body):
        if status == 200:
            deliver_all(page, body)
            ids = EVENT_ID_RE.findall(body)
            if ids:
                page.last_id = ids[-1].decode()
            page.num += 1
        elif status == 503:
            page.error('busy')
            page.retry_later()
            return None
        else:
            page.error('output-http-%d' % status)
            if status == 400:       # out of window: start over cleanly
                page.client_url = None
                return self.render(page)
        return self.stream_request(page)


class ZorgSSE(_Zorg):
    """GET <client URL>/events with Last-Event-ID (and ?lastEventId=)."""
    name = 'zorg-sse'

    def stream_request(self, page):
        page.zstate = 'events'
        path = '%s/events' % page.client_url
        headers = ['Accept: text/event-stream']
        if page.last_id:
            path += '?lastEventId=%s' % page.last_id
            headers.append('Last-Event-ID: %s' % page.last_id)
        return get(path, page.hosthdr, headers), True

    def on_stream_response(self, page, status, headers, body):
        page.error('events-http-%d' % status)
        if status == 503:
            page.retry_later()
            return None
        return self.stream_request(page)


ADAPTERS = {cls.name: cls for cls in (
    AiohttpSSE, NchanSSE, NchanLongPoll, ZorgLongPoll, ZorgSSE)}
