"""The delivery rules (zorg.live.core.delivery) tested directly, and the
manager's parsing of the numbers that reach them from the wire.

Every bad input must raise BadRequest and leave the delivery state exactly
as it was: each such test compares a snapshot before and after.
"""

import json

import pytest

from zorg.live.broker.memory import MemoryBroker
from zorg.live.interfaces import BadRequest
from zorg.live.page.client import LivePageClient
from zorg.live.core.delivery import Delivery, answer
from zorg.live.page.manager import LivePageManager, parseOutputNum

CURSOR = 100


def snapshot(delivery):
    pending = delivery.pending
    return (delivery.acked, delivery.nextNum,
            None if pending is None else
            (pending.num, pending.body, pending.end))


def answered(delivery, num, texts=(), end=None, last=None, newest=None):
    """Run fresh request `num` to its end, as a server does."""
    body, generation = delivery.begin(num, last, newest)
    assert body is None, 'request %r was not fresh' % num
    return delivery.finish(num, generation, list(texts),
                           delivery.acked if end is None else end)


@pytest.fixture
def delivery():
    return Delivery(CURSOR)


@pytest.fixture
def pending_delivery():
    """Answer 0 (one event, up to 105) is pending; nextNum is 1."""
    d = Delivery(CURSOR)
    answered(d, 0, ['{"id":"105","event":"reload"}'], end=105)
    return d


# -- the window --------------------------------------------------------------

def test_new_delivery_starts_at_cursor_with_nothing_pending(delivery):
    assert snapshot(delivery) == (CURSOR, 0, None)


def test_first_request_zero_is_fresh(delivery):
    body, _generation = delivery.begin(0)
    assert body is None


def test_finish_records_pending_and_advances_next_num(delivery):
    body = answered(delivery, 0, ['{"event":"reload"}'], end=105)
    assert snapshot(delivery) == (CURSOR, 1, (0, body, 105))


def test_finish_body_is_outputnum_and_events():
    d = Delivery(CURSOR)
    body = answered(d, 0, ['{"id":"1","event":"reload"}'], end=1)
    assert json.loads(body) == {
        'outputNum': 0, 'events': [{'id': '1', 'event': 'reload'}]}


def test_empty_answer_is_idle():
    assert answer(3, ()) == '{"outputNum":3,"events":[{"event":"idle"}]}'


def test_repeated_request_gets_pending_body_byte_for_byte(pending_delivery):
    original = pending_delivery.pending.body
    body, _generation = pending_delivery.begin(0)
    assert body == original


def test_repeated_request_changes_no_state(pending_delivery):
    before = snapshot(pending_delivery)
    pending_delivery.begin(0)
    pending_delivery.begin(0)
    assert snapshot(pending_delivery) == before


def test_next_request_acknowledges_pending_end(pending_delivery):
    pending_delivery.begin(1)
    assert pending_delivery.acked == 105


def test_next_request_frees_pending(pending_delivery):
    pending_delivery.begin(1)
    assert pending_delivery.pending is None


def test_acknowledged_answer_cannot_be_repeated(pending_delivery):
    answered(pending_delivery, 1, end=105)
    with pytest.raises(BadRequest):
        pending_delivery.begin(0)


@pytest.mark.parametrize('num', [1, 2, 7])
def test_out_of_window_without_pending_is_refused(delivery, num):
    with pytest.raises(BadRequest, match='out of the window'):
        delivery.begin(num)


@pytest.mark.parametrize('num', [1, 2, 7])
def test_out_of_window_without_pending_changes_nothing(delivery, num):
    before = snapshot(delivery)
    with pytest.raises(BadRequest):
        delivery.begin(num)
    assert snapshot(delivery) == before


@pytest.mark.parametrize('num', [0, 1, 4, 100])
def test_out_of_window_with_pending_changes_nothing(num):
    d = Delivery(CURSOR)
    answered(d, 0, end=101)
    answered(d, 1, end=102)
    answered(d, 2, end=103)          # pending 2: only 2 and 3 are valid
    before = snapshot(d)
    with pytest.raises(BadRequest, match='expects 2 or 3'):
        d.begin(num)
    assert snapshot(d) == before


# -- bad numbers -------------------------------------------------------------

@pytest.mark.parametrize('num', [-1, True, False, 1.0, '0', None])
def test_begin_refuses_non_whole_numbers(delivery, num):
    with pytest.raises(BadRequest, match='whole number'):
        delivery.begin(num)


