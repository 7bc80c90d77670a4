"""LivePageManager: the registry of open pages and the way events reach them.

One lock guards the registry and every page's delivery state. The broker has
its own lock and is only ever entered *after* this one (never the other way
round), and its listeners run outside its lock, so there is no lock cycle.
Waiting happens outside this lock: threads wait on the broker's condition,
event loops on futures that a broker listener resolves.

Presence: the manager keeps this process's clients per group and principal
(getClientsFor, the per-principal cap), and asks the broker's IPresence who
is online and whether a page is a principal's first or last in its group,
so with a shared broker the answers hold for every process. A broker
without IPresence gets a LocalPresence of the manager's own.

Page records: with a broker that shares them (IPageRecords), registering a
page stores its record there, and a request for a page id that this
process does not know *adopts* the page: a client is made from the record
(same id, principal, group, title, presence flags), joins presence here
(presence counts pages per process, so the principal leaves only when the
page is gone from every process) and reads from the request's last event
id (delivery.py, rules 8 and 9). So any process serves any page: no
sticky sessions. The processes that serve a page refresh its record's
expiry; an explicit close deletes it, a timeout here does not (the page
may live on in another process).

The I/O boundary: the lock guards this process's memory (the registry and
the pages' delivery state) and is never held across a broker call, which
may be a network round trip. Registering and closing do their broker work
(presence, records, the log's position) outside it. The event loop must
not wait on the broker at all: it calls the steps with ``local=True``,
which either finish from memory (the memory broker, or the Redis broker's
cache) or raise `WouldBlock` before changing anything, and the loop then
runs the same step in its broker executor (server/asgi.py).
"""

import logging
import re
import threading
import time

import zope.event
from zope.interface import implementer
from zope.interface.interfaces import ObjectEvent

from zorg.live.broker.memory import MemoryBroker
from zorg.live.broker.presence import LocalPresence
from zorg.live.interfaces import (
    BadRequest, BrokerUnavailable, ILivePageManager, IPageRecords,
    IPresence, IPrincipalJoinedEvent, IPrincipalLeftEvent, LiveError,
    UnknownPage)
from zorg.live.core import audience as _audience
from zorg.live.page.client import LivePageClient, redact
from zorg.live.core import delivery as _delivery
from zorg.live.core.delivery import Delivery
from zorg.live.core.events import Close, Error, Join, Leave, encode
from zorg.live.page.inputonce import InputOnce
from zorg.live.core.wire import reconnectAnswer, reloadText

READ_LIMIT = 500  # events in one answer; the rest come with the next

log = logging.getLogger('zorg.live.page')


class PresenceEvent(ObjectEvent):
    def __init__(self, client):
        super().__init__(client)
        self.principal = client.principal
        self.group_id = client.group_id


# Siblings, not parent and child: a left event must not provide
# IPrincipalJoinedEvent (its subscribers would take a leave for a join).
@implementer(IPrincipalJoinedEvent)
class PrincipalJoinedEvent(PresenceEvent):
    pass


@implementer(IPrincipalLeftEvent)
class PrincipalLeftEvent(PresenceEvent):
    pass


class StandInClient(LivePageClient):
    """The object of a presence event that the broker found: the page was
    in another process (or was one of ours that Redis had lost)."""

    def __init__(self, principal, group_id, title):
        super().__init__(None, principal, group_id, title)

    def __repr__(self):
        return '<StandInClient of %r in %r>' % (self.principal,
                                                 self.group_id)


class WouldBlock(Exception):
    """A step called with ``local=True`` needs the broker's I/O; nothing
    was changed. The event loop runs the step again in its executor."""


MARK = 'zorg.live.mark'   # WSGI environ: the request's mark
TRANSPORTS = 'zorg.live.transports'   # WSGI environ: what the server offers


def requestEnviron(request):
    """The WSGI environ of `request` (zope.publisher keeps it as
    ``_orig_env``, ZPublisher as ``environ``), or an empty dict."""
    for name in ('environ', '_orig_env'):
        environ = getattr(request, name, None)
        if isinstance(environ, dict):
            return environ
    return {}


