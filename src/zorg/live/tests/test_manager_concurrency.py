"""Exactly once and in order, under threads.

Several publisher threads publish (to the group, and to single pages) while
one waiter thread per page long-polls through ``manager.output``, counting
outputNum 0, 1, 2, ... as a browser does. Every page must then hold exactly
the events meant for it, each once, in the order of their ids (which is the
order of the group's log). In the lossy run, waiters "lose" some responses:
they drop the answer and repeat the same outputNum, which must give the
same answer byte for byte and still no event twice.

Each run happens once per module (a fixture); the tests assert one property
each on its results. The runs are bounded by a count of events and by a
deadline, and nothing sleeps: waiters block in the manager, publishers start
together on a barrier.
"""

import json
import random
import threading
import time

import pytest

from zorg.live.broker.memory import MemoryBroker
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import Custom
from zorg.live.page.manager import LivePageManager

GROUP = 'room'
PAGES = ['page-%d' % n for n in range(6)]
PUBLISHERS = 4
EVENTS_PER_PUBLISHER = 1000       # 4,000 events in all
DIRECT_EVERY = 5                  # every 5th event goes to one page only
REFRESH = 0.02                    # short waits: many idle answers too
DEADLINE = 120.0                  # seconds; a run normally takes ~1


class Run:
    """The results of one concurrent run."""

    def __init__(self):
        self.published = {}       # event id (str) -> (payload, to-uuid)
        self.received = {uuid: [] for uuid in PAGES}   # [(id, payload)]
        self.resends = {uuid: 0 for uuid in PAGES}
        self.mismatched_resends = []
        self.errors = []
        self.unfinished = []


def expected_for(run, uuid):
    return sorted((int(event_id), event_id) for event_id, (_payload, to)
                  in run.published.items() if to in (None, uuid))


def run_concurrently(lose_rate):
    manager = LivePageManager(MemoryBroker(historySize=100000))
    for n, uuid in enumerate(PAGES):
        client = LivePageClient(uuid, 'principal-%d' % (n % 2), GROUP)
        client.refreshInterval = REFRESH
        manager.register(client)
    run = Run()
    lock = threading.Lock()
    done_publishing = threading.Event()
    start = threading.Barrier(PUBLISHERS + len(PAGES))
    deadline = time.monotonic() + DEADLINE
    total_for = {}

    def publisher(p):
        rnd = random.Random(p)
        try:
            start.wait()
            for s in range(EVENTS_PER_PUBLISHER):
                payload = {'p': p, 's': s}
                if s % DIRECT_EVERY == 0:
                    to = rnd.choice(PAGES)
                    position = manager.publishToClient(
                        Custom('n', payload), to)
                else:
                    to = None
                    position = manager.publish(Custom('n', payload), GROUP)
                with lock:
                    run.published[str(position)] = (payload, to)
        except Exception as e:  # reported by the tests, not lost in a thread
            run.errors.append('publisher %d: %r' % (p, e))

    def waiter(uuid):
        rnd = random.Random(uuid)
        received = run.received[uuid]
        num = 0
        try:
            start.wait()
            while time.monotonic() < deadline:
                if done_publishing.is_set() and len(received) >= \
                        total_for[uuid]:
                    return
                body = manager.output(uuid, num)
                if rnd.random() < lose_rate:
                    # The answer was lost on the way: ask for N again.
                    again = manager.output(uuid, num)
                    run.resends[uuid] += 1
                    if again != body:
                        run.mismatched_resends.append((uuid, num))
                    body = again
                answer = json.loads(body)
                assert answer['outputNum'] == num
                for event in answer['events']:
                    if event['event'] != 'idle':
                        received.append((event['id'], event['data']))
                num += 1
            run.unfinished.append(uuid)
        except Exception as e:
            run.errors.append('waiter %s: %r' % (uuid, e))

    publishers = [threading.Thread(target=publisher, args=(p,), daemon=True)
                  for p in range(PUBLISHERS)]
    waiters = [threading.Thread(target=waiter, args=(uuid,), daemon=True)
               for uuid in PAGES]
    for thread in publishers + waiters:
        thread.start()
    for thread in publishers:
        thread.join(DEADLINE)
    # Waiters know how much to expect only once publishing is over.
    for uuid in PAGES:
        total_for[uuid] = len(expected_for(run, uuid))
    done_publishing.set()
    for thread in waiters:
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
    run.unfinished.extend(t.name for t in publishers + waiters
                          if t.is_alive())
    return run


