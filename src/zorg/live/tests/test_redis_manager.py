"""Two LivePageManagers, each with its own RedisBroker on one Redis: two
processes sharing groups."""

import json
import threading
import time

import pytest

from zorg.live.broker.redis import RedisBroker
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.core import audience
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager
from zorg.live.tests.redisfixture import redisServer  # noqa

pytestmark = pytest.mark.redis


@pytest.fixture
def managers(redisServer):
    made = []

    def make(**kw):
        manager = LivePageManager(RedisBroker(redisServer.url, **kw))
        made.append(manager)
        return manager
    yield make
    for manager in made:
        manager.broker.close()


def page(manager, uuid, principal='alice', group='/room'):
    return manager.register(LivePageClient(uuid, principal, group))


def events(body):
    return [e for e in json.loads(body)['events']]


def htmls(body):
    return [e.get('html') for e in events(body)]


def test_a_page_on_A_receives_what_B_publishes(managers):
    a, b = managers(), managers()
    page(a, 'pa')
    page(b, 'pb', principal='bob')
    threading.Timer(0.2, b.publish, (Append('t', 'hi'), '/room')).start()
    start = time.monotonic()
    body = a.output('pa', 0, timeout=5)
    assert htmls(body) == ['hi']
    assert time.monotonic() - start < 2
    # Same event, same id, on both processes.
    [event_a] = events(body)
    [event_b] = events(b.output('pb', 0, timeout=5))
    assert event_a == event_b
    # Acknowledged by the next request; repeated requests are byte equal.
    b.publish(Append('t', 'two'), '/room')
    body = a.output('pa', 1, timeout=5)
    assert htmls(body) == ['two']
    assert a.output('pa', 1, timeout=5) == body


def test_private_events_reach_only_their_page_on_any_process(managers):
    a, b = managers(), managers()
    page(a, 'pa')
    page(b, 'pb', principal='bob')
    # B does not know page pa; it publishes for it by audience anyway.
    b.broker.publish('/room', lambda i: json.dumps(
        {'id': i, 'event': 'append', 'target': 't', 'html': 'for pa'}),
        audience.client('pa'))
    b.publishToClient(Append('t', 'for pb'), 'pb')
    assert htmls(a.output('pa', 0, timeout=5)) == ['for pa']
    assert htmls(b.output('pb', 0, timeout=5)) == ['for pb']


def test_a_page_moves_to_another_process_without_losing_events(managers):
    a, b = managers(), managers()
    page(a, 'pa')
    page(b, 'other', principal='bob')
    b.publish(Append('t', '1'), '/room')
    body = a.output('pa', 0, timeout=5)
    last = events(body)[-1]['id']
    # A dies; meanwhile B publishes.
    a.broker.close()
    for n in range(2, 6):
        newest = b.publish(Append('t', str(n)), '/room')
    # B's reader learns of its own publishes a moment later; an answer
    # before that would hold only some of them (the rest in the next).
    deadline = time.monotonic() + 15
    while (b.broker.latestLocal('/room') or (0, 0)) < newest:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # The page's next request lands on B: unknown there, it registers
    # again with the last id it applied (views.do_register does this).
    moved = page(b, 'pa2')
    assert b.rewind(moved, b.parseEventId(last))
    assert htmls(b.output('pa2', 0, timeout=5)) == ['2', '3', '4', '5']
    assert b.output('pa2', 1, timeout=0.1) == \
        '{"outputNum":1,"events":[{"event":"idle"}]}'


def test_a_page_too_far_behind_is_told_to_reload(managers):
    a, b = managers(historySize=5), managers(historySize=5)
    page(a, 'pa')
    b.publish(Append('t', '0'), '/room')
    last = events(a.output('pa', 0, timeout=5))[-1]['id']
    for n in range(20):
        newest = b.publish(Append('t', str(n)), '/room')
    # A's reader has seen them all (it learns of B's publishes a moment
    # later), so A's answer below is about the trimmed history.
    deadline = time.monotonic() + 15
    while (a.broker.latestLocal('/room') or (0, 0)) < newest:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    moved = page(b, 'pa2')
    assert not b.rewind(moved, b.parseEventId(last))
    # A still serving the page tells it to reload, it does not skip.
    body = json.loads(a.output('pa', 1, timeout=5))
    assert body['events'] == [{'id': body['events'][0]['id'],
                               'event': 'reload', 'recovered': False}]


def test_sse_cursor_and_lastEventId_from_another_process(managers):
    a, b = managers(), managers()
    page(a, 'pa')
    page(b, 'pb')
    pos = b.publish(Append('t', 'x'), '/room')
    # pb applied pos through B; with that id as lastEventId, A accepts it
    # at once (latest() asks Redis, not a cache that may lag).
    client, cursor = a.beginStream('pa', b.broker.formatPosition(pos))
    assert cursor == pos


def test_publish_without_redis_raises_503(managers, redisServer):
    a = managers()
    page(a, 'pa')
    redisServer.stop()
    with pytest.raises(BrokerUnavailable) as info:
        a.publish(Append('t', 'x'), '/room')
    assert info.value.status == 503
    assert info.value.asDict()['error'] == 'broker-unavailable'