def requestMark(request):
    """The broker position taken when `request` entered the server (rule
    10 of delivery.py), or None."""
    return requestEnviron(request).get(MARK)


class NoMark:
    """The mark of a request that entered while the broker could not say
    it: registering a page raises the broker's error."""

    def __init__(self, error):
        self.error = error


# Static files (Zope's resources, Plone's and its themes'): they never
# register a page, so they are not marked (a round trip to the broker, to
# every shard of a Redis Cluster).
STATIC = re.compile(r'/(\+\+(resource|plone|theme)\+\+|@@/)')


def markRequests(app, manager, transports=('sse', 'longpoll')):
    """WSGI middleware: record the broker's position in each request's
    environ before the application (and its database connection) sees it,
    and which output transports the server offers. `manager` is the
    ILivePageManager or a callable returning it."""
    offered = ' '.join(transports)
    unmarked = NoMark(LiveError('a static resource (a ++resource++ or '
                                '@@/ path) is not marked, so it cannot '
                                'register a live page'))

    def marked(environ, start_response):
        if STATIC.search(environ.get('PATH_INFO', '')):
            environ[MARK] = unmarked
        else:
            m = manager() if callable(manager) else manager
            try:
                environ[MARK] = m.broker.mark()
            except BrokerUnavailable as e:
                # A request that registers no page does not need it; one
                # that does answers 503 (register), as it would without a
                # broker.
                environ[MARK] = NoMark(e)
        environ[TRANSPORTS] = offered
        return app(environ, start_response)
    return marked


def recordTTL(client):
    """Seconds a page record lives after it was saved or refreshed: longer
    than a silent page is kept, so a page alive anywhere stays adoptable."""
    return max(client.clientTimeout, 2 * client.refreshInterval) + 10


