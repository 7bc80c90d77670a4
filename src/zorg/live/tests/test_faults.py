"""The fault-schedule checker (issue 19, item 5): its checker on made-up
histories (each kind of violation is found, a clean history passes), and
a short run of real schedules (`make soak` runs them for longer)."""

import doctest
import importlib
import os

import pytest

from zorg.live.tests.faults.checker import check
from zorg.live.tests.faults.history import History
from zorg.live.tests.faults.schedule import Plan

STORED = ['c0-1', 'c1-1', 'c0-2', 'barrier']


def ids(n):
    return '17000000000%02d-0' % n


def append(n, key):
    return {'id': ids(n), 'event': 'append', 'target': 'log',
            'html': '<p>%s</p>' % key, 'key': key}


def posts(history, answers):
    """One input op per (id, status) pair (status None: it timed out)."""
    for inputId, status in answers:
        op = history.begin('input', 0, 'c0', 'c0.p1', id=inputId, slow=0)
        if status is None:
            op.finish(error='timeout')
        else:
            op.finish(status=status)


def page(history, name, shown, last, reads, end='final'):
    """A page rendered with `shown` and cursor `last` that received
    `reads` (lists of events), then ended."""
    history.begin('render', 0, name.split('.')[0], name).finish(
        status=200, uuid='u-' + name, lastEventId=last, shown=shown)
    for events in reads:
        history.begin('read', 1, name.split('.')[0], name,
                      transport='longpoll').finish(status=200,
                                                   events=events)
    history.add('end', None, name.split('.')[0], name, reason=end)


def clean():
    history = History()
    posts(history, [(t, 200) for t in STORED])
    # Rendered before anything: everything on its stream, in two reads.
    page(history, 'c0.p1', [], ids(0),
         [[append(1, 'c0-1'), append(2, 'c1-1')],
          [append(3, 'c0-2'), append(4, 'barrier')]])
    # Rendered after c0-1 was committed and whose mark came before its
    # publish: c0-1 is in its HTML and on its stream (dropped by key).
    page(history, 'c1.p1', ['c0-1'], ids(0),
         [[append(1, 'c0-1'), append(2, 'c1-1')],
          [append(2, 'c1-1'), append(3, 'c0-2')],   # a re-read: old ids
          [append(4, 'barrier')]])
    return history


def invariants(violations):
    return sorted(v.invariant for v in violations)


def test_a_clean_history_passes():
    assert check(clean(), STORED) == []


def test_a_page_that_misses_a_message_committed_before_one_it_shows():
    history = clean()
    page(history, 'c2.p1', [], ids(0),
         [[append(1, 'c0-1'), append(3, 'c0-2')]], end='closed')
    violations = check(history, STORED)
    assert invariants(violations) == ['a']
    assert "never shows ['c1-1']" in violations[0].message
    # The excerpt names the missing message's posts.
    assert violations[0].ops[0].result['id'] == 'c1-1'


def test_the_render_subscribe_race_is_a_loss():
    """c1-1 committed after the page's snapshot (not in its HTML) but
    published before its mark (not on its stream)."""
    history = clean()
    page(history, 'c2.p1', ['c0-1'], ids(2),
         [[append(3, 'c0-2'), append(4, 'barrier')]])
    assert invariants(check(history, STORED)) == ['a']


def test_a_page_open_until_the_end_must_show_everything_to_the_barrier():
    history = clean()
    page(history, 'c2.p1', [], ids(0), [[append(1, 'c0-1')]])
    violations = check(history, STORED)
    assert invariants(violations) == ['a']
    assert 'open until the barrier' in violations[0].message


def test_a_page_that_closed_early_need_not_show_what_came_later():
    history = clean()
    page(history, 'c2.p1', [], ids(0), [[append(1, 'c0-1')]], end='closed')
    assert check(history, STORED) == []


def test_a_page_told_to_reload_is_excused_from_gaps_not_from_phantoms():
    history = clean()
    page(history, 'c2.p1', [], ids(0),
         [[append(1, 'c0-1'), {'id': ids(5), 'event': 'reload',
                               'recovered': False}]], end='reload')
    assert check(history, STORED) == []
    page(history, 'c3.p1', [], ids(0),
         [[append(1, 'c0-1'), append(2, 'ghost')]], end='reload')
    assert invariants(check(history, STORED)) == ['b']


def test_a_registration_not_recovered_excuses_gaps():
    history = clean()
    page(history, 'c2.p1', [], ids(0), [[append(1, 'c0-1')]], end='closed')
    history.begin('register', 0, 'c2', 'c2.p1').finish(
        status=200, uuid='u2', recovered=False)
    assert check(history, STORED) == []


