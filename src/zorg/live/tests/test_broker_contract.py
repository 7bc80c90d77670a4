"""What every broker must do: one suite, run unchanged against the memory
broker and the Redis broker (on a real redis-server, and on a real
3-master Redis Cluster), as Django Channels
runs one channel-layer spec against every backend. A new broker is
correct when this suite passes for it.
"""

import threading
import time

import pytest
from zope.interface.verify import verifyObject

from zorg.live.broker.memory import MemoryBroker
from zorg.live.broker.redis import RedisBroker
from zorg.live.broker.rediscluster import ClusterBroker
from zorg.live.interfaces import (
    IBroker, IInputRecords, IPageRecords, IPresence, InputRunning)
from zorg.live.tests.clusterfixture import RedisClusterGroup
from zorg.live.tests.redisfixture import RedisServer


def text(event_id, body='x'):
    return '{"id":"%s","event":"custom","name":"t","data":"%s"}' % (
        event_id, body)


@pytest.fixture(scope='module')
def redisURL():
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture(scope='module')
def clusterURL():
    group = RedisClusterGroup()
    try:
        yield group.start().url
    finally:
        group.stop()


@pytest.fixture(params=['memory', 'redis', 'cluster'])
def make(request):
    """make(historySize=...) -> a new broker of the kind (closed after)."""
    made = []

    def make(historySize=1000):
        if request.param == 'memory':
            broker = MemoryBroker(historySize=historySize)
        elif request.param == 'cluster':
            # Its groups, pages and own keys on three shards.
            broker = ClusterBroker(request.getfixturevalue('clusterURL'),
                                   historySize=historySize,
                                   prefix='contract:%d:%d:' % (
                                       id(made), len(made)))
        else:
            # A prefix of its own: each test sees empty logs.
            broker = RedisBroker(request.getfixturevalue('redisURL'),
                                 historySize=historySize,
                                 prefix='contract:%d:%d:' % (
                                     id(made), len(made)))
        made.append(broker)
        return broker
    yield make
    for broker in made:
        if hasattr(broker, 'close'):
            broker.close()


def publish(broker, group, body='x', audience=None):
    """Publish, and return once this process can read it: a broker may
    learn of its own publishes a moment later (the Redis reader), and
    readers are woken only then (listeners, waitFor)."""
    position = broker.publish(group, lambda event_id: text(event_id, body),
                              audience)
    local = broker.latestLocal(group)
    if local is not None:
        until(lambda: broker.latestLocal(group) >= position)
    return position


def until(condition, limit=10):
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_provides_its_interfaces(make):
    broker = make()
    verifyObject(IBroker, broker)
    verifyObject(IPresence, broker)
    if IPageRecords.providedBy(broker):
        verifyObject(IPageRecords, broker)


def test_publish_then_read_in_order_with_ids_in_the_text(make):
    broker = make()
    start = broker.latest('g')
    positions = [publish(broker, 'g', str(n)) for n in range(5)]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert all(p > start for p in positions)
    entries, recovered = broker.read('g', start, 100)
    assert recovered
    assert [p for p, _t, _a in entries] == positions
    for position, body, audience in entries:
        assert '"id":"%s"' % broker.formatPosition(position) in body
        assert audience is None
    # After a position: only what came later; limit respected.
    entries, _ = broker.read('g', positions[1], 2)
    assert [p for p, _t, _a in entries] == positions[2:4]


def test_audience_is_kept_with_the_entry(make):
    broker = make()
    start = broker.latest('g')
    publish(broker, 'g', audience={'to': 'client', 'uuid': 'p1'})
    entries, _ = broker.read('g', start, 10)
    assert entries[0][2] == {'to': 'client', 'uuid': 'p1'}


def test_groups_are_separate_logs(make):
    broker = make()
    a, b = broker.latest('a'), broker.latest('b')
    publish(broker, 'a', 'for a')
    publish(broker, 'b', 'for b')
    assert ['for a' in t for _p, t, _a in broker.read('a', a, 10)[0]] == [
        True]
    assert ['for b' in t for _p, t, _a in broker.read('b', b, 10)[0]] == [
        True]


def test_positions_round_trip_and_bad_ids_are_refused(make):
    broker = make()
    position = publish(broker, 'g')
    assert broker.parsePosition(broker.formatPosition(position)) == position
    for bad in ('', 'x', '1.5', '-1', '1-2-3', '²', '9' * 40):
        with pytest.raises(ValueError):
            broker.parsePosition(bad)


