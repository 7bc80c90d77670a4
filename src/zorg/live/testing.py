"""Helpers for doctests and tests: TestLivePage, predictable page ids.

`setUp` / `tearDown` follow zope.component.testing's pattern so the same
doctest files run under pytest and under zope.testrunner.
"""

import itertools
import threading

import transaction
import zope.component
import zope.component.testing
from zope.interface import implementer
from zope.publisher.browser import TestRequest
from transaction.interfaces import IDataManager

from zorg.live.interfaces import ILivePageManager, IPageIdGenerator
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Append, Custom
from zorg.live.page.page import LivePage, handler

TEST_PAGE_HTML = """\
<html>
    <head>
    </head>
    <body>
    <p>Input some text.</p>
    <input onchange="sendLivePage('append', 'target', this.value)" type="text" />
    <p id="target">Text goes here:</p>
    </body>
</html>"""


@implementer(IPageIdGenerator)
class SequentialIds:
    """Page ids uuid1, uuid2, ... for readable tests (never in production:
    page ids are capabilities and must be unguessable)."""

    def __init__(self):
        self._counter = itertools.count(1)

    def __call__(self):
        return 'uuid%d' % next(self._counter)


class TestLivePage(LivePage):
    """The LivePage of the original README: text typed in one page is
    appended to the element 'target' of every page of the group."""

    def renderBody(self):
        return TEST_PAGE_HTML

    @handler
    def append(self, target, text):
        self.publish(Append(target, text))



class ShallowLivePage(TestLivePage):
    """TestLivePage with a nesting limit of its own, below the setting."""

    maxArgumentsDepth = 2

class FanoutLivePage(TestLivePage):
    """TestLivePage in the group 'fanout', with handlers that address some
    of its pages: `tell` one page, `others` every page but the sender's
    (the SSE fan-out tests)."""

    def getGroupId(self):
        return 'fanout'

    @handler
    def tell(self, uuid, text):
        self.manager.publishToClient(Append('target', text), uuid)

    @handler
    def others(self, text):
        self.publishToOthers(Append('target', text))


_CLIENT_DEFAULTS = {name: getattr(LivePageClient, name) for name in
                    ('refreshInterval', 'clientTimeout', 'heartbeatInterval')}


def setUp(test=None):
    """Component registry for a test, with sequential page ids."""
    zope.component.testing.setUp(test)
    zope.component.provideUtility(SequentialIds(), IPageIdGenerator)
    if test is not None:
        test.globs.update(zope=zope, TestRequest=TestRequest)


def tearDown(test=None):
    for name, value in _CLIENT_DEFAULTS.items():
        setattr(LivePageClient, name, value)
    zope.component.testing.tearDown(test)


# -- for tests that run the real server (see tests/site.zcml) -------------

DB_OPENS = [0]


def countDatabaseOpens(event):
    """Subscriber (IDatabaseOpened): count every connection opened on the
    site's database, to prove that live requests open none."""
    db = event.database
    original = db.open

    def open(*args, **kw):
        DB_OPENS[0] += 1
        return original(*args, **kw)
    db.open = open


class StatsView:
    """``@@test-stats``: the manager's counters and the database opens, as
    JSON. (This request itself opens the database once.)"""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        import json
        from zorg.live.interfaces import ILivePageManager
        manager = zope.component.getUtility(ILivePageManager)
        self.request.response.setHeader('Content-Type', 'application/json')
        return json.dumps({'pages': len(manager), 'waiting': manager.waiting,
                           'peakWaiting': manager.peakWaiting,
                           'published': manager.published,
                           'dbOpens': DB_OPENS[0]})


class SlowLivePage(TestLivePage):
    """A page whose handler takes a while (input in flight at shutdown)."""

    @handler
    def slow(self, seconds, text):
        import time
        time.sleep(float(seconds))
        self.publish(Append('target', text))


class ProgressLivePage(TestLivePage):
    """A page that lets upload progress be shown in its element 'bar'
    (X-Live-Progress, by its own logged-in user)."""

    progressTargets = ('bar',)


class AllowingLivePage(TestLivePage):
    """A page that declares more than livepage.js's allow-lists: the
    attribute 'style' and URLs of the scheme 'mailto'."""

    allowAttributes = ('style',)
    allowSchemes = ('mailto',)


