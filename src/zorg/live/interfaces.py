"""Every contract of zorg.live, documented: the map of the package.

Vocabulary (used the same way in code, docs and the wire protocol, see
PROTOCOL.txt): a *page* is one open browser tab showing a LivePage; the
server-side record of a page is its *client*; pages share events in a
*group*; events are stored in the group's *log* held by the *broker*; a
position in a log is an *event id*.
"""

from zope.interface import Attribute, Interface
from zope.interface.interfaces import IObjectEvent
from zope.browser.interfaces import IBrowserView


class LiveError(Exception):
    """Bad input from a page or a caller; carries the HTTP status to answer.

    ``code`` is the machine-readable name (see PROTOCOL.txt, "Errors") and
    the message says what the caller should do.
    """

    status = 400
    code = 'bad-request'

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def asDict(self):
        return {'error': self.code, 'message': self.message}


class BadRequest(LiveError):
    """Malformed or out-of-window input (400)."""


class UnknownPage(LiveError):
    """The page id is not known here (timed out, closed, server restarted)."""

    status = 404
    code = 'unknown-page'


class Forbidden(LiveError):
    """The request's principal is not the principal of the page (403)."""

    status = 403
    code = 'forbidden'


class CrossSite(Forbidden):
    """A state-changing request that a page of another origin made in the
    visitor's browser (cross-site request forgery), told by the browser's
    Origin and Sec-Fetch-Site headers (403). Scripts that send neither
    are not refused by it."""

    code = 'cross-site'


class MethodNotAllowed(LiveError):
    """A step that changes state asked with GET (405); use POST."""

    status = 405
    code = 'method-not-allowed'


class HeadersTooLarge(LiveError):
    """A request head over max-header-size or max-header-count (431)."""

    status = 431
    code = 'headers-too-large'


class Busy(LiveError):
    """A limit of open pages is reached; try again after ``retryAfter``
    seconds (503 with Retry-After)."""

    status = 503
    code = 'busy'

    def __init__(self, message, retryAfter=5):
        super().__init__(message)
        self.retryAfter = retryAfter


class InputRunning(Busy):
    """The same input id is being run, here or in another process; send
    it again shortly (503, Retry-After 1: zorg.live.page.inputonce)."""

    code = 'input-running'

    def __init__(self, message, retryAfter=1):
        super().__init__(message, retryAfter)


class InputUnknown(LiveError):
    """The transaction that ran this input id voted, but its process did
    not finish it in time (it died, or lost the broker): whether it was
    stored is not known here (409). It is never run a second time; the
    page reloads to show what was stored (zorg.live.broker.pending)."""

    status = 409
    code = 'input-unknown'


class TooLarge(LiveError):
    """A request body or an argument list over the configured limit (413)."""

    status = 413
    code = 'too-large'


class BrokerUnavailable(LiveError):
    """The broker (redis-server) cannot be reached; try again later (503).

    Raised by a broker when it cannot append or read; nothing was
    published. (Added with the Redis broker.)
    """

    status = 503
    code = 'broker-unavailable'


class IEvent(Interface):
    """One message to pages: a type name plus JSON fields.

    Events are encoded to JSON once per publish, not once per receiver.
    """

    name = Attribute("The event type, the 'event' field on the wire.")

    def fields():
        """The JSON-able fields of the event, without 'event' and 'id'."""


