"""Shared presence in Redis (redispresence.py): the scripts' edge cases.
Each RedisBroker is a process; stopping a broker's heartbeat
(``presence.close()``) is a process that hangs or died."""

import time

import pytest
import redis as redislib

from zorg.live.broker.redis import RedisBroker
from zorg.live.interfaces import BrokerUnavailable, IPresence
from zorg.live.tests.redisfixture import redisServer  # noqa

pytestmark = pytest.mark.redis

TIMEOUT = 0.6   # presence timeout of the brokers here (seconds)


@pytest.fixture
def brokers(redisServer):
    made = []

    def make(listen=False, **kw):
        kw.setdefault('presenceTimeout', TIMEOUT)
        broker = RedisBroker(redisServer.url, **kw)
        broker.heard = []
        if listen:
            broker.addPresenceListener(broker.heard.extend)
        made.append(broker)
        return broker
    yield make
    for broker in made:
        broker.close()


def waitUntil(predicate, limit=15):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, 'gave up waiting'
        time.sleep(0.02)


def test_first_and_last_page_across_processes(brokers):
    a, b = brokers(), brokers()
    assert IPresence.providedBy(a) and a.shared
    assert a.join('room', 'alice', 'Alice', 'p1') is True
    assert b.join('room', 'alice', 'Alice', 'p2') is False   # on B too
    assert a.join('room', 'alice', 'Alice', 'p3') is False
    assert b.join('hall', 'alice', 'Alice', 'p4') is True    # other group
    assert b.join('room', 'bob', 'Bob', 'p5') is True
    assert a.members('room') == b.members('room') == ['alice', 'bob']
    assert a.isOnline('alice') and b.isOnline('bob')
    assert not a.isOnline('carol')
    assert a.leave('room', 'alice', 'p1') is False
    assert b.leave('room', 'alice', 'p2') is False
    assert a.leave('room', 'alice', 'p3') is True            # the last one
    assert b.members('room') == ['bob']
    assert a.isOnline('alice')                               # still in hall
    assert b.leave('hall', 'alice', 'p4') is True
    assert not a.isOnline('alice')
    assert a.members('hall') == []


def test_double_join_and_double_leave_change_nothing(brokers, redisServer):
    a = brokers()
    assert a.join('room', 'alice', 'Alice', 'p1') is True
    assert a.join('room', 'alice', 'Alice', 'p1') is False
    # The scripts themselves are idempotent per page, not only the
    # broker's own bookkeeping: call the join script again directly.
    presence = a.presence
    again = presence._join(args=[presence.prefix, presence.processId,
                                 presence._timeoutMs, 'p1', '["room",'
                                 '"alice","Alice"]'])
    assert again == 0
    assert a.leave('room', 'alice', 'p1') is True
    assert a.leave('room', 'alice', 'p1') is False
    assert presence._leave(args=[presence.prefix, presence.processId,
                                 'p1']) == 0
    assert a.members('room') == []
    # Nothing is left behind: no counts below zero, no empty hashes.
    client = redislib.Redis.from_url(redisServer.url, decode_responses=True)
    try:
        assert sorted(client.keys('zorg:live:presence:*')) == [
            'zorg:live:presence:procs']
    finally:
        client.close()


def test_leave_of_an_unknown_page(brokers):
    a, b = brokers(), brokers()
    a.join('room', 'alice', 'Alice', 'p1')
    assert b.leave('room', 'alice', 'p1') is False   # A's page, not B's
    assert b.presence._leave(args=[b.presence.prefix, b.presence.processId,
                                   'p1']) == 0
    assert a.leave('room', 'alice', 'nope') is False
    assert a.members('room') == ['alice']


def test_unicode_ids_and_titles(brokers):
    a, b = brokers(), brokers(listen=True)
    assert a.join('/räume/ü', 'ålice', 'Ålice 😀', 'p1') is True
    assert b.members('/räume/ü') == ['ålice']
    a.presence.close()
    waitUntil(lambda: b.heard)
    assert b.heard == [('leave', '/räume/ü', 'ålice', 'Ålice 😀')]


def test_the_pages_of_a_silent_process_leave_once(brokers):
    a = brokers()
    a.join('room', 'alice', 'Alice', 'a1')
    a.join('room', 'alice', 'Alice', 'a2')
    a.join('room', 'bob', 'Bob', 'a3')
    a.join('hall', 'bob', 'Bob', 'a4')
    b = brokers(listen=True)
    b.join('room', 'bob', 'Bob', 'b1')      # bob stays: he is on B too
    c, d = brokers(listen=True), brokers(listen=True)
    a.presence.close()                       # A stops beating
    heard = lambda: b.heard + c.heard + d.heard   # noqa: E731
    waitUntil(lambda: len(heard()) >= 2)
    # Every sweeper ran at least once more: nothing else is to be found.
    for broker in (b, c, d):
        assert broker.presence.beat() == []
    assert sorted(heard()) == [('leave', 'hall', 'bob', 'Bob'),
                               ('leave', 'room', 'alice', 'Alice')]
    assert b.members('room') == ['bob']
    assert not b.isOnline('alice')


