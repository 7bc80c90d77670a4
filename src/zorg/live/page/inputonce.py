"""Input exactly once: a repeated input id gets the recorded answer.

A page's input (``LivePage.send(handler, args)``) carries an id the client
made (header ``X-Live-Input-Id`` on the POST path, ``"id"`` of a WebSocket
``input`` message). The client sends an input again, with the same id,
whenever it did not see the answer: after a network failure, a reconnect,
or a change of the tab that holds the browser's connection. The rules:

1. The first request with an id runs the handler. Its answer is recorded
   when its transaction commits, not before: a transaction that fails (or
   is retried by the publisher after a conflict) leaves no record, so the
   handler runs again, as nothing of its first run remains.
2. A repeat after that gets the recorded answer; the handler does not run.
3. A repeat while the first still runs in this process waits for it (up
   to `wait` seconds), then gets its answer.
4. The last `keep` ids of a page are remembered (setting max-input-ids),
   for an hour at most; closing the page forgets them.

Records live in the broker when it shares page records between processes
(the Redis broker: a repeat may reach another process), else here.

    >>> once = InputOnce(LocalInputs(), keep=2)
    >>> once.begin('page1', 'a') is None     # first: run the handler
    True
    >>> once.committed('page1', 'a', '{"events":[]}')
    >>> once.begin('page1', 'a')             # a repeat: the answer
    '{"events":[]}'
    >>> once.begin('page1', 'b') is None
    True
    >>> once.released('page1', 'b')          # its transaction failed
    >>> once.begin('page1', 'b') is None     # so it runs again
    True
"""

import collections
import re
import threading
import time

from zorg.live.interfaces import BadRequest, Busy

INPUT_ID = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')
HEADER = 'X-Live-Input-Id'


def checkInputId(value):
    """The input id `value`, or BadRequest saying what an id must be."""
    if not isinstance(value, str) or not INPUT_ID.match(value):
        raise BadRequest('an input id is 1 to 64 letters, digits, "-" or '
                         '"_"; got %r' % (value if not isinstance(value, str)
                                         else value[:70]))
    return value


class LocalInputs:
    """The recorded answers of one process (the memory broker's pages)."""

    def __init__(self):
        self._pages = {}      # page id -> OrderedDict(input id -> answer)
        self._lock = threading.Lock()

    def recallInput(self, uuid, inputId):
        with self._lock:
            return self._pages.get(uuid, {}).get(inputId)

    def rememberInput(self, uuid, inputId, answer, keep, ttl):
        with self._lock:
            page = self._pages.setdefault(uuid, collections.OrderedDict())
            page.setdefault(inputId, answer)   # the first answer stays
            while len(page) > keep:
                page.popitem(last=False)

    def forgetInputs(self, uuid):
        with self._lock:
            self._pages.pop(uuid, None)


class InputOnce:
    """The rules above, over a store of recorded answers (`records`)."""

    keep = 100        # setting max-input-ids
    wait = 30.0       # seconds a repeat waits for the first run
    ttl = 3600        # seconds a record lives at most

    def __init__(self, records, keep=None):
        self.records = records
        if keep is not None:
            self.keep = keep
        self._running = {}    # (page id, input id) -> Event, in this process
        self._lock = threading.Lock()

    def begin(self, uuid, inputId):
        """The recorded answer of a repeat, or None: the caller runs the
        handler and then calls `committed` or `released`."""
        key = (uuid, inputId)
        deadline = time.monotonic() + self.wait
        while True:
            with self._lock:
                running = self._running.get(key)
                if running is None:
                    answer = self.records.recallInput(uuid, inputId)
                    if answer is None:
                        self._running[key] = threading.Event()
                    return answer
            left = deadline - time.monotonic()
            if left <= 0 or not running.wait(left):
                raise Busy('input %s is still running; try again shortly'
                           % inputId, 1)

    def committed(self, uuid, inputId, answer):
        """The handler's transaction committed with `answer`."""
        try:
            self.records.rememberInput(uuid, inputId, answer, self.keep,
                                       self.ttl)
        finally:
            self.released(uuid, inputId)

    def released(self, uuid, inputId):
        """The run ended without a record (failed, aborted, or recorded)."""
        with self._lock:
            running = self._running.pop((uuid, inputId), None)
        if running is not None:
            running.set()

    def forget(self, uuid):
        self.records.forgetInputs(uuid)

    def joinTransaction(self, transaction, uuid, inputId, answer):
        """Record `answer` when `transaction` commits; release the id when
        it does not (a failed commit, an abort)."""
        def afterCommit(ok):
            if ok:
                self.committed(uuid, inputId, answer)
            else:
                self.released(uuid, inputId)
        transaction.addAfterCommitHook(afterCommit)
        transaction.addAfterAbortHook(
            lambda: self.released(uuid, inputId))
