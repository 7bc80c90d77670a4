"""Rounds: a group's news served to its waiting connections in slices.

Both fast paths (fanout.py for parked streams, polls.py for held polls)
answer a publish the same way: every waiting connection of the group in
one round, a large group in slices of `SLICE` connections, each slice a
callback of its own so that the loop serves other requests in between.
News that arrives during a round is not served by a second round at once:
the round's later slices read it anyway, and one more round follows the
last slice. So a busy group gets fewer, larger writes.

A subclass says which connections wait (`waitingIn`), serves one slice
(`serve`), and may tidy up when a round is over (`roundDone`).
"""

SLICE = 1000        # connections served per callback (some ms of writes)


class Rounds:

    def __init__(self, later=None):
        self.later = later          # the loop's call_soon (None: no slices)
        self.pushing = {}           # group id -> news came during the round

    def push(self, group_id):
        """The group's log grew: serve its waiting connections."""
        if group_id in self.pushing:
            self.pushing[group_id] = True      # another round afterwards
            return
        waiting = self.waitingIn(group_id)
        if not waiting:
            return
        self.pushing[group_id] = False
        self._slice(group_id, list(waiting), 0)

    def _slice(self, group_id, waiting, start):
        stop = len(waiting)
        if self.later is not None:
            stop = min(stop, start + SLICE)
        self.serve(group_id, waiting[start:stop])
        if stop < len(waiting):
            self.later(self._slice, group_id, waiting, stop)
            return
        self.roundDone(group_id)
        if self.pushing.pop(group_id, False):
            self.push(group_id)

    def waitingIn(self, group_id):
        """The connections of the group that wait for its news."""
        raise NotImplementedError

    def serve(self, group_id, some):
        """Serve `some` of them (one slice) the group's news."""
        raise NotImplementedError

    def roundDone(self, group_id):
        """The round's last slice was served."""
