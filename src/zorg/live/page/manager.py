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
"""

import json
import logging
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
from zorg.live.page import audience as _audience
from zorg.live.page.client import LivePageClient, redact
from zorg.live.page.delivery import Delivery
from zorg.live.page.event import Close, Error, Join, Leave, encode

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


def _reloadText(broker, position):
    return json.dumps({'id': broker.formatPosition(position),
                       'event': 'reload', 'recovered': False},
                      separators=(',', ':'))


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

    def register(self, client):
        self._maybeReap()
        first = False
        with self._lock:
            client.delivery = Delivery(self.broker.latest(client.group_id))
            if client.anonymous:
                self._saveRecord(client)
            elif (len(self.getClientsFor(client.principal))
                  >= self.maxPagesPerPrincipal):
                client.refused = True
            else:
                # First, as they may raise (broker unavailable): then
                # nothing is registered.
                self._saveRecord(client)
                first = self.presence.join(client.group_id, client.principal,
                                           client.title, client.uuid)
                members = self._members.setdefault(client.group_id, {})
                members.setdefault(client.principal, []).append(client)
            self._clients[client.uuid] = client
            self._pages.setdefault(client.group_id, set()).add(client.uuid)
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

    def unregister(self, uuid, reason='closed'):
        last = False
        if reason == 'closed' and self.records is not None:
            # Closed for good, wherever it was served; a timeout here
            # keeps the record (the page may be alive in another process).
            self.records.dropPage(uuid)
        with self._lock:
            client = self._clients.pop(uuid, None)
            if client is None:
                return None
            group_id = client.group_id
            pages = self._pages.get(group_id, set())
            pages.discard(uuid)
            members = self._members.get(group_id, {})
            same = members.get(client.principal, [])
            if client in same:
                same.remove(client)
                if not same:
                    del members[client.principal]
                    if not members:
                        self._members.pop(group_id, None)
                last = self.presence.leave(group_id, client.principal, uuid)
            # With shared presence, pages of other processes want to know
            # even when this process has none left in the group.
            if last and (pages or self.presence.shared):
                self._publishPresence(Leave(client.principal, client.title),
                                      group_id)
            if not pages:
                # Nobody reads the log any more: free it. A page coming
                # back later finds a new log and is told what it missed.
                self._pages.pop(group_id, None)
                self.broker.dropGroup(group_id)
        if last:
            zope.event.notify(PrincipalLeftEvent(client))
        return client

    def getClient(self, uuid):
        client = self._clients.get(uuid)
        if client is None:
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
        first = False
        with self._lock:
            existing = self._clients.get(uuid)
            if existing is not None:
                return existing     # adopted meanwhile by another request
            # Reads start at the record's cursor; the request's last event
            # id moves them on (delivery.py, rule 9). No per-principal cap:
            # the page was admitted where it was registered.
            client.delivery = Delivery(cursor)
            if not client.anonymous:
                first = self.presence.join(client.group_id, client.principal,
                                           client.title, uuid)
                members = self._members.setdefault(client.group_id, {})
                members.setdefault(client.principal, []).append(client)
            self._clients[uuid] = client
            self._pages.setdefault(client.group_id, set()).add(uuid)
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

    def beginOutput(self, uuid, outputNum, lastEventId=None):
        """Start long-poll request N: ``(client, N, body, generation)``.

        `body` is the answer to resend, or None when the caller must
        collect events from ``client.delivery.acked`` and `finishOutput`.
        Bad input raises before anything changes.
        """
        self._maybeReap()
        client = self.getClient(uuid)
        num = parseOutputNum(outputNum)
        last = self.parseEventId(lastEventId)
        with self._lock:
            newest = self.broker.latest(client.group_id)
            body, generation = client.delivery.begin(num, last, newest)
            client.transport = 'longpoll'
            client.touch()
        return client, num, body, generation

    def beginStream(self, uuid, lastEventId=None):
        """Start an SSE stream: ``(client, position to stream from)``."""
        self._maybeReap()
        client = self.getClient(uuid)
        last = self.parseEventId(lastEventId)
        with self._lock:
            newest = self.broker.latest(client.group_id)
            cursor = client.delivery.resume(last, newest)
            client.transport = 'sse'
            client.touch()
        return client, cursor

    def collectEntries(self, client, after):
        """The events for `client` after position `after`, as
        ``([(position, json_text), ...], end)``.

        `end` is the position the read reached (events for other pages are
        skipped but passed). When the log lost events after `after`, the
        answer is one reload event that says ``recovered: false``.
        """
        broker = self.broker
        entries, recovered = broker.read(client.group_id, after, READ_LIMIT)
        if not recovered:
            end = broker.latest(client.group_id)
            return [(end, _reloadText(broker, end))], end
        end = entries[-1][0] if entries else after
        return self.select(client, entries), end

    def select(self, client, entries):
        """The ``(position, json_text)`` of the log `entries` (as read from
        the broker) that are meant for `client`."""
        accepts = _audience.accepts
        return [(pos, text) for pos, text, aud in entries
                if aud is None or accepts(aud, client)]

    def collect(self, client, after):
        """Like collectEntries, without the positions: ``(texts, end)``."""
        entries, end = self.collectEntries(client, after)
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

    def output(self, uuid, outputNum, lastEventId=None, timeout=None):
        """The threaded long-poll (WSGI-HTTP, doctests): block and answer."""
        client, num, body, generation = self.beginOutput(uuid, outputNum,
                                                         lastEventId)
        if body is not None:
            return body
        if timeout is None:
            timeout = client.refreshInterval
        deadline = time.monotonic() + timeout
        cursor = client.delivery.acked
        self.holdStarted(client)
        try:
            while True:
                texts, cursor = self.collect(client, cursor)
                remaining = deadline - time.monotonic()
                if (texts or remaining <= 0
                        or generation != client.delivery.generation):
                    break
                self.broker.waitFor(client.group_id, cursor, remaining)
        finally:
            self.holdEnded(client)
        return self.finishOutput(client, num, generation, texts, cursor)

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
        for uuid in expired:
            self.unregister(uuid, reason='timeout')
        self.refreshRecords(now)
        return len(expired)
