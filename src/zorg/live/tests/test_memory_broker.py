"""Edges of the in-memory broker."""

from zorg.live.broker.memory import MemoryBroker


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
