"""RedisBroker against a real redis-server: two brokers on one Redis are
two processes."""

import json
import threading
import time

import pytest

from zorg.live.broker.redis import RedisBroker, redactURL
from zorg.live.interfaces import BrokerUnavailable, IBroker, LiveError
from zorg.live.core.events import Append, encode
from zorg.live.tests.redisfixture import RedisServer, redisServer  # noqa

pytestmark = pytest.mark.redis


def ev(text):
    return lambda event_id: encode(Append('t', text), event_id)


def html(entries):
    return [json.loads(text)['html'] for _pos, text, _aud in entries]


@pytest.fixture
def brokers(redisServer):
    made = []

    def make(**kw):
        broker = RedisBroker(redisServer.url, **kw)
        made.append(broker)
        return broker
    yield make
    for broker in made:
        broker.close()


def waitUntil(predicate, limit=5):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, 'gave up waiting'
        time.sleep(0.01)


def test_interface_and_positions(brokers):
    broker = brokers()
    assert IBroker.providedBy(broker)
    base = broker.latest('g')
    assert isinstance(base, tuple)
    text = broker.formatPosition(base)
    assert broker.parsePosition(text) == base
    assert broker.parsePosition(' 12-3 ') == (12, 3)
    for bad in ('', '12', '12-', '-3', 'a-1', '1-2-3', '١-1', '1' * 21 + '-0',
                '18446744073709551616-0'):
        with pytest.raises(ValueError):
            broker.parsePosition(bad)
    first = broker.publish('g', ev('one'), None)
    second = broker.publish('g', ev('two'), None)
    assert base < first < second
    assert broker.latest('g') == second


def test_publish_read_with_ids_in_the_json(brokers):
    broker = brokers()
    base = broker.latest('g')
    pos = broker.publish('g', ev('hello "you"'),
                         {'to': 'client', 'uuid': 'u1'})
    # Reads come from the reader thread's cache: they see the publish a
    # moment later (waiters are woken then).
    assert broker.waitFor('g', base, 5)
    entries, recovered = broker.read('g', base, 10)
    assert recovered
    [(position, text, audience)] = entries
    assert position == pos
    assert json.loads(text) == {'id': broker.formatPosition(pos),
                                'event': 'append', 'target': 't',
                                'html': 'hello "you"'}
    assert text.startswith('{"id":"%s",' % broker.formatPosition(pos))
    assert audience == {'to': 'client', 'uuid': 'u1'}
    # Any encoder that puts the id somewhere works too.
    pos2 = broker.publish('g', lambda i: '{"a":1,"id":"%s"}' % i, None)
    assert broker.readStored('g', pos, 10)[0] == [
        (pos2, '{"a":1,"id":"%s"}' % broker.formatPosition(pos2), None)]
    with pytest.raises(ValueError):
        broker.publish('g', lambda i: '{"no":"id"}', None)


def test_read_limit_and_order(brokers):
    broker = brokers()
    base = broker.latest('g')
    positions = [broker.publish('g', ev(str(n)), None) for n in range(20)]
    waitUntil(lambda: broker.read('g', base, 100)[0][-1:] and
              broker.read('g', base, 100)[0][-1][0] == positions[-1])
    entries, recovered = broker.read('g', base, 5)
    assert recovered and html(entries) == ['0', '1', '2', '3', '4']
    entries, _ = broker.read('g', positions[4], 100)
    assert html(entries) == [str(n) for n in range(5, 20)]
    assert broker.readStored('g', positions[4], 100)[0] == entries
    assert broker.read('g', positions[-1], 10) == ([], True)


def test_history_is_bounded_and_a_late_reader_is_not_recovered(brokers):
    broker = brokers(historySize=10)
    base = broker.latest('g')
    positions = [broker.publish('g', ev(str(n)), None) for n in range(30)]
    entries, recovered = broker.readStored('g', base, 100)
    assert not recovered
    # history-size counts events, and a log keeps room for a marker of a
    # transaction beside each (pending.py): immediate publishes keep
    # between 2 x historySize and 2.5 x historySize entries.
    assert 20 <= len(entries) <= 25
    assert html(entries) == [str(n) for n in range(30 - len(entries), 30)]
    # The base is the newest dropped entry: readers from there are fine.
    dropped = positions[30 - len(entries) - 1]
    assert broker.base('g') == dropped
    assert broker.readStored('g', dropped, 100)[1]
    assert not broker.readStored('g', positions[0], 100)[1]
    waitUntil(lambda: broker.read('g', dropped, 100)[0][-1:] and
              broker.read('g', dropped, 100)[0][-1][0] == positions[-1])
    assert not broker.read('g', positions[0], 100)[1]
    assert broker.read('g', dropped, 100)[1]