def test_a_registration_that_failed_for_now_excuses_nothing():
    history = clean()
    history.begin('render', 0, 'c2', 'c2.p1').finish(
        status=200, uuid='u', lastEventId=ids(0), shown=[])
    history.begin('register', 0, 'c2', 'c2.p1').finish(status=503)
    history.begin('register', 0, 'c2', 'c2.p1').finish(error='timeout')
    history.begin('read', 1, 'c2', 'c2.p1').finish(
        status=200, events=[append(1, 'c0-1'), append(3, 'c0-2')])
    history.add('end', None, 'c2', 'c2.p1', reason='closed')
    assert invariants(check(history, STORED)) == ['a']


def test_a_message_shown_but_never_committed():
    history = clean()
    page(history, 'c2.p1', [], ids(0),
         [[append(1, 'c0-1'), append(2, 'c1-1'), append(3, 'c0-2'),
           append(4, 'barrier'), append(5, 'aborted')]])
    violations = check(history, STORED)
    assert invariants(violations) == ['b']
    assert "['aborted']" in violations[0].message


def test_a_message_in_the_html_but_not_stored_is_a_phantom_too():
    history = clean()
    page(history, 'c2.p1', ['c0-1', 'ghost'], ids(1),
         [[append(2, 'c1-1')]], end='closed')
    assert invariants(check(history, STORED)) == ['b']


def test_an_input_stored_twice():
    history = clean()
    assert invariants(check(history, STORED + ['c1-1'])) == ['c']


def test_an_input_acked_and_not_stored():
    history = clean()
    posts(history, [('c3-1', None), ('c3-1', 200)])
    violations = check(history, STORED)
    assert invariants(violations) == ['c']
    assert 'answered 200 and is not stored' in violations[0].message


def test_an_input_refused_every_time_and_stored_anyway():
    history = clean()
    posts(history, [('c3-1', 503), ('c3-1', 503)])
    stored = STORED + ['c3-1']     # committed after the barrier
    violations = check(history, stored)
    assert invariants(violations) == ['c']
    assert 'every attempt was refused' in violations[0].message


def test_an_input_whose_answer_was_lost_may_be_stored_or_not():
    history = clean()
    posts(history, [('c3-1', None), ('c3-1', 503)])
    assert check(history, STORED) == []
    assert check(history, STORED + ['c3-1']) == []


def test_a_page_shows_two_messages_in_the_other_order():
    history = clean()
    page(history, 'c2.p1', [], ids(0),
         [[append(1, 'c0-1'), append(2, 'c0-2'), append(3, 'c1-1'),
           append(4, 'barrier')]])
    violations = check(history, STORED)
    assert invariants(violations) == ['d']
    assert 'c1-1 after c0-2' in violations[0].message


def test_an_event_published_for_a_transaction_that_then_died():
    """What seed 1 found: a process killed between the vote (the event is
    published) and the finish; the input sent again commits later."""
    history = clean()
    page(history, 'c2.p1', [], ids(0),
         [[append(1, 'c0-1'), append(2, 'c0-2'), append(3, 'c1-1'),
           append(4, 'c0-2'), append(5, 'barrier')]])
    assert invariants(check(history, STORED)) == ['d']


@pytest.mark.parametrize('name', ['model', 'history', 'schedule'])
def test_doctests(name):
    module = importlib.import_module('zorg.live.tests.faults.' + name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


# -- the short run ----------------------------------------------------------

# Two seeds; override with ZORG_FAULT_SEEDS=3,4 (and ZORG_FAULT_LENGTH=30,
# ZORG_FAULT_KINDS=...). Every kind of fault: a live process killed (also
# between a transaction's vote and its finish), Redis killed or hung, a
# slow broker, slow commits, dropped connections.
SEEDS = [int(s) for s in os.environ.get('ZORG_FAULT_SEEDS',
                                        '12,25').split(',')]
LENGTH = float(os.environ.get('ZORG_FAULT_LENGTH', '12'))
KINDS = os.environ.get('ZORG_FAULT_KINDS', '').split(',') if \
    os.environ.get('ZORG_FAULT_KINDS') else None


@pytest.mark.redis
@pytest.mark.faults
@pytest.mark.parametrize('seed', SEEDS)
def test_a_fault_schedule_keeps_every_promise(seed, tmp_path):
    from zorg.live.tests.faults.soak import keep, runSchedule
    plan = Plan(seed, LENGTH, 2 + seed % 2, 4, kinds=KINDS)
    outcome = runSchedule(plan, tmp_path / 'run')
    print(outcome.summary())
    if outcome.violations:
        keep(outcome, str(tmp_path / 'failed'))
        print('history: %s' % (tmp_path / 'failed' / 'history.json'))
    inputs = [op for op in outcome.run.history.ops if op.kind == 'input']
    # A run that posted nothing or faulted nothing proves nothing.
    assert len({op.result['id'] for op in inputs}) > 20, outcome.summary()
    assert outcome.run.faultCounts, outcome.summary()
    assert not outcome.violations, outcome.report()
