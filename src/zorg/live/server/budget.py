"""Fair shares of the event loop: what one connection may make it do.

Every connection of LiveServerHTTP (a WebSocket, an HTTP connection that
carries long-polls, SSE streams or the shared stream) has a `Budget`: two
token buckets, one for the messages (WebSocket messages and frames, HTTP
requests) and one for the bytes its peer sends. A bucket holds up to
`burst` tokens and refills at `rate` per second; what a connection sends
takes from both.

A connection over budget is first *slowed*: the driver stops reading it
(TCP pushes back on the peer) until the bucket has refilled enough for
what came (`charge` says how long). A connection that stays over budget
for longer than `grace` seconds -- it kept sending faster than its rate
all that time, never letting the bucket refill to half -- is *closed*:
``charge`` answers `CLOSE`. A browser's bursts (a hundred pages attaching
at once, tabs sending many inputs) fit in the burst; a flood does not.

Sans-I/O: the caller passes the clock.

    >>> budget = Budget(messages=10, size=1000, burst=2, grace=5, now=0.0)
    >>> budget.charge(20, 100, now=0.0)      # the burst: 2 s of rate
    0.0
    >>> budget.charge(5, 10, now=0.0)        # over: wait until it is paid
    0.5
    >>> budget.slowed
    True
    >>> budget.charge(10, 10, now=0.5)
    1.0

Sending twice its rate on, it is still over budget after the grace:

    >>> [budget.charge(10, 10, now=0.5 + t / 2) for t in range(1, 11)]
    [1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, -1.0]
    >>> budget.charge(1, 1, now=600.0) == CLOSE  # closed stays closed
    True

A peer that pauses long enough to refill half its burst is in budget
again, and its next slowdown starts a new grace period:

    >>> budget = Budget(messages=10, size=1000, burst=2, grace=5, now=0.0)
    >>> budget.charge(25, 0, now=0.0)
    0.5
    >>> budget.charge(1, 0, now=4.0), budget.slowed
    (0.0, False)
"""

from zorg.live.interfaces import Busy

CLOSE = -1.0


class TooManyRequests(Busy):
    """A connection that stayed over its budget (429 with Retry-After)."""

    status = 429
    code = 'too-many-requests'


class Bucket:
    """A token bucket: `rate` tokens a second, at most `burst` held; it
    may go into debt (negative), which is paid back by waiting."""

    __slots__ = ('rate', 'burst', 'tokens', 'at')

    def __init__(self, rate, burst, now):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.at = now

    def refill(self, now):
        if now > self.at:
            self.tokens = min(self.burst,
                              self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def take(self, amount, now):
        """Take `amount`; the seconds to wait until the debt is paid."""
        self.tokens = self.refill(now) - amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Budget:
    """The messages and bytes budget of one connection."""

    __slots__ = ('messages', 'bytes', 'grace', 'overSince', 'closed')

    def __init__(self, messages, size, burst, grace, now):
        """`messages` and `size` (bytes) per second; `burst` in seconds
        of rate (at least one message of `size`... the caller's choice);
        `grace` seconds over budget before the connection is closed."""
        self.messages = Bucket(messages, messages * burst, now)
        self.bytes = Bucket(size, size * burst, now)
        self.grace = grace
        self.overSince = None   # when it went over budget, while it is
        self.closed = False

    @property
    def slowed(self):
        return self.overSince is not None

    def charge(self, messages, size, now):
        """Charge `messages` and `size` bytes received: 0.0 (go on), the
        seconds to stop reading (slowed), or CLOSE."""
        if self.closed:
            return CLOSE
        if self.overSince is not None and (
                self.messages.refill(now) >= self.messages.burst / 2 and
                self.bytes.refill(now) >= self.bytes.burst / 2):
            self.overSince = None     # it paused: in budget again
        wait = max(self.messages.take(messages, now),
                   self.bytes.take(size, now))
        if wait <= 0:
            return 0.0
        if self.overSince is None:
            self.overSince = now
        elif now - self.overSince > self.grace:
            self.closed = True
            return CLOSE
        return wait


def budgetFor(settings, now, kind='socket'):
    """A connection's Budget from the settings (`kind`: 'socket' or
    'http')."""
    if kind == 'socket':
        rate, size = settings.socket_messages, settings.socket_bytes
    else:
        # Bodies are bounded by max-body-size and go to worker threads;
        # an upload must not be cut off for its size.
        rate, size = settings.http_requests, float('inf')
    return Budget(rate, size, settings.budget_burst, settings.budget_grace,
                  now)