# -- pages of the browser tests (tests/test_browser.py) --------------------

BROWSER_PAGE_HTML = """\
<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>%(title)s</title>
  </head>
  <body>
    <h1>%(title)s</h1>
    <div>Who is online: <ul id="online">%(online)s</ul></div>
    <input id="say" type="text"
           onchange="LivePage.send('say', [this.value]); this.value = ''" />
    <div id="log"></div>
  </body>
</html>"""


class BrowserLivePage(LivePage):
    """A live page for the browser tests. Its group is its view name (each
    test uses its own), `say` appends one <p class="msg"> to #log of every
    page of the group and `burst` appends `count` numbered ones at once."""

    def getGroupId(self):
        return 'browser:%s' % self.__name__

    def onlineHTML(self):
        from html import escape
        manager = self.manager
        group = self.getGroupId()
        items = []
        for principal in manager.whoIsOnline(group):
            clients = manager.getClientsFor(principal, group)
            title = clients[0].title if clients else principal
            items.append('<li data-principal="%s">%s</li>'
                         % (escape(principal), escape(title)))
        return ''.join(items)

    def renderBody(self):
        from html import escape
        return BROWSER_PAGE_HTML % {
            'title': escape('%s (%s)' % (self.__name__, self.transport)),
            'online': self.onlineHTML() if self.presenceTarget else ''}

    @handler
    def say(self, text):
        from zorg.live.core.events import safe
        from html import escape
        self.publish(Append('log', safe('<p class="msg">%s</p>'
                                        % escape(str(text)))))

    @handler
    def burst(self, count, prefix):
        from zorg.live.core.events import safe
        from html import escape
        for n in range(int(count)):
            self.publish(Append('log', safe(
                '<p class="msg" data-n="%d">%s %d</p>'
                % (n, escape(str(prefix)), n))))


class BrowserOwnConnectionPage(BrowserLivePage):
    """The same, with a connection of its own (per-tab SSE, else long-poll),
    for the tests of those transports."""

    connection = 'tab'


class BrowserLongPollPage(BrowserLivePage):
    """The same, on long-poll only (data-transport="longpoll")."""

    transport = 'longpoll'


class BrowserChatPage(BrowserLivePage):
    """The same, showing who is online in #online (join/leave events)."""

    presence = True
    presenceTarget = 'online'


