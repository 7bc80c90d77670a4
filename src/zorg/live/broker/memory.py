"""The in-memory broker: group logs in this process (the default).

Positions are integers from one counter per broker, started from the clock
in microseconds, so a restarted process never reuses an id that a page may
still hold: a page that comes back with an id older than a log's base is
told that it was not recovered instead of being silently resumed.

Each group log keeps at most `historySize` entries; the position of the
newest dropped entry is its *base*. A reader at position p is complete
when p >= base.

Memory is bounded. The logs of groups that pages read (*watched*: from
their first latest/read/bounds/waitFor until dropGroup) are kept; the logs
of groups without pages (published to by model-driven updates for objects
nobody views, or left by their last page) are *idle*, and at most
`maxIdleGroups` of them are kept, the least recently used dropped first.
Dropping a log raises the broker's *watermark* to the log's newest
position, and a log created later starts with the watermark as its base:
a reader from before it may have missed events of the dropped log, so it
is told it was not recovered, while a reader after it missed nothing.

A transaction's events are *pending* from its vote to its finish
(zorg.live.broker.pending): appended in the vote, in commit order, but
read only up to a log's first pending entry until `finished` confirms
them (or drops them, when it aborted after its vote). There is no
*unknown* here: the process that voted is the one that finishes.

Presence (IPresence) is kept in this process too (LocalPresence).
"""

import bisect
import threading
import time
from collections import OrderedDict

from zope.interface import implementer

from zorg.live.broker.inputs import LocalInputs
from zorg.live.broker.presence import LocalPresence
from zorg.live.interfaces import IBroker, IInputRecords, IPresence


class GroupLog:
    """The entries of one group, oldest first."""

    __slots__ = ('base', 'positions', 'entries', 'pending')

    def __init__(self, base):
        self.base = base
        self.positions = []
        self.entries = []
        self.pending = []   # positions of pending entries, in order

    def latest(self):
        return self.positions[-1] if self.positions else self.base

    def shown(self):
        """The newest position a reader may be shown (before the first
        pending entry)."""
        return self.pending[0] - 1 if self.pending else self.latest()