def test_a_process_without_listener_does_not_sweep(brokers):
    # It could not publish the leaves: it leaves that to the others.
    a, b = brokers(), brokers()
    a.join('room', 'alice', 'Alice', 'a1')
    b.join('room', 'bob', 'Bob', 'b1')
    a.presence.close()
    time.sleep(TIMEOUT * 1.5)   # A's heartbeat has expired
    assert b.presence.beat() == []
    assert b.members('room') == ['alice', 'bob']
    c = brokers(listen=True)
    waitUntil(lambda: c.heard)
    assert c.heard == [('leave', 'room', 'alice', 'Alice')]


def test_join_after_being_swept(brokers):
    # A hangs longer than the timeout: B sweeps its pages. When A comes
    # back, its next join is a join again, and its heartbeat puts its
    # other pages back (reporting the joins it finds).
    a, b = brokers(listen=True), brokers(listen=True)
    a.join('room', 'alice', 'Alice', 'a1')
    a.join('room', 'carol', 'Carol', 'a2')
    a.presence.close()
    waitUntil(lambda: len(b.heard) == 2)
    assert b.members('room') == []
    assert a.join('room', 'alice', 'Alice', 'a3') is True
    assert a.presence.beat() == [('join', 'room', 'carol', 'Carol')]
    assert a.heard == [('join', 'room', 'carol', 'Carol')]
    assert b.members('room') == ['alice', 'carol']
    # Counted right: a1 and a3 are both alice's.
    assert a.leave('room', 'alice', 'a1') is False
    assert a.leave('room', 'alice', 'a3') is True
    # And A is known again: as its heartbeat stays stopped, its pages
    # are swept again.
    waitUntil(lambda: ('leave', 'room', 'carol', 'Carol') in b.heard[2:])


def test_presence_comes_back_after_redis_lost_it(brokers, redisServer):
    a = brokers(listen=True)
    a.join('room', 'alice', 'Alice', 'a1')
    a.join('room', 'alice', 'Alice', 'a2')
    a.join('room', 'bob', 'Bob', 'a3')
    redisServer.stop()
    with pytest.raises(BrokerUnavailable):
        a.members('room')
    with pytest.raises(BrokerUnavailable):
        a.isOnline('alice')
    with pytest.raises(BrokerUnavailable):
        a.join('room', 'carol', 'Carol', 'a4')
    # Closing a page does not fail for it ...
    assert a.leave('room', 'bob', 'a3') is False
    redisServer.start()                 # empty
    # ... and the heartbeat puts back what this process has: one join
    # per principal, none for bob (gone) or carol (never joined).
    waitUntil(lambda: a.heard)
    assert a.heard == [('join', 'room', 'alice', 'Alice')]
    assert a.members('room') == ['alice']
    assert a.leave('room', 'alice', 'a1') is False
    assert a.leave('room', 'alice', 'a2') is True


def test_a_failed_leave_is_reported_by_the_next_heartbeat(brokers):
    a = brokers(listen=True)
    a.presence.close()   # beat by hand: no thread to race with
    a.join('room', 'alice', 'Alice', 'a1')
    script = a.presence._leave

    def unreachable(*args, **kw):
        raise redislib.ConnectionError('connection refused (test)')
    a.presence._leave = unreachable
    assert a.leave('room', 'alice', 'a1') is False
    a.presence._leave = script
    assert a.members('room') == ['alice']      # Redis still has it
    assert a.presence.beat() == [('leave', 'room', 'alice', 'Alice')]
    assert a.members('room') == []
    assert a.presence.beat() == []


def test_a_failed_join_leaves_nothing_behind(brokers):
    a = brokers(listen=True)
    a.presence.close()
    script = a.presence._join

    def ranThenLost(*args, **kw):
        script(*args, **kw)    # it ran, but the answer was lost
        raise redislib.TimeoutError('timeout (test)')
    a.presence._join = ranThenLost
    with pytest.raises(BrokerUnavailable):
        a.join('room', 'alice', 'Alice', 'a1')
    a.presence._join = script
    assert a.members('room') == ['alice']
    # The page was not registered: the heartbeat takes it back out.
    assert a.presence.beat() == [('leave', 'room', 'alice', 'Alice')]
    assert a.members('room') == []


def test_health(brokers, redisServer):
    a = brokers()
    assert a.health() == {'kind': 'redis', 'url': redisServer.url,
                          'connected': True, 'error': None}
    redisServer.stop()
    waitUntil(lambda: not a.health()['connected'])
    assert a.health()['error']
    redisServer.start()
    waitUntil(lambda: a.health()['connected'])
    assert a.health()['error'] is None


def test_presence_timeout_must_be_positive(redisServer):
    with pytest.raises(ValueError):
        RedisBroker(redisServer.url, presenceTimeout=0)