class IBroker(Interface):
    """Where group logs live: appends, reads, history and wake-ups.

    Positions (event ids) are opaque to everybody but the broker; they are
    rendered as strings on the wire and parsed back with `parsePosition`.
    A group log keeps a bounded history; a reader whose position fell out of
    it is told so (`recovered` False) instead of silently skipping events.

    Some calls may wait on the network (`blocking`); the ``...Local`` ones
    and `dropGroup`, `parsePosition`, `formatPosition` never do, so that an
    event loop can call them (server/asgi.py). `mark` may (it is taken in
    a worker thread, as a request enters the site). The contract is
    tested against every broker by tests/test_broker_contract.py.
    """

    blocking = Attribute(
        "True when publish, read, latest, bounds and the presence calls "
        "may wait on the network (an event loop then makes them in a "
        "thread); False when every call is answered from memory.")

    def publish(group_id, encode, audience):
        """Append one event to the group's log; return its position.

        ``encode(event_id_text)`` returns the event's JSON text with that id
        (the broker assigns ids, the caller owns the encoding). `audience`
        is None (every page of the group) or a JSON-able dict understood by
        zorg.live.page.audience. One append whatever the number of
        receivers. Wakes the listeners.
        """

    def publishMany(items, inputs=(), inFlight=None):
        """Publish several events at once: `items` are ``(group_id,
        encode, audience)`` as `publish` takes them. All of them are
        appended, in order, or none (BrokerUnavailable); returns their
        positions. A transaction's events go out this way in its vote
        (zorg.live.page.transactional), in the same step as:

        - `inputs`: the records of the inputs that ran the transaction,
          ``(page id, input id, claim token, answer, keep, ttl)``
          (IInputRecords): written with the events, or the call fails
          (InputRunning when an id was recorded meanwhile or its claim is
          another run's; nothing is written then);
        - `inFlight`: a token that puts the transaction in flight until
          `finished(token)` (see `mark`)."""

    def read(group_id, after, limit):
        """Entries after position `after`: ``(entries, recovered)``.

        `entries` is a list of (position, json_text, audience) in order,
        at most `limit` long. `recovered` is False when events after
        `after` were dropped from history (the reader missed some).
        """

    def readLocal(group_id, after, limit):
        """Like `read`, from memory only: None when the answer needs I/O
        (the Redis broker's cache does not reach back to `after`)."""

    def latest(group_id):
        """The position of the newest entry (or the log's base position).
        The group is *watched* from then on (its log is kept and read by
        this process) until `dropGroup`."""

    def latestLocal(group_id):
        """The newest position this process knows of the group, from memory:
        never beyond `latest`, maybe a moment behind it; None when the
        group is not watched."""

    def bounds(group_id):
        """``(base, latest, fresh)`` of the group's log (watching it):
        reads after `base` are complete, `latest` is the newest position,
        and `fresh` is True when `base` is the log's creation (nothing was
        ever trimmed from it), so nothing of the group lies before it."""

    def mark():
        """A position that every later publish, to any group, exceeds,
        and that is at or before every event of a transaction that voted
        but has not finished (in flight), in every process sharing the
        broker; taken when a request enters the server, before its
        database snapshot opens (rule 10 of zorg.live.page.delivery). The
        Redis broker makes one round trip (bounded by broker-timeout);
        BrokerUnavailable when it cannot say."""

    def finished(token, committed=True):
        """The transaction that published with ``inFlight=token`` has
        finished (`committed`) or aborted after its vote: its pending
        events are shown or dropped, its input records kept or removed
        (zorg.live.broker.pending), and marks may pass its events now.
        Never raises; an entry it could not resolve is swept at its
        deadline as unknown. Returns False when a committed transaction's
        entry was lost (Redis restarted empty since the vote, or the
        entry outlived its deadline): the transaction's events may be
        lost, or a page's mark passed them, so its groups' pages must
        reload (transactional.py)."""

    def parsePosition(text):
        """Parse a wire event id; ValueError when it is malformed."""

    def formatPosition(position):
        """The wire form (a string) of a position."""

    def addListener(callback):
        """Call ``callback(group_ids)`` after each publish, from any thread.

        Used by event loops to wake their own waiters once per publish.
        """

    def removeListener(callback):
        """Undo addListener."""

    def waitFor(group_id, after, timeout):
        """Block the calling thread until the log has entries after `after`
        or `timeout` seconds pass; for threaded servers. No polling."""

    def dropGroup(group_id):
        """No page of this process reads the group any more: stop watching
        it. The log may be kept for a while (bounded: the memory broker's
        ``maxIdleGroups``, the Redis stream's expiry)."""

    def health():
        """A dict saying whether delivery works now: ``kind`` ('memory',
        'redis', ...), ``connected`` (False while the broker cannot be
        reached: publishing and waking fail) and ``error`` (what went
        wrong, or None). Cheap: answered from state, no round trip, since
        load balancers ask often (see zorg.live.server.health)."""


