"""Input exactly once: a repeated input id gets the recorded answer.

A page's input (``LivePage.send(handler, args)``) carries an id the client
made (header ``X-Live-Input-Id`` on the POST path, ``"id"`` of a WebSocket
``input`` message). The client sends an input again, with the same id,
whenever it did not see the answer: after a network failure, a reconnect,
or a change of the tab that holds the browser's connection. The rules:

1. Before a handler runs, its input id is *claimed* in the broker, where
   every process sharing the broker sees it (a key with a deadline,
   `claimTTL`). A second request with the same id that finds the claim
   held -- in another process, or here after `wait` seconds -- answers
   503 ``input-running`` (try again shortly); it never runs the handler.
2. The answer is recorded *in the vote* of the handler's transaction, in
   the same broker call that publishes the transaction's events
   (zorg.live.page.transactional): the record and the events become true
   together, or the vote fails, the transaction aborts, nothing is stored
   and the request answers 503. The vote is fenced: it fails when the id
   was recorded meanwhile or its claim is held by another run (it had
   expired), so the handler's effects are stored at most once.
3. A repeat after that gets the recorded answer; the handler does not run.
   Who may see the answer is checked before (LivePage.checkInput): the
   record is only returned to the page's own principal.
4. An aborted transaction releases its claim, so a repeat runs again, as
   nothing of the first run remains. A process that died holding a claim
   holds it until its deadline.
5. The last `keep` ids of a page are remembered (setting max-input-ids),
   for an hour at most; closing the page forgets them.
6. No lock is held over broker I/O: the lock here guards the map of runs
   in this process only.

The broker keeps claims and records (IInputRecords: the memory broker in
this process, the Redis broker for every process on one Redis).

    >>> from zorg.live.broker.memory import MemoryBroker
    >>> broker = MemoryBroker()
    >>> once = InputOnce(broker, keep=2)
    >>> answer, claim = once.begin('page1', 'a')    # first: run the handler
    >>> answer is None and claim.inputId
    'a'
    >>> _ = broker.publishMany([], inputs=[claim.record('{"events":[]}', 2,
    ...                                                 3600)])
    >>> once.ended(claim, committed=True)
    >>> once.begin('page1', 'a')                     # a repeat: the answer
    ('{"events":[]}', None)
    >>> _answer, claim = once.begin('page1', 'b')
    >>> once.ended(claim, committed=False)           # its transaction failed
    >>> once.begin('page1', 'b')[0] is None          # so it runs again
    True
"""

import secrets
import threading
import time

from zorg.live.interfaces import InputRunning
from zorg.live.page.transactional import recordOnCommit
from zorg.live.core.inputs import INPUT_ID, checkInputId  # noqa: F401

HEADER = 'X-Live-Input-Id'


class Claim:
    """One run's hold on an input id: what its vote records (rule 2)."""

    __slots__ = ('uuid', 'inputId', 'token', 'done')

    def __init__(self, uuid, inputId, token):
        self.uuid, self.inputId, self.token = uuid, inputId, token
        self.done = False

    def record(self, answer, keep, ttl):
        """The record the vote writes: IInputRecords' input tuple."""
        return (self.uuid, self.inputId, self.token, answer, keep, ttl)


class InputOnce:
    """The rules above, over the broker's claims and records."""

    keep = 100        # setting max-input-ids
    wait = 5.0        # seconds a repeat waits for a run in this process
    ttl = 3600        # seconds a record lives at most
    claimTTL = 15.0   # seconds a claim outlives a process that died

    def __init__(self, records, keep=None):
        self.records = records
        if keep is not None:
            self.keep = keep
        self._running = {}    # (page id, input id) -> Event, in this process
        self._lock = threading.Lock()   # guards _running; never over I/O

    def begin(self, uuid, inputId):
        """``(answer, None)`` for a repeat (its recorded answer), or
        ``(None, claim)``: the caller runs the handler, records the answer
        in its transaction's vote (`record`) and calls `ended`."""
        key = (uuid, inputId)
        deadline = time.monotonic() + self.wait
        while True:
            with self._lock:
                running = self._running.get(key)
                if running is None:
                    self._running[key] = threading.Event()
                    break
            left = deadline - time.monotonic()
            if left <= 0 or not running.wait(left):
                raise InputRunning('input %s is still running; send it '
                                   'again shortly' % inputId)
        claim = Claim(uuid, inputId, secrets.token_hex(8))
        try:
            answer, claimed = self.records.claimInput(
                uuid, inputId, claim.token, self.claimTTL)
        except BaseException:
            self._release(key)
            raise
        if answer is not None or not claimed:
            self._release(key)
            if answer is None:
                raise InputRunning('input %s is running in another process; '
                                   'send it again shortly' % inputId)
            return answer, None
        return None, claim

    def record(self, claim, answer):
        """What the vote writes for `claim` (see transactional)."""
        return claim.record(answer, self.keep, self.ttl)

    def ended(self, claim, committed):
        """The run of `claim` ended: its transaction committed (the vote
        wrote the record and took the claim away) or not (the claim is
        released, so a repeat runs again). Once per claim: a failed
        commit calls both the after-commit and the after-abort hooks."""
        if claim.done:
            return
        claim.done = True
        try:
            if not committed:
                self.records.releaseInput(claim.uuid, claim.inputId,
                                          claim.token)
        finally:
            self._release((claim.uuid, claim.inputId))

    def _release(self, key):
        with self._lock:
            running = self._running.pop(key, None)
        if running is not None:
            running.set()

    def forget(self, uuid):
        self.records.forgetInputs(uuid)

    def joinTransaction(self, transaction, claim, answer, manager):
        """Record `answer` in `transaction`'s vote, with its events; end
        the run when the transaction has finished or aborted."""
        recordOnCommit(self.record(claim, answer), manager, transaction)
        transaction.addAfterCommitHook(
            lambda ok: self.ended(claim, committed=ok))
        transaction.addAfterAbortHook(
            lambda: self.ended(claim, committed=False))
