"""Two LivePageManagers, each with its own RedisBroker on one Redis: two
processes sharing groups."""

import json
import threading
import time

import pytest

from zorg.live.broker.redis import RedisBroker
from zorg.live.interfaces import BrokerUnavailable
from zorg.live.page import audience
from zorg.live.page.client import LivePageClient
from zorg.live.page.event import Append
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
        b.publish(Append('t', str(n)), '/room')
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
        b.publish(Append('t', str(n)), '/room')
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