class IPresence(Interface):
    """Who is online: the pages of principals in groups, counted where
    every process can see them. Optional for a broker: the manager keeps
    presence in its own process for a broker that does not provide it.

    A *page* is a page id; join and leave are idempotent per page (a
    second join or leave of the same page changes nothing and returns
    False). Anonymous pages are never joined.
    """

    shared = Attribute(
        "True when other processes share this presence: a leave must be "
        "published even when this process has no page left in the group.")

    def join(group_id, principal_id, title, page):
        """Count `page` of the principal in the group; True when it is the
        principal's first page in the group (in any process): a join.
        Raises BrokerUnavailable (and counts nothing) when it cannot tell."""

    def leave(group_id, principal_id, page):
        """Stop counting `page`; True when it was the principal's last page
        in the group (in any process): a leave. Never raises for an
        unreachable broker: the leave is recorded when it is back, and
        reported to the presence listeners then."""

    def members(group_id):
        """Sorted ids of the principals with a page in the group."""

    def isOnline(principal_id):
        """True when the principal has a page in any group."""

    def addPresenceListener(callback):
        """Call ``callback(changes)`` for joins and leaves that no join()
        or leave() of this process returned: the pages of a process that
        stopped (its heartbeat expired) leaving, or presence rebuilt after
        the broker lost it. `changes` is a list of ``(kind, group_id,
        principal_id, title)`` with kind 'join' or 'leave'; each change is
        reported to exactly one process. Called from a broker thread."""

    def removePresenceListener(callback):
        """Undo addPresenceListener."""


class IInputRecords(Interface):
    """Claims and recorded answers of inputs (zorg.live.page.inputonce),
    kept by the broker where every process that may serve the page sees
    them. The records themselves are written by IBroker.publishMany, in a
    transaction's vote."""

    def claimInput(uuid, inputId, token, ttl):
        """``(answer, False)`` when the input was recorded; ``(None,
        True)`` when the caller now holds its claim (for `ttl` seconds, or
        already held it with `token`); ``(None, False)`` when another run
        holds it, or its transaction is in flight. InputUnknown when that
        transaction's outcome is unknown; BrokerUnavailable when it
        cannot tell."""

    def releaseInput(uuid, inputId, token):
        """Give up the claim if it is still `token`'s; never raises."""

    def forgetInputs(uuid):
        """Forget the page's records (it was closed)."""


class IPageRecords(Interface):
    """Page records shared by processes, so that any process serves any
    page id. Optional for a broker: without it (the memory broker, one
    process) a page id is known only where it was registered.

    A record is a JSON-able dict: ``principal``, ``title``, ``group``,
    ``presence``, ``anonymous`` and ``cursor`` (the wire id the page was
    registered at: where an adopted page without a lastEventId reads
    from). It expires `ttl` seconds after it was saved or refreshed.
    """

    def savePage(uuid, record, ttl):
        """Store (or replace) the record of page `uuid`; one round trip.
        Raises BrokerUnavailable when it cannot."""

    def loadPage(uuid):
        """The record of page `uuid`, or None (unknown, expired, closed).
        Raises BrokerUnavailable when it cannot tell."""

    def refreshPages(uuids, ttl):
        """Push the expiry of these pages' records on (best effort, one
        round trip for all; never raises)."""

    def dropPage(uuid):
        """Delete the record (the page was closed); never raises."""


class ILivePageClient(Interface):
    """The server-side record of one open page (one browser tab)."""

    uuid = Attribute("The page id: 128 random bits, a capability.")
    principal = Attribute("The id of the principal who rendered the page.")
    title = Attribute("The principal's title (for presence).")
    group_id = Attribute("The group of the page.")
    presence = Attribute("True when the page receives join/leave events.")
    delivery = Attribute("The page's IDelivery state.")
    refreshInterval = Attribute(
        "Seconds one output request is held before it answers idle.")
    clientTimeout = Attribute(
        "Seconds after the last request before a silent page is dropped.")
    lastSeen = Attribute("time.monotonic() of the last request of the page.")

    def touch():
        """Record that the page asked for something now."""

    def expired(now):
        """True when the page has been silent for longer than clientTimeout."""