def parseOutputNum(value):
    """outputNum from a request: a whole number, else BadRequest."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    # isdigit() alone takes '²' (int() fails on it) and other scripts' digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadRequest('outputNum must be a whole number >= 0, got %r'
                         % text[:40])
    return int(text)


@implementer(ILivePageManager)
class LivePageManager:
    """The ILivePageManager utility."""

    maxPagesPerPrincipal = 30
    reapInterval = 5.0

    _broker = None

    def __init__(self, broker=None):
        self.broker = broker if broker is not None else MemoryBroker()
        self._lock = threading.RLock()
        self._clients = {}
        self._pages = {}     # group id -> ids of its pages
        self._members = {}   # group id -> {principal id -> [clients]}
        #                      (presence: authenticated pages only)
        self._anonymous = {}  # client address -> anonymous pages here
        self._anonymousTotal = 0
        self._lastReap = time.monotonic()
        self._lastRefresh = time.monotonic()
        self.published = 0
        self.waiting = 0        # output requests and streams held now
        self.peakWaiting = 0    # the most held at once since start

    # -- the broker and its presence ---------------------------------------

    @property
    def broker(self):
        return self._broker

    @broker.setter
    def broker(self, broker):
        # The server replaces the ZCML-made manager's broker by the
        # configured one: follow it with the presence listener too.
        if self._broker is not None:
            self.presence.removePresenceListener(self._presenceChanged)
        self._broker = broker
        self.presence = (broker if IPresence.providedBy(broker)
                         else LocalPresence())
        self.records = broker if IPageRecords.providedBy(broker) else None
        # Inputs' recorded answers go where the page records are: a
        # repeated input may reach another process.
        self.inputs = InputOnce(broker)
        self.presence.addPresenceListener(self._presenceChanged)

    def _presenceChanged(self, changes):
        """Joins and leaves that the broker found (a dead process's pages
        swept, presence rebuilt): this process is the one to tell them."""
        for kind, group_id, principal, title in changes:
            client = StandInClient(principal, group_id, title)
            if kind == 'join':
                self._publishPresence(Join(principal, title), group_id)
                zope.event.notify(PrincipalJoinedEvent(client))
            else:
                self._publishPresence(Leave(principal, title), group_id)
                zope.event.notify(PrincipalLeftEvent(client))

    def _publishPresence(self, event, group_id):
        try:
            self._publish(event, group_id, _audience.presence())
        except BrokerUnavailable as e:
            # Whoever closed a page or swept one is not the one to fail;
            # the pages' lists are refreshed when they reload.
            log.warning('could not publish %s of %s in %s: %s', event.name,
                        event.principal, group_id, e)

    # -- registry --------------------------------------------------------

    def register(self, client, mark=None):
        """Register `client` (an ILivePageClient). `mark` is the position
        taken when the request entered the server (requestMark), from
        which the page's cursor starts (rule 10 of delivery.py)."""
        self._maybeReap()
        if isinstance(mark, NoMark):
            raise mark.error
        broker = self.broker
        base, latest, fresh = broker.bounds(client.group_id)
        client.delivery = Delivery(
            _delivery.startCursor(mark, base, latest, fresh))
        with self._lock:
            # Counted and admitted under the lock, so that two requests at
            # once cannot both take the last place under the cap. A page
            # over the cap is registered too (it is told so, below).
            if (not client.anonymous and len(self.getClientsFor(
                    client.principal)) >= self.maxPagesPerPrincipal):
                client.refused = True
            self._admit(client)
        first = False
        if not client.refused:
            try:
                self._saveRecord(client)
                if not client.anonymous:
                    first = self.presence.join(
                        client.group_id, client.principal, client.title,
                        client.uuid)
            except BaseException:
                # Broker unavailable: nothing stays registered.
                self._forget(client)
                raise
        if client.refused:
            self.publishToClient(Error(
                'Too many open pages for this user (the limit is %d): close '
                'another page and reload this one.'
                % self.maxPagesPerPrincipal), client.uuid)
            self.publishToClient(Close('too-many-pages'), client.uuid)
        elif first:
            self._publish(Join(client.principal, client.title),
                          client.group_id, _audience.presence())
            zope.event.notify(PrincipalJoinedEvent(client))
        return client

    def _admit(self, client):
        """Enter `client` in the registry (under the lock); a refused one
        counts neither for presence nor for the anonymous caps."""
        self._clients[client.uuid] = client
        self._pages.setdefault(client.group_id, set()).add(client.uuid)
        if client.refused:
            return
        if client.anonymous:
            address = getattr(client, 'address', None)
            self._anonymous[address] = self._anonymous.get(address, 0) + 1
            self._anonymousTotal += 1
        else:
            members = self._members.setdefault(client.group_id, {})
            members.setdefault(client.principal, []).append(client)

    def _forget(self, client):
        """Take `client` out of the registry; True when it was there, and
        with it whether it was a member and whether its group has pages
        left: ``(found, member, pagesLeft)``."""
        with self._lock:
            if self._clients.get(client.uuid) is not client:
                return False, False, True
            del self._clients[client.uuid]
            if client.anonymous and not client.refused:
                address = getattr(client, 'address', None)
                self._anonymousTotal -= 1
                left = self._anonymous.get(address, 1) - 1
                if left:
                    self._anonymous[address] = left
                else:
                    self._anonymous.pop(address, None)
            group_id = client.group_id
            pages = self._pages.get(group_id, set())
            pages.discard(client.uuid)
            members = self._members.get(group_id, {})
            same = members.get(client.principal, [])
            member = client in same
            if member:
                same.remove(client)
                if not same:
                    del members[client.principal]
                    if not members:
                        self._members.pop(group_id, None)
            if not pages:
                # Nobody here reads the log any more. The broker keeps it
                # among its idle logs (bounded); a page coming back later
                # is told what it missed, or that it cannot be told.
                self._pages.pop(group_id, None)
                self.broker.dropGroup(group_id)
            return True, member, bool(pages)

    def unregister(self, uuid, reason='closed', expiredAt=None):
        """Drop page `uuid`. With `expiredAt` (the reaper's clock), only
        if it is still expired then: a request may have come meanwhile."""
        with self._lock:
            client = self._clients.get(uuid)
            if client is None:
                return None
            if expiredAt is not None and not client.expired(expiredAt):
                return None
        found, member, pagesLeft = self._forget(client)
        if not found:
            return None
        if reason == 'closed' and self.records is not None:
            # Closed for good, wherever it was served; a timeout here
            # keeps the record (the page may be alive in another process).
            self.records.dropPage(uuid)
        elif self.records is None:
            self.inputs.forget(uuid)
        last = False
        if member:
            last = self.presence.leave(client.group_id, client.principal,
                                       uuid)
        # With shared presence, pages of other processes want to know
        # even when this process has none left in the group.
        if last and (pagesLeft or self.presence.shared):
            self._publishPresence(Leave(client.principal, client.title),
                                  client.group_id)
        if last:
            zope.event.notify(PrincipalLeftEvent(client))
        return client

    def anonymousPages(self, address=None):
        """``(anonymous pages here, of them from `address`)``: what the
        caps on strangers' pages count (LivePage.checkAnonymousCap)."""
        with self._lock:
            return self._anonymousTotal, self._anonymous.get(address, 0)

    def getClient(self, uuid, local=False):
        client = self._clients.get(uuid)
        if client is None:
            if local and self.records is not None:
                raise WouldBlock('adopt')
            client = self.adopt(uuid)
        if client is None:
            raise UnknownPage(
                'The server does not know page %s (it timed out, was closed '
                'or the server restarted): register the page again.'
                % redact(str(uuid)))
        return client

    def queryClient(self, uuid, default=None):
        try:
            return self.getClient(uuid)
        except LiveError:
            return default

    # -- page records (IPageRecords) -------------------------------------

    def _record(self, client):
        return {'principal': client.principal, 'title': client.title,
                'group': client.group_id, 'presence': bool(client.presence),
                'anonymous': bool(client.anonymous),
                'cursor': self.broker.formatPosition(client.delivery.acked)}

    def _saveRecord(self, client):
        if self.records is not None:
            self.records.savePage(client.uuid, self._record(client),
                                  recordTTL(client))

    def adopt(self, uuid):
        """The client of page `uuid` made from its shared record (the
        page was registered by another process), or None when there is
        no record. Raises BrokerUnavailable when the broker cannot tell."""
        if self.records is None or not isinstance(uuid, str) or not uuid:
            return None
        record = self.records.loadPage(uuid)
        if record is None:
            return None
        try:
            client = LivePageClient(
                uuid, str(record['principal']), str(record['group']),
                title=str(record.get('title', '')),
                presence=bool(record.get('presence')),
                anonymous=bool(record.get('anonymous')))
            cursor = self.broker.parsePosition(record['cursor'])
        except (KeyError, TypeError, ValueError):
            log.warning('ignored a malformed record of page %s',
                        redact(uuid))
            return None
        client.adopted = True
        # Reads start at the record's cursor; the request's last event id
        # moves them on (delivery.py, rule 9). No per-principal cap: the
        # page was admitted where it was registered.
        client.delivery = Delivery(cursor)
        with self._lock:
            existing = self._clients.get(uuid)
            if existing is not None:
                return existing     # adopted meanwhile by another request
            self._admit(client)
        first = False
        if not client.anonymous:
            try:
                first = self.presence.join(client.group_id, client.principal,
                                           client.title, uuid)
            except BaseException:
                self._forget(client)
                raise
        if first:
            # The page had left (its process died or dropped it): back.
            self._publishPresence(Join(client.principal, client.title),
                                  client.group_id)
            zope.event.notify(PrincipalJoinedEvent(client))
        log.debug('adopted page %s of %r in %r', redact(uuid),
                  client.principal, client.group_id)
        return client

    def refreshRecords(self, now=None):
        """Push on the expiry of the records of the pages this process
        served since the last refresh (or holds a request of); one round
        trip, at most every third of the records' lifetime."""
        if self.records is None:
            return 0
        if now is None:
            now = time.monotonic()
        with self._lock:
            since = self._lastRefresh
            clients = list(self._clients.values())
            if not clients:
                self._lastRefresh = now
                return 0
            ttl = max(recordTTL(c) for c in clients)
            if now - since < ttl / 3.0:
                return 0
            self._lastRefresh = now
            fresh = [c.uuid for c in clients
                     if c.active > 0 or c.lastSeen >= since]
        self.records.refreshPages(fresh, ttl)
        return len(fresh)

    def __iter__(self):
        with self._lock:
            return iter(list(self._clients.values()))

    def __len__(self):
        return len(self._clients)

    def whoIsOnline(self, group_id):
        return self.presence.members(group_id)

    def isOnline(self, principal_id):
        return self.presence.isOnline(principal_id)

    def getClientsFor(self, principal_id, group_id=None):
        with self._lock:
            if group_id is not None:
                groups = [self._members.get(group_id, {})]
            else:
                groups = self._members.values()
            return [c for members in groups
                    for c in members.get(principal_id, ())]

    def groups(self):
        with self._lock:
            return sorted(self._pages)

    # -- publishing ------------------------------------------------------

    def _publish(self, event, group_id, audience=None):
        self.published += 1
        return self.broker.publish(
            group_id, lambda event_id: encode(event, event_id), audience)

    def publish(self, event, group_id):
        return self._publish(event, group_id)

    def publishMany(self, items, inputs=(), inFlight=None):
        """Publish ``(event, group_id, audience)`` items at once: all or
        none (a transaction's events, zorg.live.page.transactional), with
        the records of `inputs` and the in-flight entry `inFlight` in the
        same broker call (IBroker.publishMany)."""
        self.published += len(items)
        return self.broker.publishMany([
            (group_id, (lambda event_id, event=event: encode(event, event_id)),
             audience) for event, group_id, audience in items],
            inputs=inputs, inFlight=inFlight)

    def publishToPrincipals(self, event, group_id, principal_ids):
        return self._publish(event, group_id,
                             _audience.principals(principal_ids))

    def publishToClient(self, event, uuid):
        client = self.getClient(uuid)
        return self._publish(event, client.group_id, _audience.client(uuid))

    def publishToAll(self, event):
        return [self._publish(event, group_id) for group_id in self.groups()]

    def publishToOthers(self, event, uuid):
        client = self.getClient(uuid)
        return self._publish(event, client.group_id, _audience.others(uuid))

    # -- output: the steps shared by every server --------------------------

    def _newest(self, client, last, local):
        """The log's newest position, to check a last event id against
        (rule 7); None when there is no id to check. Known in memory when
        the id is not beyond what this process has seen of the log."""
        if last is None:
            return None
        newest = self.broker.latestLocal(client.group_id)
        if newest is None or last > newest:
            if local:
                raise WouldBlock('latest')
            newest = self.broker.latest(client.group_id)
        return newest

    def beginOutput(self, uuid, outputNum, lastEventId=None, local=False):
        """Start long-poll request N: ``(client, N, body, generation)``.

        `body` is the answer to resend, or None when the caller must hold
        the request (`holdOutput`) and end it with `endOutput`. Bad input
        raises before anything changes.
        """
        if not local:
            self._maybeReap()
        client = self.getClient(uuid, local)
        num = parseOutputNum(outputNum)
        last = self.parseEventId(lastEventId)
        newest = self._newest(client, last, local)
        with self._lock:
            body, generation = client.delivery.begin(num, last, newest)
            client.transport = 'longpoll'
            client.touch()
        return client, num, body, generation

    def beginStream(self, uuid, lastEventId=None, local=False):
        """Start an SSE stream: ``(client, position to stream from)``."""
        if not local:
            self._maybeReap()
        client = self.getClient(uuid, local)
        last = self.parseEventId(lastEventId)
        newest = self._newest(client, last, local)
        with self._lock:
            cursor = client.delivery.resume(last, newest)
            client.transport = 'sse'
            client.touch()
        return client, cursor

    def collectEntries(self, client, after, local=False):
        """The events for `client` after position `after`, as
        ``([(position, json_text), ...], end)``.

        `end` is the position the read reached (events for other pages are
        skipped but passed). When the log lost events after `after`, the
        answer is one reload event that says ``recovered: false``.
        """
        broker = self.broker
        if local:
            read = broker.readLocal(client.group_id, after, READ_LIMIT)
            if read is None:
                raise WouldBlock('read')
        else:
            read = broker.read(client.group_id, after, READ_LIMIT)
        entries, recovered = read
        if not recovered:
            end = broker.latestLocal(client.group_id)
            if end is None or end < after:
                if local:
                    raise WouldBlock('latest')
                end = broker.latest(client.group_id)
            return [(end, reloadText(broker.formatPosition(end)))], end
        end = entries[-1][0] if entries else after
        return self.select(client, entries), end

    def select(self, client, entries):
        """The ``(position, json_text)`` of the log `entries` (as read from
        the broker) that are meant for `client`."""
        accepts = _audience.accepts
        return [(pos, text) for pos, text, aud in entries
                if aud is None or accepts(aud, client)]

    def collect(self, client, after, local=False):
        """Like collectEntries, without the positions: ``(texts, end)``."""
        entries, end = self.collectEntries(client, after, local)
        return [text for _pos, text in entries], end

    def holdStarted(self, client):
        """An output request or stream of `client` starts waiting."""
        with self._lock:
            client.active += 1
            self.waiting += 1
            if self.waiting > self.peakWaiting:
                self.peakWaiting = self.waiting

    def holdEnded(self, client):
        with self._lock:
            client.active -= 1
            self.waiting -= 1
            client.touch()

    def finishOutput(self, client, num, generation, texts, end):
        with self._lock:
            body = client.delivery.finish(num, generation, texts, end)
            client.touch()
        return body

    def endOutput(self, client, num, generation, outcome, texts, end):
        """The body that ends long-poll request `num` after holdOutput
        returned `outcome` (None: nobody to answer)."""
        if outcome == _delivery.ANSWER:
            return self.finishOutput(client, num, generation, texts, end)
        if outcome == _delivery.RECONNECT:
            return reconnectAnswer(num)
        return None

    def output(self, uuid, outputNum, lastEventId=None, timeout=None):
        """The threaded driver of the long-poll (WSGI-HTTP, doctests):
        runs holdOutput, reading and waiting in this thread."""
        client, num, body, generation = self.beginOutput(uuid, outputNum,
                                                         lastEventId)
        if body is not None:
            return body
        if timeout is None:
            timeout = client.refreshInterval
        clock = time.monotonic
        loop = _delivery.holdOutput(client, generation, clock() + timeout,
                                    clock)
        self.holdStarted(client)
        try:
            step = next(loop)
            while True:
                if step[0] == _delivery.READ:
                    result = self.collect(client, step[1])
                else:
                    _wait, cursor, remaining = step
                    news = self.broker.waitFor(client.group_id, cursor,
                                               remaining)
                    result = (_delivery.PUBLISH if news
                              else _delivery.TIMEOUT)
                step = loop.send(result)
        except StopIteration as stop:
            outcome, texts, end = stop.value
        finally:
            self.holdEnded(client)
        return self.endOutput(client, num, generation, outcome, texts, end)

    def rewind(self, client, position):
        """Let a newly registered page continue after `position`, the last
        event its predecessor applied (a page registering again after a
        restart or a move). False when history no longer covers the gap:
        the page must reload."""
        _entries, recovered = self.broker.read(client.group_id, position, 1)
        if not recovered or position > self.broker.latest(client.group_id):
            return False
        with self._lock:
            client.delivery.acked = position
        if not client.refused:
            # An adopting process reads from here when a request comes
            # without a last event id.
            self._saveRecord(client)
        return True

    def parseEventId(self, text):
        """A wire event id as a broker position (None stays None)."""
        if text is None or text == '':
            return None
        try:
            return self.broker.parsePosition(text)
        except ValueError as e:
            raise BadRequest('lastEventId: %s' % e)

    # -- timeouts --------------------------------------------------------

    def _maybeReap(self):
        now = time.monotonic()
        if now - self._lastReap >= self.reapInterval:
            self._lastReap = now
            self.reapExpired(now)

    def reapExpired(self, now=None):
        if now is None:
            now = time.monotonic()
        with self._lock:
            expired = [c.uuid for c in self._clients.values()
                       if c.expired(now)]
        gone = 0
        for uuid in expired:
            # Checked again under the lock: a request may have come since.
            if self.unregister(uuid, reason='timeout', expiredAt=now):
                gone += 1
        self.refreshRecords(now)
        return gone