class UploadView:
    """``@@test-upload``: reads the request body in the worker thread and
    answers its size (the upload-progress tests)."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        size = 0
        while True:
            chunk = self.request.bodyStream.read(65536)
            if not chunk:
                break
            size += len(chunk)
        self.request.response.setHeader('Content-Type', 'application/json')
        return '{"size": %d}' % size


class RoomLivePage(TestLivePage):
    """Pages of the group 'room:<view name>': several groups at once.
    `burst` publishes `count` numbered custom events to the group, every
    `every`-th of them to one of `uuids` only (round robin). `relay`
    stores a line and appends it in two groups."""

    def getGroupId(self):
        return 'room:%s' % self.__name__

    @handler
    def relay(self, text, group):
        """Store `text` (in the root folder's `zorg_live_relayed`) and
        append it to 'target' in this page's group and in `group`, in one
        transaction (on a Redis Cluster, groups may be on two shards)."""
        from zope.security.proxy import removeSecurityProxy
        from zorg.live.page.transactional import publishOnCommit
        root = removeSecurityProxy(self.context)
        root.zorg_live_relayed = tuple(
            getattr(root, 'zorg_live_relayed', ())) + (text,)
        event = Append('target', text)
        self.publish(event)
        if self.publishing():
            publishOnCommit(event, group, self.manager, None)
        else:
            self.manager.publish(event, group)

    @handler
    def burst(self, count, prefix, uuids=(), every=10, start=0):
        for n in range(int(start), int(start) + int(count)):
            data = {'n': n, 'p': str(prefix)}
            if uuids and n % int(every) == 0:
                data['to'] = uuid = uuids[(n // int(every)) % len(uuids)]
                self.publishToClient(Custom('msg', data), uuid)
            else:
                self.publish(Custom('msg', data))


SNAPSHOT_GROUP = 'snapshot'
_pendingPublishes = []


def _snapshotLine(text):
    from html import escape
    from zorg.live.core.events import safe
    key = 'line-%s' % text
    return key, safe('<p class="msg" data-live-key="%s">%s</p>'
                     % (escape(key, quote=True), escape(text)))


def _publishLine(text):
    manager = zope.component.getUtility(ILivePageManager)
    key, html = _snapshotLine(text)
    manager.publish(Append('log', html, key=key), SNAPSHOT_GROUP)


def _commitLine(db, text):
    """Append a line to the stored log in a transaction of its own, as
    another request's thread would."""
    import transaction
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        root = connection.root()['Application']
        root.zorg_live_snapshot_lines = tuple(
            getattr(root, 'zorg_live_snapshot_lines', ())) + (text,)
        manager.commit()
    finally:
        connection.close()


class SnapshotLivePage(LivePage):
    """A log stored in the ZODB (on the root folder), rendered from the
    request's snapshot; its lines carry keys (delivery.py, rule 10).

    ``?race=commit&text=T``: another thread commits and publishes line T
    after this request's connection has opened, before the page
    registers. ``?race=publish``: the publishes held back by
    `SnapshotCommitView` happen then (their commits came before this
    request)."""

    def getGroupId(self):
        return SNAPSHOT_GROUP

    def render(self):
        from zope.security.proxy import removeSecurityProxy
        root = removeSecurityProxy(self.context)
        lines = tuple(getattr(root, 'zorg_live_snapshot_lines', ()))
        race = self.request.form.get('race')
        if race == 'commit':
            import threading
            text = self.request.form['text']

            def commitAndPublish():
                _commitLine(root._p_jar.db(), text)
                _publishLine(text)
            thread = threading.Thread(target=commitAndPublish)
            thread.start()
            thread.join()
        elif race == 'publish':
            while _pendingPublishes:
                _publishLine(_pendingPublishes.pop(0))
        self.lines = lines
        return super().render()

    @handler
    def say(self, text):
        """Store a line and publish it, in the request's transaction."""
        from zope.security.proxy import removeSecurityProxy
        root = removeSecurityProxy(self.context)
        root.zorg_live_snapshot_lines = tuple(
            getattr(root, 'zorg_live_snapshot_lines', ())) + (str(text),)
        key, html = _snapshotLine(str(text))
        self.publish(Append('log', html, key=key))

    @handler
    def sayHeld(self, text, hold):
        """`say`, with the transaction stopped between its vote (the line
        is published) and its finish (the line is stored) at `hold`."""
        self.say(text)
        transaction.get().join(HoldBeforeFinish(str(hold)))

    @handler
    def announceAndHold(self, text, hold):
        """Publish line `text` at once (not on commit), then stop at the
        hold point `hold`: a worker thread that the event loop sees
        busy (test_ticket.py)."""
        _publishLine(str(text))
        holdAt(str(hold))

    @handler
    def sayStored(self, text, hold):
        """`say`, with the transaction stopped after the storage finished
        (the line is stored) and before zorg.live confirms its events."""
        self.say(text)
        transaction.get().join(HoldAfterStorage(str(hold)))

    @handler
    def sayAfter(self, text, hold):
        """`say` once the hold point `hold` (in the handler) is released:
        an input that is still running."""
        holdAt(str(hold))
        self.say(text)

    def renderBody(self):
        body = ''.join(str(_snapshotLine(text)[1]) for text in self.lines)
        return ('<html><head><title>snapshot</title></head><body>'
                '<div id="log">%s</div></body></html>' % body)


# Hold points: a test stops a request at a named point (between its
# transaction's vote and finish, or inside a handler) and lets it go on
# with ``@@test-release?name=N``; ``@@test-hold?name=N`` says whether the
# request has reached the point. Bounded: a hold gives up after HOLD_MAX.
HOLD_MAX = 60.0
_holds = {}
_holdsLock = threading.Lock()


def _hold(name):
    """(reached, released) Events of the hold point `name`."""
    with _holdsLock:
        return _holds.setdefault(name, (threading.Event(), threading.Event()))


def holdAt(name):
    reached, released = _hold(name)
    reached.set()
    released.wait(HOLD_MAX)


@implementer(IDataManager)
class HoldBeforeFinish:
    """A data manager that stops its transaction after every vote (the
    events are published) and before the storage finishes: the window of
    delivery.py's rule 10. It sorts before any storage."""

    def __init__(self, name):
        self.name = name
        self.transaction_manager = transaction.manager

    def sortKey(self):
        return '!hold-before-finish'

    def tpc_finish(self, txn):
        holdAt(self.name)

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_vote = tpc_abort = abort


class HoldAfterStorage(HoldBeforeFinish):
    """Stops its transaction after the storage's finish and before
    zorg.live's (which confirms the events): it sorts between them."""

    def sortKey(self):
        return '~hold-after-storage'


class HoldStateView:
    """``@@test-hold?name=N``: 'reached' once a request stopped at N."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        reached, _released = _hold(self.request.form['name'])
        return 'reached' if reached.is_set() else 'not yet'


class HoldReleaseView(HoldStateView):
    """``@@test-release?name=N``: the request stopped at N goes on."""

    def __call__(self):
        _hold(self.request.form['name'])[1].set()
        return 'released'


class SnapshotCommitView:
    """``@@snapshot-commit?text=T``: store line T; its event is published
    only by the next ``snapshot.html?race=publish``, as a slow after-commit
    hook would."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        from zope.security.proxy import removeSecurityProxy
        root = removeSecurityProxy(self.context)
        text = self.request.form['text']
        lines = tuple(getattr(root, 'zorg_live_snapshot_lines', ()))
        root.zorg_live_snapshot_lines = lines + (text,)
        _pendingPublishes.append(text)
        return 'stored'


class FragmentView:
    """``test-fragment``: what a ``<live:update>`` re-renders; the "edit"
    link only for those who may edit (per-viewer fragments)."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        from zope.security import checkPermission
        edit = ('<a class="edit">edit</a>'
                if checkPermission('zorg.live.tests.Edit', self.context)
                else '')
        return '<span class="seen">%s</span>%s' % (
            getattr(self.request.principal, 'id', '?'), edit)


class TouchView:
    """``@@test-touch``: the root folder was modified (the fragment of its
    pages is re-rendered when the transaction commits)."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        import zope.event
        from zope.lifecycleevent import ObjectModifiedEvent
        from zope.security.proxy import removeSecurityProxy
        root = removeSecurityProxy(self.context)
        root.zorg_live_touched = getattr(root, 'zorg_live_touched', 0) + 1
        zope.event.notify(ObjectModifiedEvent(root))
        return 'touched'


class BenchLivePage(TestLivePage):
    """The benchmarks' page: every render is a page of the one group
    'bench'; input handler ``publish(data)`` sends a custom event to it."""

    def getGroupId(self):
        return 'bench'

    @handler(name='publish')
    def publishBench(self, data):
        self.publish(Custom('bench', data))


class SimulationPage(BenchLivePage):
    """benchmarks/simulate.py: page number ``n`` of a simulated site is
    in group ``sim-<n mod groups>`` (both from the query string)."""

    def getGroupId(self):
        form = self.request.form
        try:
            n, groups = int(form.get('n', 0)), int(form.get('groups', 1))
        except ValueError:
            n, groups = 0, 1
        return 'sim-%d' % (n % max(1, min(groups, 10 ** 6)))


class RenderBenchPage(LivePage):
    """benchmarks/render_cost.py: a LivePage whose template is also
    served as a plain view; its pages are in the group 'render'."""

    def getGroupId(self):
        return 'render'


# The shared-connection tests (test_tabs_browser.py): how often each `note`
# ran in this process, whatever carried the input (WebSocket or POST).
NOTE_RUNS = {}


class BrowserTabsPage(BrowserLivePage):
    """The browser test page for many tabs: `note` appends a message to
    every page of the group and replies to the sender alone (#replies)."""

    def renderBody(self):
        return super().renderBody().replace(
            '<div id="log"></div>',
            '<div id="log"></div><div id="replies"></div>')

    @handler
    def note(self, text):
        from html import escape
        from zorg.live.core.events import safe
        text = str(text)
        NOTE_RUNS[text] = NOTE_RUNS.get(text, 0) + 1
        self.publish(Append('log', safe('<p class="msg">%s</p>'
                                        % escape(text))))
        return Append('replies', safe('<p class="reply">%s</p>'
                                      % escape(text)))


class NoteRunsView:
    """``@@test-note-runs``: NOTE_RUNS as JSON."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        import json
        self.request.response.setHeader('Content-Type', 'application/json')
        return json.dumps(NOTE_RUNS)