@pytest.fixture(scope='module')
def reliable_run():
    return run_concurrently(lose_rate=0.0)


@pytest.fixture(scope='module')
def lossy_run():
    return run_concurrently(lose_rate=0.3)


@pytest.fixture(params=['reliable_run', 'lossy_run'])
def run(request):
    return request.getfixturevalue(request.param)


def test_no_thread_failed(run):
    assert run.errors == []


def test_every_thread_finished_before_the_deadline(run):
    assert run.unfinished == []


def test_every_publish_returned_a_distinct_id(run):
    assert len(run.published) == PUBLISHERS * EVENTS_PER_PUBLISHER


@pytest.mark.parametrize('uuid', PAGES)
def test_page_receives_each_of_its_events_exactly_once(run, uuid):
    ids = [event_id for event_id, _data in run.received[uuid]]
    expected = [event_id for _n, event_id in expected_for(run, uuid)]
    assert sorted(ids, key=int) == expected


@pytest.mark.parametrize('uuid', PAGES)
def test_page_receives_events_in_log_order(run, uuid):
    ids = [int(event_id) for event_id, _data in run.received[uuid]]
    assert ids == sorted(ids)


@pytest.mark.parametrize('uuid', PAGES)
def test_page_receives_each_publishers_events_in_publish_order(run, uuid):
    for p in range(PUBLISHERS):
        seqs = [data['s'] for _id, data in run.received[uuid]
                if data['p'] == p]
        assert seqs == sorted(seqs), 'publisher %d out of order' % p


@pytest.mark.parametrize('uuid', PAGES)
def test_page_receives_the_payload_published_under_each_id(run, uuid):
    wrong = [(event_id, data) for event_id, data in run.received[uuid]
             if run.published.get(event_id, (None,))[0] != data]
    assert wrong == []


def test_repeated_requests_got_the_same_answer_byte_for_byte(run):
    assert run.mismatched_resends == []


def test_lossy_run_really_repeated_requests(lossy_run):
    assert all(count > 0 for count in lossy_run.resends.values())


# -- a newer request supersedes a waiting one ---------------------------------

class SignallingBroker(MemoryBroker):
    """Tells the test when a thread is blocked waiting for news."""

    def __init__(self):
        super().__init__()
        self.waiting = threading.Event()

    def waitFor(self, group_id, after, timeout):
        self.waiting.set()
        return super().waitFor(group_id, after, timeout)


def supersede():
    """Request 0 waits in a thread; request 0 again supersedes it; then an
    event arrives. Returns (the old request's answer, the next answer)."""
    broker = SignallingBroker()
    manager = LivePageManager(broker)
    manager.register(LivePageClient('page-a', 'uwe', GROUP))
    old_answer = []
    old = threading.Thread(
        target=lambda: old_answer.append(
            manager.output('page-a', 0, timeout=DEADLINE)),
        daemon=True)
    old.start()
    assert broker.waiting.wait(DEADLINE), 'the first request never waited'
    manager.output('page-a', 0, timeout=0)     # supersedes it; idle
    manager.publish(Custom('n', 'news'), GROUP)  # wakes the old one
    old.join(DEADLINE)
    assert not old.is_alive(), 'the superseded request did not end'
    return old_answer[0], manager.output('page-a', 1, timeout=0)


def test_superseded_waiting_request_answers_idle():
    old_answer, _next = supersede()
    assert json.loads(old_answer)['events'] == [{'event': 'idle'}]


def test_event_seen_by_superseded_request_comes_with_the_next_answer():
    _old, next_answer = supersede()
    events = json.loads(next_answer)['events']
    assert [e.get('data') for e in events] == ['news']