def test_history_is_trimmed_and_a_reader_behind_it_is_not_recovered(make):
    broker = make(historySize=4)
    start = broker.latest('g')
    positions = [publish(broker, 'g', str(n)) for n in range(12)]
    entries, recovered = broker.read('g', start, 100)
    assert not recovered               # it missed what was trimmed
    entries, recovered = broker.read('g', positions[-3], 100)
    assert recovered
    assert [p for p, _t, _a in entries] == positions[-2:]
    base, latest, fresh = broker.bounds('g')
    assert latest == positions[-1]
    assert not fresh                   # trimmed: the base is a trim
    assert start < base <= positions[-4]


def test_history_counts_events_not_the_markers_of_transactions(make):
    """history-size is events kept per group: a transaction's marker
    (pending.py) does not take an event's place in the history."""
    broker = make(historySize=4)
    broker.latest('g')
    positions = []
    for n in range(6):
        token = 'h%d' % n
        position, = broker.publishMany(
            [('g', lambda event_id, n=n: text(event_id, str(n)), None)],
            inFlight=token)
        assert broker.finished(token) is True
        positions.append(position)
    until(lambda: shown(broker, 'g', positions[-2]) != [])
    # The last four are there to be read from before the first of them,
    # from the reader's cache and from the log itself.
    for read in (broker.read, getattr(broker, 'readStored', broker.read)):
        entries, recovered = read('g', positions[1], 100)
        assert recovered, read
        assert [p for p, _t, _a in entries] == positions[2:], read


def test_a_position_from_before_the_log_is_not_recovered(make):
    broker = make()
    old = publish(broker, 'g')
    other = make()
    # Another broker (a restart, an empty Redis): the log it has does not
    # reach back to a position of the old one.
    other.latest('g2')
    _entries, recovered = other.read('g2', (old[0] - 10**6, 0)
                                     if isinstance(old, tuple)
                                     else old - 10**6, 10)
    assert not recovered


def test_mark_is_below_every_later_publish_to_any_group(make):
    broker = make()
    broker.latest('g')
    mark = broker.mark()
    assert publish(broker, 'g') > mark
    assert publish(broker, 'never seen before') > mark


def test_bounds_of_a_new_log(make):
    broker = make()
    base, latest, _fresh = broker.bounds('new')
    assert base <= latest
    _entries, recovered = broker.read('new', latest, 10)
    assert recovered


def test_local_calls_agree_with_the_others(make):
    broker = make()
    start = broker.latest('g')
    position = publish(broker, 'g')
    until(lambda: broker.latestLocal('g') == position)
    assert broker.latestLocal('g') <= broker.latest('g')
    local = broker.readLocal('g', start, 10)
    assert local is None or local == broker.read('g', start, 10)
    assert broker.latestLocal('not watched') is None or not broker.blocking


def test_listeners_are_called_with_the_group_after_a_publish(make):
    broker = make()
    broker.latest('g')        # watched, as a page of the group would
    heard = []
    listener = heard.append
    broker.addListener(listener)
    publish(broker, 'g')
    until(lambda: any('g' in groups for groups in heard))
    broker.removeListener(listener)
    count = len(heard)
    publish(broker, 'g')   # returns once this process has seen it
    assert len(heard) == count


def test_waitFor_wakes_on_publish_and_times_out_without(make):
    broker = make()
    after = broker.latest('g')
    assert broker.waitFor('g', after, 0.05) is False
    threading.Timer(0.1, broker.publish,
                    ('g', lambda event_id: text(event_id))).start()
    assert broker.waitFor('g', after, 10) is True


def test_presence_first_join_and_last_leave(make):
    broker = make()
    assert broker.join('room', 'alice', 'Alice', 'p1') is True
    assert broker.join('room', 'alice', 'Alice', 'p2') is False
    assert broker.join('room', 'bob', 'Bob', 'p3') is True
    assert broker.members('room') == ['alice', 'bob']
    assert broker.isOnline('alice')
    assert broker.leave('room', 'alice', 'p1') is False
    assert broker.leave('room', 'alice', 'p2') is True
    assert broker.members('room') == ['bob']
    assert not broker.isOnline('alice')


def test_dropGroup_keeps_delivery_correct(make):
    broker = make()
    start = broker.latest('g')
    first = publish(broker, 'g')
    broker.dropGroup('g')
    second = publish(broker, 'g')
    entries, recovered = broker.read('g', start, 10)
    # Either the log was kept (both entries) or the reader is told it
    # missed some: never a silent gap.
    assert (recovered and [p for p, _t, _a in entries] == [first, second]
            ) or not recovered


def test_health_says_connected(make):
    state = make().health()
    assert state['connected'] is True
    assert state['kind'] in ('memory', 'redis')