def test_threaded_output_waits_without_polling(managers):
    a, b = managers(), managers()
    page(a, 'pa')
    page(b, 'pb')
    results = []
    waiting = [threading.Thread(target=lambda: results.append(
        a.output('pa', 0, timeout=10)))]
    waiting[0].start()
    time.sleep(0.3)
    assert not results
    b.publish(Append('t', 'wake'), '/room')
    waiting[0].join(5)
    assert htmls(results[0]) == ['wake']


# -- presence shared by the processes --------------------------------------

@pytest.fixture
def presenceEvents():
    """(kind, principal, group, uuid) of the zope presence events."""
    import zope.event
    from zorg.live.interfaces import IPresenceEvent, IPrincipalJoinedEvent
    heard = []

    def subscriber(event):
        if IPresenceEvent.providedBy(event):
            kind = ('joined' if IPrincipalJoinedEvent.providedBy(event)
                    else 'left')
            heard.append((kind, event.principal, event.group_id,
                          event.object.uuid))
    zope.event.subscribers.append(subscriber)
    yield heard
    zope.event.subscribers.remove(subscriber)


def presencePage(manager, uuid, principal):
    return manager.register(LivePageClient(uuid, principal, '/room',
                                           title=principal.title(),
                                           presence=True))


def presenceOf(manager, uuid, num):
    """(event, principal) of the join/leave events of page `uuid`'s
    answer `num`."""
    return [(e['event'], e.get('principal'))
            for e in events(manager.output(uuid, num, timeout=5))
            if e['event'] in ('join', 'leave')]


class PresenceReader:
    """A page's join/leave events, read answer after answer: a process
    learns of another's publishes a moment later (its reader thread)."""

    def __init__(self, manager, uuid):
        self.manager, self.uuid, self.num = manager, uuid, 0

    def next(self, count):
        seen = []
        deadline = time.monotonic() + 15
        while len(seen) < count:
            assert time.monotonic() < deadline, seen
            seen += presenceOf(self.manager, self.uuid, self.num)
            self.num += 1
        return seen


def test_presence_is_shared_by_the_processes(managers, presenceEvents):
    a, b = managers(), managers()
    presencePage(a, 'pa', 'alice')
    presencePage(b, 'pb1', 'bob')
    presencePage(a, 'pb2', 'bob')   # bob's second page, on A: no join
    assert a.whoIsOnline('/room') == b.whoIsOnline('/room') == [
        'alice', 'bob']
    assert a.isOnline('bob') and b.isOnline('alice')
    reader = PresenceReader(a, 'pa')
    assert reader.next(2) == [('join', 'alice'), ('join', 'bob')]
    # bob's page on B goes: he is still on A, so he has not left ...
    b.unregister('pb1')
    assert a.whoIsOnline('/room') == ['alice', 'bob']
    # ... until his page on A goes too: one leave, published by A.
    a.unregister('pb2')
    assert b.whoIsOnline('/room') == ['alice']
    assert reader.next(1) == [('leave', 'bob')]
    # The zope events, once each, where it happened (with the page).
    assert presenceEvents == [('joined', 'alice', '/room', 'pa'),
                              ('joined', 'bob', '/room', 'pb1'),
                              ('left', 'bob', '/room', 'pb2')]


def test_the_last_page_of_a_group_here_still_publishes_the_leave(managers):
    # The memory broker drops the leave when no page of the group is left
    # in the process; with Redis, pages of other processes need it.
    a, b = managers(), managers()
    presencePage(a, 'pa', 'alice')
    presencePage(b, 'pb', 'bob')
    b.unregister('pb')
    assert b.groups() == []
    assert PresenceReader(a, 'pa').next(3) == [
        ('join', 'alice'), ('join', 'bob'), ('leave', 'bob')]


def test_a_dead_process_pages_leave_once(managers, presenceEvents):
    a, b = managers(presenceTimeout=0.6), managers(presenceTimeout=0.6)
    c = managers(presenceTimeout=0.6)
    presencePage(a, 'pa', 'alice')
    presencePage(b, 'pb', 'alice')
    presencePage(c, 'pc1', 'carol')
    presencePage(c, 'pc2', 'carol')
    presencePage(c, 'pc3', 'alice')
    c.broker.close()   # C dies: no heartbeat any more
    deadline = time.monotonic() + 15
    # The sweep changes Redis first, then notifies: wait for both.
    while (a.whoIsOnline('/room') != ['alice']
           or not [e for e in presenceEvents if e[0] == 'left']):
        assert time.monotonic() < deadline, 'carol did not leave'
        time.sleep(0.02)
    assert [e for e in presenceEvents if e[0] == 'left'] == [
        ('left', 'carol', '/room', None)]   # a stand-in for C's page
    # Every page of the group (on A and on B) gets the one leave.
    nums = {}
    for manager, uuid, before in ((a, 'pa', [('join', 'alice')]),
                                  (b, 'pb', [])):
        changes = []
        for num in range(3):
            changes += presenceOf(manager, uuid, num)
            if ('leave', 'carol') in changes:
                break
        nums[uuid] = num + 1
        assert changes == before + [('join', 'carol'), ('leave', 'carol')]
    # Nothing is left to sweep, and nothing came twice.
    assert a.broker.presence.beat() == b.broker.presence.beat() == []
    assert [e for e in presenceEvents if e[0] == 'left'] == [
        ('left', 'carol', '/room', None)]
    for manager, uuid in ((a, 'pa'), (b, 'pb')):
        body = manager.output(uuid, nums[uuid], timeout=0.2)
        assert [e['event'] for e in events(body)] == ['idle']