def test_a_new_log_starts_at_its_creation(brokers):
    # A position from before the log existed (another Redis, an expired
    # log) is not recovered, even when nothing was ever trimmed.
    broker = brokers()
    old = broker.latest('old')
    time.sleep(0.005)
    new = broker.latest('new')
    assert broker.readStored('new', old, 10) == ([], False)
    assert broker.readStored('new', new, 10) == ([], True)


def test_listeners_of_another_process_are_woken(brokers):
    a, b = brokers(), brokers()
    calls = []
    a.addListener(calls.append)
    base = a.latest('g')     # A has a page in g: it watches g
    b.latest('other')
    pos = b.publish('g', ev('from b'), None)
    waitUntil(lambda: calls)
    assert calls[0] == ('g',)
    entries, recovered = a.read('g', base, 10)
    assert recovered and [p for p, _t, _a in entries] == [pos]
    # The publishing process is woken through its reader too.
    mine = []
    b.addListener(mine.append)
    b.latest('g')
    b.publish('g', ev('again'), None)
    waitUntil(lambda: ('g',) in mine)
    # Removed listeners are not called; groups not watched wake nobody.
    a.removeListener(calls.append)
    del calls[:]
    b.publish('g', ev('more'), None)
    b.publish('unwatched', ev('x'), None)
    time.sleep(0.2)
    assert calls == []


def test_dropGroup_stops_watching_but_keeps_the_log(brokers):
    a, b = brokers(), brokers()
    base = a.latest('g')
    b.latest('g')
    assert a.groupCount() == 1
    a.dropGroup('g')
    assert a.groupCount() == 0
    pos = b.publish('g', ev('still there'), None)
    entries, recovered = b.readStored('g', base, 10)
    assert recovered and [p for p, _t, _a in entries] == [pos]


def test_waitFor_blocks_until_another_process_publishes(brokers):
    a, b = brokers(), brokers()
    base = a.latest('g')
    start = time.monotonic()
    assert not a.waitFor('g', base, 0.2)
    assert time.monotonic() - start >= 0.19
    threading.Timer(0.2, b.publish, ('g', ev('x'), None)).start()
    start = time.monotonic()
    assert a.waitFor('g', base, 5)
    assert 0.15 < time.monotonic() - start < 2
    assert html(a.read('g', base, 10)[0]) == ['x']


def test_a_group_watched_later_is_read_promptly(brokers):
    # The reader thread is blocked in XREAD when a new group is watched:
    # the control stream interrupts it, so waiting is not delayed.
    a, b = brokers(), brokers()
    a.latest('first')
    time.sleep(0.2)   # the reader blocks on 'first' only
    base = a.latest('second')
    b.publish('second', ev('x'), None)
    start = time.monotonic()
    assert a.waitFor('second', base, 4)
    assert time.monotonic() - start < 1


def test_unavailable_at_start_names_the_url(tmp_path):
    server = RedisServer(tmp_path)   # never started: nothing listens
    url = 'redis://:sekret@127.0.0.1:%d/0' % server.port
    with pytest.raises(BrokerUnavailable) as info:
        RedisBroker(url)
    message = str(info.value)
    assert '127.0.0.1:%d' % server.port in message
    assert 'sekret' not in message
    assert redactURL(url) in message
    assert isinstance(info.value, LiveError)
    assert info.value.status == 503
    assert info.value.code == 'broker-unavailable'


def test_redis_lost_and_back(redisServer):
    a = RedisBroker(redisServer.url)
    b = RedisBroker(redisServer.url)
    try:
        woken = []
        a.addListener(woken.append)
        base = a.latest('g')
        before = b.publish('g', ev('before'), None)
        waitUntil(lambda: a.read('g', base, 10)[0])
        redisServer.stop()
        # Publishing fails visibly: nothing is silently lost.
        with pytest.raises(BrokerUnavailable) as info:
            b.publish('g', ev('lost'), None)
        assert info.value.status == 503
        with pytest.raises(BrokerUnavailable):
            a.latest('g')
        waitUntil(lambda: not a.available and not b.available)
        # The local cache is no proof of what Redis will have when it is
        # back (test below): reads ask Redis, and fail visibly meanwhile.
        with pytest.raises(BrokerUnavailable):
            a.read('g', base, 10)
        assert a.readLocal('g', base, 10) is None
        redisServer.start()   # empty: the log is gone
        waitUntil(lambda: a.available and b.available, 10)
        del woken[:]
        after = b.publish('g', ev('after'), None)
        waitUntil(lambda: ('g',) in woken)
        # A page that applied 'before' cannot know what it missed.
        entries, recovered = a.read('g', before, 10)
        assert not recovered
        # A page registered after the restart reads on.
        assert html(a.read('g', a.base('g'), 10)[0]) == ['after']
        assert after > before
    finally:
        a.close()
        b.close()