@implementer(IBroker, IPresence, IInputRecords)
class MemoryBroker(LocalPresence, LocalInputs):
    """Group logs in a dict, guarded by one condition variable."""

    blocking = False    # every call is answered from memory

    def __init__(self, historySize=1000, maxIdleGroups=1000):
        if historySize < 1:
            raise ValueError('historySize must be at least 1')
        if maxIdleGroups < 0:
            raise ValueError('maxIdleGroups must not be negative')
        LocalPresence.__init__(self)
        LocalInputs.__init__(self)
        self._inFlight = {}    # token -> first position (voted, unfinished)
        # token -> [(group id, log, position)] of its events
        self._pendingLogs = {}
        self.historySize = historySize
        self.maxIdleGroups = maxIdleGroups
        self._cond = threading.Condition(threading.Lock())
        self._logs = {}             # watched group id -> GroupLog
        self._idle = OrderedDict()  # idle group id -> GroupLog, LRU first
        self._counter = time.time_ns() // 1000
        # Positions up to the watermark may belong to dropped logs.
        self._watermark = self._counter
        self._listeners = ()

    def _log(self, group_id):
        """The log of a watched group (under the condition's lock)."""
        log = self._logs.get(group_id)
        if log is None:
            log = self._idle.pop(group_id, None)
            if log is None:
                log = GroupLog(self._watermark)
            self._logs[group_id] = log
        return log

    def _publishLog(self, group_id):
        log = self._logs.get(group_id)
        if log is not None:
            return log
        log = self._idle.pop(group_id, None)
        if log is None:
            log = GroupLog(self._watermark)
        self._idle[group_id] = log      # most recently used
        self._trimIdle()
        return log

    def _trimIdle(self):
        while len(self._idle) > self.maxIdleGroups:
            _group, log = self._idle.popitem(last=False)
            if log.latest() > self._watermark:
                self._watermark = log.latest()

    def publish(self, group_id, encode, audience=None):
        return self.publishMany([(group_id, encode, audience)])[0]

    def publishMany(self, items, inputs=(), inFlight=None):
        # Encoded before anything is appended: an encode() that fails
        # publishes nothing of the batch; so does a fenced input.
        with self._cond:
            if inputs:
                self.fence(inputs)
            start = self._counter
            texts = [encode(str(start + n + 1))
                     for n, (_g, encode, _a) in enumerate(items)]
            positions, pending = [], []
            for (group_id, _encode, audience), text in zip(items, texts):
                self._counter += 1
                position = self._counter
                log = self._publishLog(group_id)
                log.positions.append(position)
                log.entries.append((position, text, audience))
                if inFlight is not None:
                    log.pending.append(position)
                    pending.append((group_id, log, position))
                excess = len(log.positions) - self.historySize
                # Trim in batches so that the cost per publish stays
                # constant.
                if excess >= max(1, self.historySize // 4):
                    log.base = log.positions[excess - 1]
                    del log.positions[:excess]
                    del log.entries[:excess]
                    log.pending = [p for p in log.pending if p > log.base]
                positions.append(position)
            if inputs:
                self.record(inputs, inFlight)
            if inFlight is not None:
                self._inFlight[inFlight] = (positions[0] if positions
                                            else self._counter + 1)
                self._pendingLogs[inFlight] = pending
            self._cond.notify_all()
        groups = tuple(dict.fromkeys(group for group, _e, _a in items))
        for listener in self._listeners if groups else ():
            listener(groups)
        return positions

    def read(self, group_id, after, limit=1000):
        with self._cond:
            log = self._log(group_id)
            recovered = after >= log.base
            start = bisect.bisect_right(log.positions, after)
            end = (bisect.bisect_right(log.positions, log.pending[0] - 1)
                   if log.pending else len(log.positions))
            entries = log.entries[start:min(end, start + limit)]
        # Entries beyond historySize are still readable until the batch
        # trim; a reader behind `base` has lost some, whatever it reads.
        return entries, recovered

    def readLocal(self, group_id, after, limit=1000):
        return self.read(group_id, after, limit)

    def latest(self, group_id):
        with self._cond:
            return self._log(group_id).latest()

    def latestLocal(self, group_id):
        return self.latest(group_id)

    def bounds(self, group_id):
        # A log may have been dropped and created again, and its base
        # cannot tell a creation from a trim: never `fresh`.
        with self._cond:
            log = self._log(group_id)
            return log.base, log.latest(), False

    def mark(self):
        # Every later publish, to any group, gets a larger position, and
        # so do the events of transactions in flight.
        with self._cond:
            if self._inFlight:
                return min(self._counter, min(self._inFlight.values()) - 1)
            return self._counter

    def finished(self, token, committed=True):
        # Nothing here is lost between a vote and its finish.
        woken = {}
        with self._cond:
            self._inFlight.pop(token, None)
            for group_id, log, position in self._pendingLogs.pop(token, ()):
                if position in log.pending:
                    log.pending.remove(position)
                if not committed:
                    at = bisect.bisect_left(log.positions, position)
                    if at < len(log.positions) and \
                            log.positions[at] == position:
                        del log.positions[at]
                        del log.entries[at]
                # Who reads the log is woken (listeners by group id):
                # a group still watched, with this log.
                if self._logs.get(group_id) is log:
                    woken[group_id] = True
            ids = tuple(woken)
            self._cond.notify_all()
        self.resolveInputs(token, committed)
        for listener in self._listeners if committed and ids else ():
            listener(ids)
        return True

    def parsePosition(self, text):
        text = str(text).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 30:
            raise ValueError('event id must be a decimal number, got %r'
                             % text[:40])
        return int(text)

    def formatPosition(self, position):
        return str(position)

    def addListener(self, callback):
        with self._cond:
            self._listeners = self._listeners + (callback,)

    def removeListener(self, callback):
        with self._cond:
            self._listeners = tuple(
                cb for cb in self._listeners if cb != callback)

    def waitFor(self, group_id, after, timeout):
        with self._cond:
            log = self._log(group_id)
            return self._cond.wait_for(lambda: log.shown() > after, timeout)

    def dropGroup(self, group_id):
        with self._cond:
            log = self._logs.pop(group_id, None)
            if log is not None:
                self._idle[group_id] = log
                self._trimIdle()

    def groupCount(self):
        """Logs kept: watched and idle."""
        with self._cond:
            return len(self._logs) + len(self._idle)

    def health(self):
        # Nothing to lose contact with: delivery works while the process
        # runs.
        return {'kind': 'memory', 'connected': True, 'error': None}
