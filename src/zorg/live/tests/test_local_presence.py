"""Presence in one process (LocalPresence, the memory broker's) and the
manager's own presence for a broker that does not provide IPresence."""

from zope.interface import implementer

from zorg.live.broker.memory import MemoryBroker
from zorg.live.broker.presence import LocalPresence
from zorg.live.interfaces import IBroker, IPresence
from zorg.live.page.client import LivePageClient
from zorg.live.page.manager import LivePageManager


def test_first_and_last_page_per_group():
    presence = LocalPresence()
    assert presence.join('room', 'alice', 'Alice', 'p1') is True
    assert presence.join('room', 'alice', 'Alice', 'p2') is False
    assert presence.join('hall', 'alice', 'Alice', 'p3') is True
    assert presence.members('room') == ['alice']
    assert presence.leave('room', 'alice', 'p1') is False
    assert presence.leave('room', 'alice', 'p2') is True
    assert presence.members('room') == []
    assert presence.isOnline('alice')
    assert presence.leave('hall', 'alice', 'p3') is True
    assert not presence.isOnline('alice')


def test_double_join_double_leave_and_unknown_pages_change_nothing():
    presence = LocalPresence()
    assert presence.join('room', 'alice', 'Alice', 'p1') is True
    assert presence.join('room', 'alice', 'Alice', 'p1') is False
    assert presence.leave('room', 'alice', 'nope') is False
    assert presence.leave('room', 'bob', 'p1') is False
    assert presence.leave('elsewhere', 'alice', 'p1') is False
    assert presence.leave('room', 'alice', 'p1') is True
    assert presence.leave('room', 'alice', 'p1') is False
    assert presence._groups == {}


@implementer(IBroker)
class LogsOnly:
    """A broker without presence (IBroker only)."""

    def __init__(self):
        self._logs = MemoryBroker()

    def __getattr__(self, name):
        if name in ('join', 'leave', 'members', 'isOnline', 'shared'):
            raise AttributeError(name)
        return getattr(self._logs, name)


def test_the_manager_keeps_presence_itself_for_a_broker_without_it():
    manager = LivePageManager(LogsOnly())
    assert not IPresence.providedBy(manager.broker)
    assert isinstance(manager.presence, LocalPresence)
    manager.register(LivePageClient('u1', 'alice', 'room', 'Alice'))
    manager.register(LivePageClient('u2', 'bob', 'room', 'Bob'))
    assert manager.whoIsOnline('room') == ['alice', 'bob']
    manager.unregister('u2')
    assert manager.whoIsOnline('room') == ['alice']
    assert not manager.isOnline('bob')


def test_a_new_broker_brings_its_presence():
    manager = LivePageManager()
    first = manager.broker
    assert manager.presence is first
    manager.broker = MemoryBroker()
    assert manager.presence is manager.broker is not first