@pytest.mark.parametrize('num', [-1, True, False, 0.0, '0', None])
def test_begin_with_bad_number_changes_nothing(pending_delivery, num):
    before = snapshot(pending_delivery)
    with pytest.raises(BadRequest):
        pending_delivery.begin(num)
    assert snapshot(pending_delivery) == before


@pytest.mark.parametrize('text, expected', [
    ('0', 0), ('17', 17), (' 3 ', 3), (5, 5), ('007', 7)])
def test_parse_output_num_accepts_whole_numbers(text, expected):
    assert parseOutputNum(text) == expected


@pytest.mark.parametrize('text', [
    '-1', '', ' ', 'abc', '1.5', '1e3', '0x10', '+1', 'True', True, False,
    '\u00b2', '\u0661', '9' * 19, None, 1.0])
def test_parse_output_num_refuses_anything_else(text):
    with pytest.raises(BadRequest, match='whole number'):
        parseOutputNum(text)


# -- last event id -----------------------------------------------------------

def test_last_event_id_acknowledges_up_to_it(delivery):
    delivery.begin(0, last_event_id=150, newest=200)
    assert delivery.acked == 150


def test_last_event_id_never_moves_cursor_backwards(delivery):
    delivery.begin(0, last_event_id=50, newest=200)
    assert delivery.acked == CURSOR


def test_last_event_id_is_the_acknowledgement_of_the_pending_answer(
        pending_delivery):
    # Rule 2: the page may have applied another process's answer to
    # request 0, which ended at 102; acknowledging 105 could skip 103-105.
    pending_delivery.begin(1, last_event_id=102, newest=200)
    assert pending_delivery.acked == 102
    assert pending_delivery.pending is None


def test_pending_ack_without_last_event_id_moves_to_its_end(
        pending_delivery):
    pending_delivery.begin(1)
    assert pending_delivery.acked == 105


# -- rule 8: another process served the page meanwhile ----------------------

@pytest.mark.parametrize('num', [1, 2, 7])
def test_out_of_window_with_last_event_id_is_fresh(delivery, num):
    body, generation = delivery.begin(num, last_event_id=150, newest=200)
    assert body is None
    assert (delivery.acked, delivery.nextNum) == (150, num)
    assert delivery.finish(num, generation, ['{"id":"151"}'], 151) == \
        '{"outputNum":%d,"events":[{"id":"151"}]}' % num
    # The window is now num: its repeat and its successor work as usual.
    assert delivery.begin(num)[0] == \
        '{"outputNum":%d,"events":[{"id":"151"}]}' % num
    assert delivery.begin(num + 1)[0] is None
    assert delivery.acked == 151


@pytest.mark.parametrize('num', [0, 4, 100])
def test_out_of_window_with_last_event_id_drops_pending_unacknowledged(num):
    d = Delivery(CURSOR)
    answered(d, 0, end=101)
    answered(d, 1, end=110)          # pending 1, up to 110: maybe unseen
    body, _generation = d.begin(num, last_event_id=103, newest=200)
    assert body is None
    assert (d.acked, d.nextNum, d.pending) == (103, num, None)


def test_out_of_window_last_event_id_never_moves_cursor_backwards(delivery):
    delivery.begin(5, last_event_id=50, newest=200)
    assert (delivery.acked, delivery.nextNum) == (CURSOR, 5)


def test_repeat_wins_over_rule_8(pending_delivery):
    # A repeat of the pending N gets the same bytes, id or no id.
    body, _generation = pending_delivery.begin(0, last_event_id=150,
                                               newest=200)
    assert body == '{"outputNum":0,"events":[{"id":"105","event":"reload"}]}'
    assert pending_delivery.acked == CURSOR


@pytest.mark.parametrize('num', [2, 7])
def test_out_of_window_with_too_new_last_event_id_changes_nothing(
        pending_delivery, num):
    before = snapshot(pending_delivery)
    with pytest.raises(BadRequest, match='newer than any event'):
        pending_delivery.begin(num, last_event_id=201, newest=200)
    assert snapshot(pending_delivery) == before


def test_last_event_id_newer_than_newest_is_refused(delivery):
    with pytest.raises(BadRequest, match='newer than any event'):
        delivery.begin(0, last_event_id=201, newest=200)


def test_last_event_id_newer_than_newest_changes_nothing(pending_delivery):
    before = snapshot(pending_delivery)
    with pytest.raises(BadRequest):
        pending_delivery.begin(1, last_event_id=201, newest=200)
    assert snapshot(pending_delivery) == before