def test_a_reader_away_does_not_vouch_for_history(redisServer):
    """Redis restarted empty while A's reader is away (reconnecting, held
    here before it does): A's cache still holds what the old log had, but
    is no proof that Redis still has that history. A page that registers
    again after `before` (manager.rewind) must be told it was not
    recovered, not be served from the cache."""
    a = RedisBroker(redisServer.url, timeout=1)
    b = RedisBroker(redisServer.url, timeout=1)
    gate = threading.Event()
    restart = a._restart

    def held():
        gate.wait(30)
        restart()
    try:
        base = a.latest('g')
        before = b.publish('g', ev('before'), None)
        waitUntil(lambda: a.read('g', base, 10)[0])
        a._restart = held
        redisServer.stop()
        waitUntil(lambda: not a.available)
        redisServer.start()   # empty
        entries, recovered = a.read('g', before, 10)
        assert (entries, recovered) == ([], False)
        gate.set()
        waitUntil(lambda: a.available)
        assert not a.read('g', before, 10)[1]
    finally:
        gate.set()
        a.close()
        b.close()


class FirstConnectionHeld(RedisBroker):
    """A broker whose reader waits for `gate` before it first connects."""

    gate = None

    def _restart(self):
        self.gate.wait(30)
        super()._restart()


def test_a_publish_before_the_reader_first_connects_is_not_skipped(
        redisServer):
    """A group watched, and published to, before the reader thread's
    first connection (a busy machine starts threads late): the reader
    goes on from where the cache was made, so waiters are woken by that
    publish, not by the next one."""
    FirstConnectionHeld.gate = gate = threading.Event()
    a = FirstConnectionHeld(redisServer.url)
    b = RedisBroker(redisServer.url)
    try:
        base = a.latest('g')
        pos = b.publish('g', ev('early'), None)
        gate.set()
        assert a.waitFor('g', base, 5)
        assert [p for p, _t, _a in a.read('g', base, 10)[0]] == [pos]
    finally:
        gate.set()
        a.close()
        b.close()


def test_close_stops_the_reader(redisServer):
    broker = RedisBroker(redisServer.url)
    broker.latest('g')
    start = time.monotonic()
    broker.close()
    assert time.monotonic() - start < 2
    assert not broker._thread.is_alive()


def test_a_reader_that_falls_behind_keeps_what_it_holds(brokers):
    """The reader thread reads at most `readCount` entries a round; a full
    answer means it fell behind, and its cache starts again just before
    that answer. A transaction's pending event held from before (its
    marker not yet read) stays held across that restart: when the marker
    comes the pages are woken and shown it, in its place, without waiting
    for another event."""
    a, b = brokers(), brokers()
    a.readCount = 3
    woken = []
    a.addListener(woken.append)
    base = a.latest('g')
    b.latest('g')
    pending, = b.publishMany([('g', ev('pending'), None)], inFlight='t1')
    # A's reader takes the pending entry and holds it.
    waitUntil(lambda: a._caches['g'].holder.holding)
    # It falls behind: while it cannot take what it reads, more than a
    # whole answer of entries arrive.
    with a._cond:
        later = [b.publish('g', ev('later%d' % n), None) for n in range(5)]
    # It reads them (held behind the pending one) and nothing is shown.
    waitUntil(lambda: a._caches['g'].cursor >= later[-1])
    assert a.read('g', base, 10)[0] == []
    assert not a.waitFor('g', base, 0.1)
    del woken[:]
    assert b.finished('t1') is True
    waitUntil(lambda: ('g',) in woken)
    assert a.waitFor('g', base, 5)
    assert html(a.read('g', base, 10)[0]) == (
        ['pending'] + ['later%d' % n for n in range(5)])