def opened(broker, *uuids):
    """Pages `uuids` are open: a broker that keeps page records has
    theirs (an input of a page without one is refused as unknown: see
    test_an_input_of_a_page_whose_record_is_gone_is_unknown)."""
    if IPageRecords.providedBy(broker):
        for uuid in uuids:
            broker.savePage(uuid, {'group': 'g'}, 600)


def record(broker, uuid, inputId, answer, keep=3):
    """Claim `inputId` and record `answer` the way a transaction's vote
    does (publishMany with `inputs`)."""
    token = 'tok-' + inputId
    opened(broker, uuid)
    found, claimed = broker.claimInput(uuid, inputId, token, 60)
    assert (found, claimed) == (None, True)
    broker.publishMany([], inputs=[(uuid, inputId, token, answer, keep,
                                    60)])


def test_input_records_are_bounded_and_go_with_the_page(make):
    """Recorded input answers (page/inputonce.py): the broker keeps the
    last `keep` per page and forgets a closed page's."""
    broker = make()
    verifyObject(IInputRecords, broker)
    for n in range(5):
        record(broker, 'p1', 'in-%d' % n, 'answer %d' % n)
    assert [broker.claimInput('p1', 'in-%d' % n, 'x', 60)[0]
            for n in range(2, 5)] == ['answer 2', 'answer 3', 'answer 4']
    # The two oldest were forgotten: they may be claimed (run) again.
    assert broker.claimInput('p1', 'in-0', 'x', 60) == (None, True)
    record(broker, 'p2', 'in-4', 'of p2')
    forget = getattr(broker, 'dropPage', None) or broker.forgetInputs
    forget('p1')
    opened(broker, 'p1')
    assert broker.claimInput('p1', 'in-4', 'y', 60) == (None, True)
    assert broker.claimInput('p2', 'in-4', 'y', 60) == ('of p2', False)


def test_a_claim_is_held_until_released_or_recorded(make):
    """One run at a time per input id, in every process (inputonce rule
    1): a second claimant is refused while the first holds it, gets the
    answer once it is recorded, and may run once it is released."""
    broker = make()
    opened(broker, 'p')
    assert broker.claimInput('p', 'a', 'first', 60) == (None, True)
    assert broker.claimInput('p', 'a', 'second', 60) == (None, False)
    assert broker.claimInput('p', 'a', 'first', 60) == (None, True)
    broker.releaseInput('p', 'a', 'second')      # not its claim: no effect
    assert broker.claimInput('p', 'a', 'second', 60) == (None, False)
    broker.releaseInput('p', 'a', 'first')
    assert broker.claimInput('p', 'a', 'second', 60) == (None, True)


def test_a_fenced_vote_writes_nothing(make):
    """A vote whose input was recorded meanwhile, or whose claim another
    run took, fails whole: its events are not appended either."""
    broker = make()
    first = broker.latest('g')
    record(broker, 'p', 'a', 'first answer')
    with pytest.raises(InputRunning):
        broker.publishMany([('g', text, None)],
                           inputs=[('p', 'a', 'late', 'second', 3, 60)])
    assert broker.claimInput('p', 'b', 'other', 60) == (None, True)
    with pytest.raises(InputRunning):
        broker.publishMany([('g', text, None)],
                           inputs=[('p', 'b', 'mine', 'answer', 3, 60)])
    # None of it is shown: not appended, or (a Redis Cluster, where the
    # page and the group may be on two shards) appended pending on one
    # shard and cancelled there when the other refused.
    publish(broker, 'g', 'after')
    until(lambda: shown(broker, 'g', first) != [])
    bodies = shown(broker, 'g', first)
    assert len(bodies) == 1 and 'after' in bodies[0], bodies
    assert broker.claimInput('p', 'a', 'x', 60) == ('first answer', False)


def test_the_mark_stays_before_transactions_in_flight(make):
    """Rule 10, exact: while a transaction is between its vote and its
    finish, every mark lies before its events; after `finished` marks
    pass them."""
    broker = make()
    broker.latest('g')
    before = broker.mark()
    position, = broker.publishMany([('g', text, None)], inFlight='t1')
    for _ in range(3):
        broker.publish('h', text)
    assert before <= broker.mark() < position
    assert broker.finished('t1') is True
    assert broker.finished('t1') is True     # twice: harmless
    deadline = time.monotonic() + 5
    while broker.mark() < position:
        assert time.monotonic() < deadline, 'the mark never passed it'
        time.sleep(0.01)


def shown(broker, group, after):
    return [body for _p, body, _a in broker.read(group, after, 100)[0]]


