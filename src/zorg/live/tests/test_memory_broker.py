"""Edges of the in-memory broker."""

from zorg.live.broker.memory import MemoryBroker
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager


class Listening:
    def __init__(self):
        self.heard = []

    def onPublish(self, group_ids):
        self.heard.append(group_ids)


def test_a_bound_method_listener_can_be_removed():
    # Each attribute lookup makes a new bound-method object: removal must
    # compare by equality, or a server's shutdown leaves its listener in.
    broker, listening = MemoryBroker(), Listening()
    broker.addListener(listening.onPublish)
    broker.removeListener(listening.onPublish)
    broker.publish('g', lambda event_id: '{"id":"%s"}' % event_id)
    assert listening.heard == []


def test_listeners_hear_the_group_of_each_publish():
    broker, listening = MemoryBroker(), Listening()
    broker.addListener(listening.onPublish)
    broker.publish('g', lambda event_id: '{}')
    assert listening.heard == [('g',)]


def test_a_reader_behind_the_trimmed_history_is_not_recovered():
    broker = MemoryBroker(historySize=4)
    first = broker.latest('g')
    for _ in range(10):
        broker.publish('g', lambda event_id: '{}')
    _entries, recovered = broker.read('g', first)
    assert recovered is False


# -- bounded memory: logs of groups without pages ----------------------------

def test_publishes_to_empty_groups_keep_at_most_maxIdleGroups_logs():
    broker = MemoryBroker(maxIdleGroups=100)
    for n in range(100000):
        broker.publish('object-%d' % n, lambda event_id: '{"id":"%s"}'
                       % event_id)
    assert broker.groupCount() == 100
    # The most recent ones are kept, with their history.
    entries, recovered = broker.read('object-99999', 0, 10)
    assert len(entries) == 1


def test_watched_groups_are_not_dropped_however_many_idle_ones_come():
    broker = MemoryBroker(maxIdleGroups=2)
    start = broker.latest('watched')
    broker.publish('watched', lambda event_id: '{"id":"%s"}' % event_id)
    for n in range(50):
        broker.publish('idle-%d' % n, lambda event_id: '{"id":"%s"}'
                       % event_id)
    entries, recovered = broker.read('watched', start, 10)
    assert recovered and len(entries) == 1
    assert broker.groupCount() == 3


def test_a_page_joining_a_dropped_group_is_told_what_it_cannot_have():
    broker = MemoryBroker(maxIdleGroups=1)
    manager = LivePageManager(broker)
    old = manager.register(LivePageClient('p1', 'zope.anybody', 'g',
                                          anonymous=True))
    before = old.delivery.acked
    manager.publish(Append('t', 'missed'), 'g')
    manager.unregister('p1')        # the last page leaves: 'g' is idle
    manager.publish(Append('t', 'x'), 'other')   # 'g' is dropped
    new = manager.register(LivePageClient('p2', 'zope.anybody', 'g',
                                          anonymous=True))
    # A new page starts after everything: nothing is missing for it.
    assert manager.collect(new, new.delivery.acked)[0] == []
    # A page asking from before the drop cannot have what it missed.
    texts, _end = manager.collect(new, before)
    assert len(texts) == 1 and '"recovered":false' in texts[0]
    # And a mark from before the drop makes its page reload too.
    stale = manager.register(LivePageClient('p3', 'zope.anybody', 'g',
                                            anonymous=True), mark=before)
    texts, _end = manager.collect(stale, stale.delivery.acked)
    assert '"recovered":false' in texts[0]