class IDelivery(Interface):
    """The delivery state of one page: outputNum, acknowledged, pending.

    Sans-I/O: the long-poll path, the SSE path and the threaded fallback
    all use it unchanged. See zorg.live.page.delivery for the rules.
    """

    acked = Attribute("Position up to which the page has applied events.")
    nextNum = Attribute("The outputNum of the next fresh output request.")
    pending = Attribute("The recorded answer to the last fresh request "
                        "(kept until the next one acknowledges it), or "
                        "None.")
    generation = Attribute("Counts the requests started; a request whose "
                           "generation is no longer current was "
                           "superseded and records nothing.")

    def begin(num, last_event_id=None, newest=None):
        """Start long-poll request `num`: ``(body, generation)``; `body`
        is the answer to resend, or None for a fresh request. BadRequest
        for a number out of the window or an id newer than `newest`."""

    def finish(num, generation, texts, end):
        """Record the answer of fresh request `num`; return its body."""

    def resume(last_event_id, newest):
        """Start an SSE stream; return the position to stream from."""


class ILivePageManager(Interface):
    """The registry of open pages and the way events reach them.

    One utility per process. Thread safe: called from worker threads and
    from the event loop at the same time.
    """

    broker = Attribute("The IBroker holding the group logs.")
    presence = Attribute(
        "The IPresence that whoIsOnline and isOnline ask: the broker when "
        "it provides IPresence, else one of the manager's own.")

    def register(client, mark=None):
        """Add a client; the first page of a principal in a group joins.
        Its cursor starts at `mark`, the broker position taken when the
        request entered the server (rule 10 of zorg.live.page.delivery),
        or at the log's newest position without one."""

    def unregister(uuid, reason='closed', expiredAt=None):
        """Remove a client; the last page of a principal in a group leaves.
        With `expiredAt`, only when the page is still expired then."""

    def getClient(uuid, local=False):
        """The client with this page id; raises UnknownPage (404).

        A page id registered by another process (its record shared through
        the broker's IPageRecords) is adopted: a client of this process is
        made from the record. With `local`, raises WouldBlock instead of
        asking the broker."""

    def queryClient(uuid, default=None):
        """The client with this page id, or `default`."""

    def __iter__():
        """Iterate over the registered clients (a snapshot)."""

    def __len__():
        """The number of registered clients."""

    def whoIsOnline(group_id):
        """Sorted ids of the principals with a page in the group, in any
        process that shares the broker's presence (IPresence)."""

    def isOnline(principal_id):
        """True when the principal has a page in any group (any process)."""

    def getClientsFor(principal_id, group_id=None):
        """The clients of a principal in this process, in one group or in
        all (pages in other processes have no client here)."""

    def groups():
        """Sorted ids of the groups that have pages."""

    def publish(event, group_id):
        """Deliver to every page of the group."""

    def publishToPrincipals(event, group_id, principal_ids):
        """Deliver to the pages of some principals in the group."""

    def publishToClient(event, uuid):
        """Deliver to one page."""

    def publishToAll(event):
        """Deliver to every page of every group (one append per group)."""

    def publishToOthers(event, uuid):
        """Deliver to the group of page `uuid`, except that page."""

    def output(uuid, outputNum, lastEventId=None, timeout=None):
        """The threaded long-poll: JSON text of the answer to request N.

        Blocks up to `timeout` (default the client's refreshInterval)
        waiting for events. Raises LiveError subclasses for bad input.
        """

    # The steps the servers run (the threaded one above, the event loop's
    # in server/asgi.py). Those with `local` raise WouldBlock, having
    # changed nothing, when they would need the broker's I/O.

    def beginOutput(uuid, outputNum, lastEventId=None, local=False):
        """Start long-poll request N: ``(client, N, body, generation)``;
        `body` is a recorded answer to resend, or None: hold the request
        (zorg.live.page.delivery.holdOutput), then `endOutput`."""

    def endOutput(client, num, generation, outcome, texts, end):
        """The body that ends a held request, by holdOutput's outcome
        (None when nobody is there to answer)."""

    def beginStream(uuid, lastEventId=None, local=False):
        """Start an SSE stream: ``(client, position to stream from)``."""

    def collectEntries(client, after, local=False):
        """``([(position, json_text), ...], end)``: the events for
        `client` after `after`, or one reload event when history lost
        some."""

    def collect(client, after, local=False):
        """Like collectEntries, the texts only: ``(texts, end)``."""

    def select(client, entries):
        """The ``(position, json_text)`` of log entries meant for
        `client`."""

    def holdStarted(client):
        """An output request or stream of `client` starts waiting (it is
        not timed out while it waits)."""

    def holdEnded(client):
        """Undo holdStarted."""

    def parseEventId(text):
        """A wire event id as a position (None stays None); BadRequest."""

    def rewind(client, position):
        """Let a re-registered page continue after `position`; False when
        history no longer covers the gap (the page must reload)."""

    def reapExpired(now=None):
        """Drop clients silent for longer than their timeout; their count."""