def test_a_transaction_in_flight_is_shown_when_it_finishes(make):
    """pending.py: the vote's events are appended pending; nothing is
    shown from the first of them on (a later publish waits behind them)
    until `finished` confirms them, in their place."""
    broker = make()
    start = broker.latest('g')
    broker.publishMany([('g', lambda i: text(i, 'voted'), None)],
                       inFlight='t1')
    later = broker.publish('g', lambda i: text(i, 'later'))
    assert broker.latest('g') >= later
    assert shown(broker, 'g', start) == []
    # Nothing to wake a reader for: waitFor times out (no busy wait).
    assert not broker.waitFor('g', start, 0.2)
    assert broker.finished('t1', committed=True) is True
    until(lambda: len(shown(broker, 'g', start)) == 2)
    bodies = shown(broker, 'g', start)
    assert ['voted' in bodies[0], 'later' in bodies[1]] == [True, True]
    assert broker.waitFor('g', start, 5)


def test_a_transaction_aborted_after_its_vote_is_never_shown(make):
    """An abort after the vote cancels its events and its input records;
    what followed them is shown."""
    broker = make()
    start = broker.latest('g')
    opened(broker, 'p')
    assert broker.claimInput('p', 'in', 'tok', 60) == (None, True)
    broker.publishMany([('g', lambda i: text(i, 'aborted'), None)],
                       inputs=[('p', 'in', 'tok', 'answer', 3, 60)],
                       inFlight='t2')
    # Recorded pending: a repeat meanwhile is told the input is running.
    assert broker.claimInput('p', 'in', 'tok2', 60) == (None, False)
    broker.publish('g', lambda i: text(i, 'after'))
    broker.finished('t2', committed=False)
    until(lambda: shown(broker, 'g', start) != [])
    bodies = shown(broker, 'g', start)
    assert len(bodies) == 1 and 'after' in bodies[0], bodies
    # Not stored: the input runs again.
    assert broker.claimInput('p', 'in', 'tok3', 60) == (None, True)


def test_a_committed_transaction_keeps_its_input_record(make):
    broker = make()
    opened(broker, 'p')
    assert broker.claimInput('p', 'in', 'tok', 60) == (None, True)
    broker.publishMany([('g', text, None)],
                       inputs=[('p', 'in', 'tok', 'answer', 3, 60)],
                       inFlight='t3')
    assert broker.finished('t3', committed=True) is True
    assert broker.claimInput('p', 'in', 'tok2', 60) == ('answer', False)


def test_a_transaction_never_finished_is_unknown(redisURL):
    """Redis: a transaction whose process never resolves it (it died
    between vote and finish) is swept at its deadline as unknown: its
    pages are told to reload in place of its events, what followed is
    shown, and its input's resend is answered input-unknown."""
    from zorg.live.interfaces import InputUnknown
    broker = RedisBroker(redisURL, prefix='contract:unknown:')
    # The publisher sets the deadline (its commit-timeout).
    dead = RedisBroker(redisURL, prefix='contract:unknown:',
                       commitTimeout=0.5)
    try:
        start = broker.latest('g')
        opened(dead, 'p')
        assert dead.claimInput('p', 'in', 'tok', 60) == (None, True)
        dead.publishMany([('g', lambda i: text(i, 'ghost'), None)],
                         inputs=[('p', 'in', 'tok', 'answer', 3, 60)],
                         inFlight='t4')
        dead.close()      # it never finishes; 'broker' sweeps it
        broker.publish('g', lambda i: text(i, 'after'))
        assert broker.claimInput('p', 'in', 'tok2', 60) == (None, False)
        assert broker.waitFor('g', start, 10)
        until(lambda: len(broker.read('g', start, 10)[0]) == 2)
        entries = broker.read('g', start, 10)[0]
        assert '"reload"' in entries[0][1] and 'ghost' not in entries[0][1]
        assert '"recovered":false' in entries[0][1]
        assert 'after' in entries[1][1]
        # A reader from Redis (not the cache) is told the same.
        assert [e[1] for e in broker.readStored('g', start, 10)[0]] == [
            e[1] for e in entries]
        with pytest.raises(InputUnknown):
            broker.claimInput('p', 'in', 'tok3', 60)
    finally:
        broker.close()


def test_an_input_of_a_page_whose_record_is_gone_is_unknown(make):
    """A broker that keeps page records keeps the input records beside
    them: when the page's record is gone (Redis restarted empty, or the
    page expired), its input records may be gone too, so an input id
    that may have run is not claimed again: InputUnknown (409)."""
    from zorg.live.interfaces import InputUnknown
    broker = make()
    if not IPageRecords.providedBy(broker):
        pytest.skip('no page records: the process holds its pages')
    record(broker, 'p', 'in', 'answer')
    broker.dropPage('p')
    with pytest.raises(InputUnknown):
        broker.claimInput('p', 'in', 'again', 60)
