"""Events of a transaction in flight: appended in its vote, shown after
its finish.

A transaction publishes in its vote (zorg.live.page.transactional), while
the storage holds its commit lock, so that the order of events in a log is
the order of the commits. But a vote is not a commit: the process may die
before the storage finishes (then the storage aborts the transaction), or
the transaction may abort after its vote. So the vote appends its events
*pending*, tagged with the transaction's token, and one later step
resolves the token, once, in the broker:

* CONFIRMED: the transaction finished (the storage's finish returned):
  its events are shown, where they stand in the log.
* CANCELLED: it aborted after its vote: its events are never shown.
* UNKNOWN: it did not finish in time (its in-flight entry expired: the
  process died, or could not reach the broker to confirm). Whether the
  data are stored is not known here, so the pages of its groups are told
  to reload (``recovered: false``), at the place of its first event: the
  page shows what the database has, whichever way it went.

The Redis broker writes the resolution into each log as a marker entry
after the pending ones (RESOLVE and the MARK sweep in redis.py), so every
process's reader learns it from the log itself, in order. A reader shows a
log's entries up to its first unresolved pending entry and holds the rest:
an entry after it (another transaction's, already confirmed) waits too,
because a page's position only moves forward.

`Holder` is that rule for one reader of one log, without I/O.
"""

CONFIRMED, CANCELLED, UNKNOWN = 'c', 'x', 'u'
OUTCOMES = (CONFIRMED, CANCELLED, UNKNOWN)


class Holder:
    """Turns a log's raw entries, in order, into the entries a page may be
    shown.

    `feed` takes ``(position, entry, token, outcome)`` per raw entry:

    - an event: `entry` is ``(position, json_text, audience)``, `token`
      its transaction's when it is pending (None when it was published
      outside a transaction, or before pending existed);
    - a marker: `entry` is None, `outcome` one of OUTCOMES for `token`.

    It returns the entries to show now. `reload(position)` makes the entry
    that tells pages to reload (UNKNOWN).

    >>> h = Holder(lambda position: (position, 'reload', None))
    >>> h.feed([(1, (1, 'a', None), None, None),
    ...         (2, (2, 'b', None), 'T', None),
    ...         (3, (3, 'c', None), None, None)])
    [(1, 'a', None)]
    >>> h.holding
    True
    >>> h.feed([(4, None, 'T', CONFIRMED)])
    [(2, 'b', None), (3, 'c', None)]
    >>> h.feed([(5, (5, 'd', None), 'U', None), (6, None, 'U', UNKNOWN),
    ...         (7, (7, 'e', None), 'V', None), (8, None, 'V', CANCELLED)])
    [(5, 'reload', None)]
    """

    __slots__ = ('reload', 'held', 'outcomes')

    def __init__(self, reload):
        self.reload = reload
        self.held = []        # raw items after the first unresolved one
        self.outcomes = {}    # token -> outcome, for tokens in `held`

    @property
    def holding(self):
        return bool(self.held)

    def feed(self, items):
        shown = []
        for item in items:
            _position, entry, token, outcome = item
            if entry is None:
                # A marker: it matters only to entries held here (the
                # pending entries of a token come before its marker).
                if self.held and any(t == token for _p, e, t, _o
                                     in self.held if e is not None):
                    self.outcomes[token] = outcome
                    self._release(shown)
                continue
            if self.held or token is not None:
                self.held.append(item)
                self._release(shown)
            else:
                shown.append(entry)
        return shown

    def _release(self, shown):
        while self.held:
            position, entry, token, _o = self.held[0]
            if token is not None:
                outcome = self.outcomes.get(token)
                if outcome is None:
                    return
                if outcome == UNKNOWN:
                    # One reload for the transaction, at its first event;
                    # its other events go with it.
                    shown.append(self.reload(position))
                    self.outcomes[token] = CANCELLED
                elif outcome == CONFIRMED:
                    shown.append(entry)
            else:
                shown.append(entry)
            self.held.pop(0)
        # Nothing held: no token can matter any more.
        self.outcomes.clear()
