"""WebSocket pages of the load generator (loadgen.py workers).

One WsConn = one WebSocket connection carrying one or more pages. The
framing is the `websockets` library's sans-I/O ClientProtocol (handshake,
frames, answers to the server's pings); this module only moves bytes
between it and a raw asyncio protocol, as loadgen.Page does with
httptools: no task per connection, so a worker holds thousands.

Adapters (ADAPTERS, merged into loadgen's):

  aiohttp-ws  peers/aiohttp_ws_broadcaster.py: GET /ws, every text frame
              is one published body
  nchan-ws    nginx + nchan, GET /ws (nchan_pubsub websocket)
  zorg-ws     zorg.live's shared connection (PROTOCOL.txt, issue 13):
              each page is rendered first (GET options['page_url'];
              data-uuid, data-client-url, data-last-event-id,
              data-live-url and data-live-ticket from its script tag),
              then `GET <data-live-url>?ticket=<data-live-ticket>`
              upgrades (options['ticket'] = 0: without the ticket, so
              the site is asked who it is) and the connection sends
              {"type":"attach","page":N,...} for each; a page is live
              once {"type":"attached","page":N} came back. Events arrive
              as {"type":"events","page":N,"events":[...]}.

options['pages'] (zorg-ws): pages per connection (default 1), of which
options['attach'] are attached when the connection opens (default all; 0:
none, the connection is live once open; Worker.cmd_attach attaches the
others later: memory of a connection, of its first page, of a further
page).

loadgen imports this module when a worker is configured with one of these
adapters. Worker.nlive counts live *pages*; a WsConn is `live` when all the
pages it was asked to attach are attached.
"""
import collections
import json
import random
import re
import time

import httptools
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

import loadgen
from adapters import (BENCH_RE, CLIENT_URL_RE, EVENT_ID_RE, LAST_ID_RE,
                      _path, get, record)

UUID_RE = re.compile(rb'data-uuid="([^"]+)"')
LIVE_URL_RE = re.compile(rb'data-live-url="([^"]+)"')
TICKET_RE = re.compile(rb'data-live-ticket="([^"]+)"')
PAGE_RE = re.compile(rb'"page":\s*(\d+)')


class WsPage:
    """One page carried by a connection (its number on it: 1, 2, ...)."""

    __slots__ = ('number', 'uuid', 'client_url', '_last_id', 'last_frame',
                 'live_path', 'ticket', 'seen', 'nrecv', 'attached',
                 'refused', 'retries')

    def __init__(self, number):
        self.number = number
        self.uuid = self.client_url = self.live_path = self.ticket = None
        self._last_id = self.last_frame = None
        self.seen = bytearray()
        self.nrecv = 0
        self.attached = False
        self.refused = None     # the error code of its attach's refusal
        self.retries = 0        # attaches sent again after busy

    @property
    def last_id(self):
        """The id of the last event applied (attach's lastEventId)."""
        if self.last_frame is not None:     # read only when attaching
            ids = EVENT_ID_RE.findall(self.last_frame)
            if ids:
                self._last_id = ids[-1].decode()
            self.last_frame = None
        return self._last_id

    @last_id.setter
    def last_id(self, value):
        self._last_id, self.last_frame = value, None


