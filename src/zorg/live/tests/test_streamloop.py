"""holdStream, the one stream loop (core/delivery.py), without I/O: each
step a driver is asked for, and what it does with each wake reason."""

import pytest

from zorg.live.core import delivery as rules
from zorg.live.core.delivery import (
    DISCONNECT, DRAIN, FAILED, HEARTBEAT, PARK, PUBLISH, READ, RECONNECT,
    SEND, STOP, SUPERSEDED, TIMEOUT, holdStream, pushable)


def finish(loop, value):
    with pytest.raises(StopIteration) as stop:
        loop.send(value)
    return stop.value.value


def test_first_step_reads_from_the_cursor():
    assert next(holdStream(7)) == (READ, 7)


def test_news_is_sent_and_the_loop_reads_on_from_its_end():
    loop = holdStream(7)
    next(loop)
    entries = [(8, '{"a":1}'), (9, '{"a":2}')]
    assert loop.send((entries, 9)) == (SEND, entries, 9)
    assert loop.send(None) == (READ, 9)


def test_nothing_to_send_parks_at_the_end_of_the_read():
    loop = holdStream(7)
    next(loop)
    # The read may reach past the cursor with nothing for this page (its
    # audience left it out): the page parks there, not at 7.
    assert loop.send(([], 12)) == (PARK, 12)


def test_a_publish_reads_again_from_where_fanout_left_the_stream():
    loop = holdStream(7)
    next(loop)
    loop.send(([], 7))
    assert loop.send((PUBLISH, 15)) == (READ, 15)


def test_a_timeout_is_a_heartbeat_then_a_read():
    loop = holdStream(7)
    next(loop)
    loop.send(([], 7))
    assert loop.send((TIMEOUT, 7)) == (HEARTBEAT, 7)
    assert loop.send(None) == (READ, 7)


@pytest.mark.parametrize('reason, outcome', [
    (SUPERSEDED, RECONNECT), (DRAIN, RECONNECT), (DISCONNECT, STOP)])
def test_ending_wakes_end_the_loop_as_stream_wake_says(reason, outcome):
    assert rules.STREAM_WAKE[reason] == outcome
    loop = holdStream(7)
    next(loop)
    loop.send(([], 9))
    assert finish(loop, (reason, 9)) == (outcome, 9)


def test_a_failed_read_ends_the_loop_as_failed():
    loop = holdStream(7)
    next(loop)
    assert finish(loop, None) == (FAILED, 7)


def test_every_wake_reason_has_a_stream_action():
    assert set(rules.STREAM_WAKE) == set(rules.LONGPOLL_WAKE)
    assert set(rules.STREAM_WAKE.values()) <= {READ, HEARTBEAT, RECONNECT,
                                                STOP}


def test_pushable_sends_what_memory_has():
    assert pushable(([(1, 'a')], True), 500) == [(1, 'a')]
    assert pushable(([], True), 500) == []


@pytest.mark.parametrize('read', [
    None,                           # not in memory: the broker is asked
    ([(1, 'a')], False),            # history lost: the page must reload
    ([(i, 'a') for i in range(500)], True),   # more than one read's worth
])
def test_pushable_leaves_the_rest_to_the_streams_own_loop(read):
    assert pushable(read, 500) is None


@pytest.mark.parametrize('reason', [PUBLISH, TIMEOUT, SUPERSEDED, DRAIN,
                                    DISCONNECT])
def test_a_loop_started_on_a_wake_goes_on_as_the_parked_one(reason):
    """A driver may drop a parked loop and start holdStream(cursor,
    reason) when it wakes: the same steps follow."""
    parked = holdStream(7)
    next(parked)
    parked.send(([], 9))

    def steps(loop, first):
        """The steps until the loop parks again or ends."""
        found = []
        try:
            step = first(loop)
            while True:
                found.append(step)
                if step[0] == PARK:
                    return found
                step = loop.send(None if step[0] != READ else ([], 11))
        except StopIteration as stop:
            found.append(('returned', stop.value))
        return found
    assert steps(parked, lambda loop: loop.send((reason, 10))) == steps(
        holdStream(10, reason), next)


def test_a_heartbeat_is_due_after_the_interval_of_silence():
    from zorg.live.core.delivery import heartbeatDue
    assert not heartbeatDue(100.0, 114.9, 15)
    assert heartbeatDue(100.0, 115.0, 15)