def test_last_event_id_equal_to_newest_is_accepted(delivery):
    delivery.begin(0, last_event_id=200, newest=200)
    assert delivery.acked == 200


# -- superseded requests -----------------------------------------------------

def test_superseded_request_answers_idle(delivery):
    _body, old = delivery.begin(0)
    delivery.begin(0)
    body = delivery.finish(0, old, ['{"event":"reload"}'], 105)
    assert body == answer(0, ())


def test_superseded_request_records_nothing(delivery):
    _body, old = delivery.begin(0)
    delivery.begin(0)
    delivery.finish(0, old, ['{"event":"reload"}'], 105)
    assert (delivery.pending, delivery.nextNum) == (None, 0)


def test_newest_request_records_after_superseding(delivery):
    _body, old = delivery.begin(0)
    _body, new = delivery.begin(0)
    delivery.finish(0, old, [], CURSOR)
    body = delivery.finish(0, new, ['{"event":"reload"}'], 105)
    assert snapshot(delivery) == (CURSOR, 1, (0, body, 105))


# -- SSE resume --------------------------------------------------------------

def test_resume_without_id_starts_at_acked(delivery):
    assert delivery.resume(None, 200) == CURSOR


def test_resume_with_id_acknowledges_it(delivery):
    assert delivery.resume(150, 200) == 150
    assert delivery.acked == 150


def test_resume_with_older_id_keeps_cursor(delivery):
    assert delivery.resume(50, 200) == CURSOR


def test_resume_drops_pending_and_restarts_numbering_at_0(pending_delivery):
    pending_delivery.resume(None, 200)
    assert (pending_delivery.pending, pending_delivery.nextNum) == (None, 0)


def test_resume_with_id_newer_than_newest_changes_nothing(pending_delivery):
    before = snapshot(pending_delivery)
    with pytest.raises(BadRequest, match='newer than any event'):
        pending_delivery.resume(201, 200)
    assert snapshot(pending_delivery) == before


def test_resume_supersedes_a_waiting_request(delivery):
    _body, generation = delivery.begin(0)
    delivery.resume(None, 200)
    body = delivery.finish(0, generation, ['{"event":"reload"}'], 105)
    assert (body, delivery.pending) == (answer(0, ()), None)


# -- through the manager: wire text to state ----------------------------------

@pytest.fixture
def manager():
    return LivePageManager(MemoryBroker())


@pytest.fixture
def client(manager):
    return manager.register(LivePageClient('page-a', 'uwe', 'room'))


def test_manager_answers_outputnum_as_text(manager, client):
    body = manager.output('page-a', '0', timeout=0)
    assert json.loads(body)['outputNum'] == 0


@pytest.mark.parametrize('num', ['-1', 'abc', '1.5', '', True, -1])
def test_manager_bad_outputnum_changes_nothing(manager, client, num):
    manager.output('page-a', 0, timeout=0)
    before = snapshot(client.delivery)
    with pytest.raises(BadRequest):
        manager.output('page-a', num, timeout=0)
    assert snapshot(client.delivery) == before


@pytest.mark.parametrize('text', ['abc', '-5', '1.5', '12abc', '\u0661'])
def test_parse_event_id_refuses_malformed(manager, text):
    with pytest.raises(BadRequest, match='lastEventId'):
        manager.parseEventId(text)


@pytest.mark.parametrize('text', [None, ''])
def test_parse_event_id_takes_missing_as_none(manager, text):
    assert manager.parseEventId(text) is None


@pytest.mark.parametrize('last', ['abc', '-5'])
def test_manager_malformed_last_event_id_changes_nothing(manager, client,
                                                         last):
    manager.output('page-a', 0, timeout=0)
    before = snapshot(client.delivery)
    with pytest.raises(BadRequest, match='lastEventId'):
        manager.output('page-a', 1, lastEventId=last, timeout=0)
    assert snapshot(client.delivery) == before


def test_manager_last_event_id_newer_than_newest_changes_nothing(manager,
                                                                client):
    manager.output('page-a', 0, timeout=0)
    before = snapshot(client.delivery)
    newest = manager.broker.latest('room')
    with pytest.raises(BadRequest, match='newer than any event'):
        manager.output('page-a', 1, lastEventId=str(newest + 1), timeout=0)
    assert snapshot(client.delivery) == before


def test_manager_stream_with_malformed_id_changes_nothing(manager, client):
    manager.output('page-a', 0, timeout=0)
    before = snapshot(client.delivery)
    with pytest.raises(BadRequest):
        manager.beginStream('page-a', lastEventId='x')
    assert snapshot(client.delivery) == before