class ILivePage(IBrowserView):
    """A browser view whose pages the server updates while they are open."""

    uuid = Attribute("The page id, set by render().")
    presence = Attribute("Class attribute: receive join/leave events.")
    presenceTarget = Attribute(
        "Class attribute: the id of the page's list of who is online, kept "
        "by livepage.js, or None.")
    transport = Attribute(
        "Class attribute: 'auto' (SSE, then long-poll) or 'longpoll'.")

    def getGroupId():
        """The id of the page's group (by default: its context's path)."""

    def render():
        """Register the page's client, then return the page's HTML with the
        client script injected."""

    def input(uuid, handler_name, arguments):
        """Call a declared handler; return the JSON of the reply events
        ('' when there are none)."""

    def output(uuid, outputNum, lastEventId=None):
        """The next events of the page, or idle after refreshInterval
        (the threaded long-poll; LiveServerHTTP answers in its loop)."""

    def publish(event):
        """Deliver `event` to every page of this page's group."""

    def publishToOthers(event):
        """Deliver to the group, except the page that called the
        handler."""

    def publishToPrincipals(event, principal_ids):
        """Deliver to the pages of some principals in the group."""


class IPageIdGenerator(Interface):
    """Makes page ids. The default gives 128 random bits from `secrets`;
    tests register one that gives uuid1, uuid2, ..."""

    def __call__():
        """A new page id (text)."""


class IPresenceEvent(IObjectEvent):
    """A principal joined or left a group (object: the client).

    Notified once, in one process: where the page that made the join or
    leave was registered or closed. When the broker finds the change
    itself (the pages of a process that died leave after the presence
    timeout; presence rebuilt after Redis lost it) the process that found
    it notifies, and the object is a stand-in client whose uuid is None.
    """

    principal = Attribute("The principal id.")
    group_id = Attribute("The group id.")


class IPrincipalJoinedEvent(IPresenceEvent):
    """The first page of a principal in a group was registered."""


class IPrincipalLeftEvent(IPresenceEvent):
    """The last page of a principal in a group closed or timed out."""


class IServer(Interface):
    """One listening server of the process, as `zorg-live serve` runs it."""

    name = Attribute("The name of its <server> section.")
    host = Attribute("The address it is bound to.")
    port = Attribute("The port it is bound to (known after creation).")

    def serve():
        """Coroutine: serve in the running event loop until stop()."""

    def stop():
        """Begin a graceful stop: waiting pages are told to reconnect,
        in-flight requests complete, then serve() returns."""


class IServerType(Interface):
    """A named utility that makes servers; <server> type names one."""

    def __call__(name, application, host, port, settings):
        """A bound, not yet serving IServer for the WSGI `application`."""


class INotification(IObjectEvent):
    """A message for a group arrived through ``@@notify`` (`object` is the
    view's context). A subscriber that delivers it itself sets `handled`
    and may add JSON-able items to `answer`."""

    request = Attribute('The request (its principal sent the message).')
    group = Attribute('The group id the message is for.')
    text = Attribute('The text, or None.')
    name = Attribute('The custom event name asked for (default notify).')
    data = Attribute('The JSON data, or None.')
    handled = Attribute('True once a subscriber delivered the message.')
    answer = Attribute('A dict merged into the JSON answer.')
