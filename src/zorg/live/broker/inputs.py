"""Input claims and records in one process (IInputRecords of the memory
broker); the rules are zorg.live.page.inputonce's.

A claim is ``(token, deadline)`` per (page id, input id); a record is the
answer of an input whose transaction committed, kept per page in order,
the oldest dropped beyond `keep`. The memory broker writes records in
`publishMany` under its own lock, after `fence` said the claim is still
the writer's: so a record and its transaction's events are appended
together or not at all.
"""

import collections
import threading
import time

from zorg.live.interfaces import InputRunning


class LocalInputs:
    """Claims and recorded answers of one process."""

    def __init__(self):
        self._pages = {}      # page id -> OrderedDict(input id -> answer)
        self._claims = {}     # (page id, input id) -> (token, deadline)
        # token of a transaction in flight -> the keys it recorded: a
        # claim of those waits until it is resolved (broker.pending).
        self._pendingInputs = {}
        self._inputsLock = threading.Lock()

    def _heldByAnother(self, key, token, now):
        """Whether another run's claim on `key` is still good (under the
        lock)."""
        held = self._claims.get(key)
        return held is not None and held[0] != token and held[1] > now

    def claimInput(self, uuid, inputId, token, ttl):
        now = time.monotonic()
        with self._inputsLock:
            answer = self._pages.get(uuid, {}).get(inputId)
            if answer is not None:
                if any((uuid, inputId) in keys
                       for keys in self._pendingInputs.values()):
                    return None, False
                return answer, False
            if self._heldByAnother((uuid, inputId), token, now):
                return None, False
            self._claims[(uuid, inputId)] = (token, now + ttl)
            return None, True

    def releaseInput(self, uuid, inputId, token):
        with self._inputsLock:
            held = self._claims.get((uuid, inputId))
            if held is not None and held[0] == token:
                del self._claims[(uuid, inputId)]

    def fence(self, inputs):
        """Raise InputRunning unless every input of a vote may be recorded:
        not recorded yet, and its claim (if any) is the voter's."""
        now = time.monotonic()
        with self._inputsLock:
            for uuid, inputId, token, _answer, _keep, _ttl in inputs:
                if (inputId in self._pages.get(uuid, ()) or
                        self._heldByAnother((uuid, inputId), token, now)):
                    raise InputRunning(
                        'input %s was run by another request meanwhile; '
                        'send it again to get its answer' % inputId)

    def record(self, inputs, inFlight=None):
        with self._inputsLock:
            if inFlight is not None:
                self._pendingInputs[inFlight] = {
                    (uuid, inputId) for uuid, inputId, *_r in inputs}
            for uuid, inputId, _token, answer, keep, _ttl in inputs:
                self._claims.pop((uuid, inputId), None)
                page = self._pages.setdefault(uuid,
                                              collections.OrderedDict())
                page.setdefault(inputId, answer)   # the first answer stays
                while len(page) > keep:
                    page.popitem(last=False)

    def resolveInputs(self, inFlight, committed):
        """The transaction that recorded with `inFlight` finished
        (`committed`) or aborted after its vote: its records stay, or go."""
        with self._inputsLock:
            keys = self._pendingInputs.pop(inFlight, ())
            if not committed:
                for uuid, inputId in keys:
                    self._pages.get(uuid, {}).pop(inputId, None)

    def forgetInputs(self, uuid):
        with self._inputsLock:
            self._pages.pop(uuid, None)
            for key in [k for k in self._claims if k[0] == uuid]:
                del self._claims[key]