class WsConn(loadgen.Page):
    """One WebSocket connection of a worker with its pages; zorg-ws
    renders them first over a keep-alive HTTP connection of their own
    (closed before the WebSocket opens). A loadgen.Page for the
    bookkeeping (errors, dropping, reconnecting), with its own
    connection and receiving."""

    def __init__(self, worker, index, endpoint):
        self.w = worker
        self.a = worker.adapter
        self.index = index
        self.endpoint = endpoint
        self.host, self.port = worker.endpoints[endpoint]
        self.hosthdr = '%s:%d' % (self.host, self.port)
        self.npages = self.a.pages
        self.pages = [WsPage(i + 1) for i in range(self.npages)]
        self.want = self.a.attach_first     # pages to attach
        self.rendered = 0
        self.transport = self.proto = None
        self.phase = None                   # 'render' or 'ws'
        self.live = self.dead = False
        self.live_at = 0.0
        self.backoff = 0.0
        self.now = 0.0
        self.hold_after_render = False      # cmd_register: render only
        self.registered = False
        self.registered_at = 0.0
        self.registrations = 0
        # Where the connection is on its way to live (STEPS): a page that
        # never got there is counted by the step it stopped at, so that
        # an attach (or a handshake) that got no answer shows.
        self.step = 'new'

    # --- loadgen's page interface ------------------------------------------
    @property
    def nrecv(self):
        return sum(p.nrecv for p in self.pages)

    @property
    def nrecvs(self):
        return [p.nrecv for p in self.pages[:self.want]]

    def reset(self):
        for p in self.pages:
            p.nrecv = 0
            p.seen = bytearray()

    def waiting(self):
        """{step: pages} of the pages it was asked to attach that are not
        attached: where each waits (loadgen's status 'not_live')."""
        steps = collections.Counter()
        for page in self.pages[:self.want]:
            if not page.attached:
                steps['attach-refused-%s' % page.refused if page.refused
                      and self.step == 'attach-sent' else self.step] += 1
        return steps

    def prepare(self):
        """Before connecting (loadgen.Page.connect): render the pages
        first (zorg-ws), else open the WebSocket."""
        self.phase = 'render' if (self.a.render and
                                  self.rendered < self.npages) else 'ws'
        self.step = self.phase + '-connecting'

    def connection_made(self, transport):
        if self.dead:
            transport.close()
            return
        self.transport = transport
        if self.phase == 'render':
            self.step = 'render-sent'
            self.send_render()
        else:
            self.step = 'handshake-sent'
            page = self.pages[0]
            path = page.live_path or self.a.path
            if page.ticket and self.a.ticket:
                # As livepage.js: the page's connection ticket, so that
                # the handshake need not ask the site.
                path += '?ticket=' + page.ticket
            self.proto = ClientProtocol(
                parse_uri('ws://%s%s' % (self.hosthdr, path)),
                origin=Origin('http://' + self.hosthdr),
                max_size=self.a.max_size)
            self.proto.send_request(self.proto.connect())
            self.flush()

    def data_received(self, data):
        self.now = time.time()
        if self.phase == 'render':
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.fail('http-parse')
            return
        proto = self.proto
        proto.receive_data(data)
        for ev in proto.events_received():
            if isinstance(ev, Response):
                if proto.handshake_exc is not None:
                    self.fail('ws-handshake-%d' % ev.status_code)
                    return
                self.step = 'open'
                self.a.opened(self)
            elif ev.opcode is Opcode.TEXT:
                self.a.on_text(self, ev.data)
            elif ev.opcode is Opcode.BINARY:
                self.error('ws-binary-frame')
        self.flush()

    def flush(self):
        """Write what the protocol has to send (handshake, pongs, close);
        drop the connection once the protocol is done with it."""
        if self.transport is None:
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
        if self.proto.state is State.CLOSED or self.proto.close_expected():
            if self.proto.close_rcvd is not None:
                self.error('ws-closed-%d' % self.proto.close_rcvd.code)
            self.drop(self.w.reconnect)

    def eof_received(self):
        if self.phase == 'ws' and self.proto is not None:
            self.proto.receive_eof()
        return False

    def connection_lost(self, exc):
        if self.transport is None:
            return
        self.transport = None
        # Closed by the server or the kernel while we waited for it (a
        # close frame of the server was counted in flush already).
        self.error('lost-%s%s' % (self.step, ' (%s)' % type(exc).__name__
                                  if exc is not None else ''))
        self.drop(self.w.reconnect)

    # --- pages -----------------------------------------------------------------
    def _set_down(self):
        for p in self.pages:
            if p.attached:
                p.attached = False
                self.w.nlive -= 1
        self.live = False

    def page_live(self, page=None):
        """page is attached (None: the connection opened with none to
        attach)."""
        if page is not None and not page.attached:
            page.attached = True
            self.w.nlive += 1
        if not self.live and all(p.attached for p in self.pages[:self.want]):
            self.step = 'live'
            self.live = True
            self.live_at = time.time()
            self.backoff = 0.0

    def attach_upto(self, k):
        """Attach pages want+1..k as well (Worker.cmd_attach)."""
        k = min(k, self.npages)
        if k > self.want:
            old, self.want = self.want, k
            self.live = False
            if self.transport is not None and self.phase == 'ws':
                for page in self.pages[old:k]:
                    self.a.attach(self, page)
                self.flush()

    def send_text(self, obj):
        self.proto.send_text(json.dumps(obj).encode())

    def deliver_all(self, page, data):
        for m in BENCH_RE.finditer(data):
            record(self.w, page, int(m.group(1)), float(m.group(2)),
                   self.now)

    # --- rendering (zorg-ws) -------------------------------------------------
    def send_render(self):
        self.parser = httptools.HttpResponseParser(self)
        self.body = []
        # '{n}' in the URL: the page's number in the whole pool (the
        # simulation spreads groups over the pages with it).
        url = self.a.options['page_url'].replace(
            '{n}', str(self.index * self.npages + self.rendered))
        self.transport.write(get(url, self.hosthdr))

    # httptools calls what the protocol has: only the body and its end
    on_header = on_headers_complete = None

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        status = self.parser.get_status_code()
        keep = self.parser.should_keep_alive()
        body = b''.join(self.body)
        self.w.loop.call_soon(self.rendered_one, status, keep, body)

    def rendered_one(self, status, keep, body):
        if self.transport is None:
            return
        m = CLIENT_URL_RE.search(body) if status == 200 else None
        u = UUID_RE.search(body) if m else None
        if not u:
            self.fail('render-http-%d' % status if status != 200
                      else 'render-no-uuid')
            return
        page = self.pages[self.rendered]
        page.client_url = _path(m.group(1).decode())
        page.uuid = u.group(1).decode()
        m = LAST_ID_RE.search(body)
        page.last_id = (m.group(1).decode() or None) if m else None
        m = LIVE_URL_RE.search(body)
        page.live_path = _path(m.group(1).decode()) if m else None
        m = TICKET_RE.search(body)
        page.ticket = m.group(1).decode() if m else None
        self.rendered += 1
        self.registrations += 1
        if self.rendered < self.npages and keep:
            self.send_render()
            return
        t, self.transport = self.transport, None
        t.close()
        if self.rendered < self.npages:     # not kept alive: go on anew
            self.w.loop.create_task(self.connect())
        elif self.hold_after_render:
            self.hold_after_render = False
            self.registered = True
            self.registered_at = time.time()
        else:
            self.w.loop.create_task(self.connect())


