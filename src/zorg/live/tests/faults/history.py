"""The history of one run: every step, with who did it, where, when, and
what came of it (Jepsen's history).

An `Op` is one step: its `kind` (below), the `process` it went to (an
index, or None), the `client` and the `page` (a page instance: one render
until the page is closed or reloads, e.g. ``c2.p3``), its `start` and
`end` (seconds since the run began; `end` is None while it runs) and its
`result` (a dict). Kinds:

render    GET the chat page: result uuid, lastEventId, shown (the keys in
          its HTML), or status / error.
register  POST <page>/@@client/register after a 404: result uuid,
          recovered, or status / error.
read      one long-poll answer or one SSE connection: result transport,
          status / error, events (as received, in order).
input     one attempt to post a message: result id (the input id, also
          the message's text), slow (seconds of slow commit), status,
          error (``timeout``, ``dropped``, ``connection``).
close     the client closed its page.
end       the page ended: result reason (``closed``, ``reload``,
          ``final``: open until the end and drained).
fault     a fault: result fault (its kind), duration; process: the
          live process it hit.
barrier   the last message of the run, posted after every other input
          ended and every fault healed: result id, status.

    >>> history = History()
    >>> op = history.begin('input', client='c1', page='c1.p1', process=0,
    ...                    id='c1-1')
    >>> op.finish(status=200)
    >>> [o.result for o in History.loads(history.dumps()).ops]
    [{'id': 'c1-1', 'status': 200}]
"""

import json
import time


class Op:

    __slots__ = ('index', 'kind', 'process', 'client', 'page', 'start',
                 'end', 'result', '_clock')

    def __init__(self, index, kind, process=None, client=None, page=None,
                 start=0.0, end=None, result=None, clock=None):
        self.index, self.kind, self.process = index, kind, process
        self.client, self.page = client, page
        self.start, self.end = start, end
        self.result = result if result is not None else {}
        self._clock = clock

    def finish(self, **result):
        self.result.update(result)
        self.end = self._clock() if self._clock else self.start

    def asDict(self):
        return {name: getattr(self, name) for name in self.__slots__
                if name != '_clock'}

    def __repr__(self):
        where = ' '.join('%s=%s' % (name, value) for name, value in (
            ('process', self.process), ('client', self.client),
            ('page', self.page)) if value is not None)
        end = '%.3f' % self.end if self.end is not None else '...'
        result = dict(self.result)
        if 'events' in result:      # id, type and key of each: enough
            result['events'] = [
                ' '.join(str(e.get(name)) for name in ('id', 'event', 'key')
                         if e.get(name) is not None)
                for e in result['events']]
        return '#%d %.3f-%s %s %s %s' % (
            self.index, self.start, end, self.kind, where,
            json.dumps(result, sort_keys=True))


class History:
    """The ops of one run, in the order they began."""

    def __init__(self):
        self.ops = []
        self._t0 = time.monotonic()

    def now(self):
        return round(time.monotonic() - self._t0, 4)

    def begin(self, kind, process=None, client=None, page=None, **result):
        op = Op(len(self.ops), kind, process, client, page, self.now(),
                None, result, self.now)
        self.ops.append(op)
        return op

    def add(self, kind, process=None, client=None, page=None, **result):
        """An op that took no time."""
        op = self.begin(kind, process, client, page, **result)
        op.end = op.start
        return op

    def of(self, kind):
        return [op for op in self.ops if op.kind == kind]

    def dumps(self):
        return json.dumps([op.asDict() for op in self.ops], indent=0)

    @classmethod
    def loads(cls, text):
        history = cls()
        history.ops = [Op(**data) for data in json.loads(text)]
        return history
