"""The promises, checked over a history and the final database.

`stored` is the chat as the database holds it after the run (every
process stopped): message texts in commit order. Messages commit one
after another (each rewrites the one stored tuple; concurrent ones
conflict and retry), and their events are published in the vote, while
the storage's commit lock is held, so the stored order *is* the commit
order and the publish order, with no clock involved. That makes the
checks exact where times could only bound them:

a. Delivered, exactly once. What a page shows (its HTML, then what it
   applied from its stream after the browser's de-duplication, `model`)
   is a prefix of the stored messages: a page that shows a message
   shows every message committed before it, once. A page that was open
   until the end of the run shows every message up to the barrier (the
   last message, committed after every other input ended). A page that
   was told to reload (``reload`` event, registration answered
   ``recovered: false`` or refused) is excused from gaps.
b. Nothing delivered that was not committed: every shown key is stored.
c. Every input id runs at most once (is stored at most once); exactly
   once when its sender saw 200; not at all when every attempt was
   answered with an error (none timed out or was dropped, and none was
   409 ``input-unknown``: its process died between its vote and its
   finish, so it may be stored).
d. Per page, the order is the commit order.

`check(history, stored)` returns the violations (empty: the run kept the
promises).
"""

from zorg.live.tests.faults.model import PageModel

LETTERS = {'a': 'delivered exactly once', 'b': 'nothing uncommitted',
           'c': 'input at most once, once when acked',
           'd': 'commit order per page'}


class Violation:

    def __init__(self, invariant, message, ops=(), texts=()):
        self.invariant = invariant
        self.message = message
        self.ops = list(ops)
        self.texts = list(texts)     # the messages it is about

    def __repr__(self):
        return '%s (%s): %s' % (self.invariant, LETTERS[self.invariant],
                                self.message)

    def describe(self, excerpt=12):
        lines = [repr(self)]
        lines.extend('    %r' % op for op in self.ops[:excerpt])
        if len(self.ops) > excerpt:
            lines.append('    ... %d more ops' % (len(self.ops) - excerpt))
        return '\n'.join(lines)


class PageRun:
    """One page instance, replayed from its ops as the browser would."""

    def __init__(self, name):
        self.name = name
        self.model = None
        self.ops = []
        self.ended = None           # reason of its 'end' op
        self.excused = False        # told to reload

    def replay(self, op):
        self.ops.append(op)
        result = op.result
        if op.kind == 'render' and 'uuid' in result:
            self.model = PageModel(result.get('shown', ()),
                                   result.get('lastEventId'))
        elif op.kind == 'register':
            # Refused (4xx) or not recovered: the page reloads. A 503 or
            # a lost answer: it tries again later.
            status = result.get('status')
            if status == 200 and result.get('recovered') is False or \
                    isinstance(status, int) and 400 <= status < 500:
                self.excused = True
        elif op.kind == 'read' and self.model is not None:
            for event in result.get('events', ()):
                if self.model.apply(event) == 'reload':
                    self.excused = True
        elif op.kind == 'end':
            self.ended = result.get('reason')
            if self.ended == 'reload':
                self.excused = True


def pageRuns(history):
    runs = {}
    for op in history.ops:
        if op.page is None or op.kind not in ('render', 'register', 'read',
                                              'end'):
            continue
        runs.setdefault(op.page, PageRun(op.page)).replay(op)
    return [run for run in runs.values() if run.model is not None]


def firstIndex(stored):
    index = {}
    for i, text in enumerate(stored):
        index.setdefault(text, i)
    return index


def checkInputs(history, stored):
    """Invariant c."""
    violations = []
    attempts = {}
    for op in history.ops:
        if op.kind in ('input', 'barrier') and 'id' in op.result:
            attempts.setdefault(op.result['id'], []).append(op)
    for inputId, ops in sorted(attempts.items()):
        count = stored.count(inputId)
        statuses = [op.result.get('status') for op in ops]
        if count > 1:
            violations.append(Violation(
                'c', 'input %s is stored %d times (%d attempts, answers '
                '%s)' % (inputId, count, len(ops), statuses), ops))
        elif count == 0 and 200 in statuses:
            violations.append(Violation(
                'c', 'input %s was answered 200 and is not stored'
                % inputId, ops))
        elif count and all(isinstance(s, int) and s not in (200, 409)
                           for s in statuses):
            violations.append(Violation(
                'c', 'input %s is stored though every attempt was '
                'refused (answers %s)' % (inputId, statuses), ops))
    return violations


def checkPage(run, stored, index, barrier):
    """Invariants a, b and d for one page."""
    violations = []
    shown = run.model.shown
    phantoms = [key for key in shown if key not in index]
    if phantoms:
        violations.append(Violation(
            'b', 'page %s shows %s, never committed' % (run.name, phantoms),
            run.ops, phantoms))
    positions = [index[key] for key in shown if key in index]
    if positions != sorted(positions):
        wrong = [(stored[a], stored[b]) for a, b in
                 zip(positions, positions[1:]) if a > b]
        violations.append(Violation(
            'd', 'page %s shows %s after %s, committed in the other '
            'order' % (run.name, wrong[0][1], wrong[0][0]), run.ops,
            [wrong[0][1], wrong[0][0]]))
    if run.excused:
        return violations
    unique = list(index)            # stored texts, first commit first
    upTo = max(positions) + 1 if positions else 0
    if run.ended == 'final' and barrier in index:
        upTo = max(upTo, index[barrier] + 1)
    seen = set(shown)
    missing = [text for text in unique if index[text] < upTo and
               text not in seen]
    if missing:
        later = [key for key in shown if key in index and
                 index[key] > index[missing[0]]]
        if later:
            why = 'though it shows %s, committed after' % later[0]
        else:
            why = 'though it was open until the barrier'
        violations.append(Violation(
            'a', 'page %s never shows %s %s' % (run.name, missing, why),
            run.ops, missing))
    return violations


def check(history, stored, barrier='barrier'):
    """The violations of invariants a-d in `history`, given the final
    `stored` messages."""
    stored = list(stored)
    index = firstIndex(stored)
    violations = checkInputs(history, stored)
    attempts = {}
    for op in history.ops:
        if op.kind in ('input', 'barrier'):
            attempts.setdefault(op.result.get('id'), []).append(op)
    for run in pageRuns(history):
        for violation in checkPage(run, stored, index, barrier):
            # The posts of what it is about first, then the page's ops
            # that showed something.
            posts = [op for text in violation.texts[:3]
                     for op in attempts.get(text, ())]
            violation.ops = posts + [
                op for op in violation.ops
                if op.kind != 'read' or op.result.get('events')]
            violations.append(violation)
    return violations