class WsAdapter:
    """A peer's WebSocket: GET options['path'] (default /ws); each text
    frame is one published body; the page is live once the handshake is
    answered 101."""
    page_class = WsConn
    render = False
    path = '/ws'

    def __init__(self, options=None):
        self.options = options or {}
        self.pages = int(self.options.get('pages', 1))
        self.attach_first = int(self.options.get('attach', self.pages))
        self.path = self.options.get('path', self.path)
        # zorg-ws: send the rendered page's connection ticket (off: the
        # handshake asks the site, as before issue 21)
        self.ticket = bool(int(self.options.get('ticket', 1)))
        self.max_size = 2 ** 20

    def opened(self, conn):
        conn.page_live(conn.pages[0])

    def on_text(self, conn, data):
        if b'zb' in data:
            conn.deliver_all(conn.pages[0], data)


class AiohttpWS(WsAdapter):
    name = 'aiohttp-ws'


class NchanWS(WsAdapter):
    name = 'nchan-ws'


class ZorgWS(WsAdapter):
    """zorg.live: pages rendered, then attached to one connection."""
    name = 'zorg-ws'
    render = True
    path = '/@@live'

    def opened(self, conn):
        for page in conn.pages[:conn.want]:
            self.attach(conn, page)
        if not conn.want:       # a bare connection (shared-pages)
            conn.page_live()

    def attach(self, conn, page):
        conn.step = 'attach-sent'
        page.refused = None
        conn.send_text({'type': 'attach', 'page': page.number,
                        'uuid': page.uuid, 'lastEventId': page.last_id,
                        'url': page.client_url})

    def attach_again(self, conn, page):
        if (conn.transport is not None and conn.phase == 'ws'
                and not page.attached and page.refused):
            self.attach(conn, page)
            conn.flush()

    def on_text(self, conn, data):
        if b'"zb"' in data:         # an events frame of the benchmark
            m = PAGE_RE.search(data)
            page = conn.pages[int(m.group(1)) - 1]
            conn.deliver_all(page, data)
            page.last_frame = data      # its last event id, when needed
            return
        try:
            msg = json.loads(data)
        except ValueError:
            conn.error('ws-bad-json')
            return
        kind = msg.get('type')
        number = msg.get('page')
        page = conn.pages[number - 1] if isinstance(number, int) and \
            0 < number <= conn.npages else None
        if kind == 'attached' and page is not None:
            conn.page_live(page)
        elif kind == 'events' and page is not None:
            for event in msg.get('events', ()):
                if event.get('id'):
                    page.last_id = event['id']
                if event.get('event') == 'reload':
                    conn.error('reload')
        elif kind == 'error':
            error = msg.get('error')
            conn.error('ws-error-%s' % error)
            if page is not None and not page.attached:
                page.refused = error
                if error in ('busy', 'broker-unavailable'):
                    # As livepage-worker.js (attachLater): attached again
                    # after a backoff, on the same connection.
                    page.retries += 1
                    conn.w.loop.call_later(
                        random.uniform(0, min(4.0, 0.5 * 2 ** min(
                            page.retries, 3))), self.attach_again, conn,
                        page)
        elif kind == 'reconnect':
            conn.error('ws-reconnect')
        elif kind not in ('pong', 'detached', 'ack'):
            conn.error('ws-unexpected-%s' % kind)


ADAPTERS = {cls.name: cls for cls in (AiohttpWS, NchanWS, ZorgWS)}
