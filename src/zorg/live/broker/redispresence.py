"""Presence shared by every process on one Redis (IPresence of RedisBroker).

Data (``<prefix>`` is ``zorg:live:`` unless configured)::

    <prefix>presence:procs           ZSET  process id -> heartbeat expiry
                                           (ms, Redis's clock)
    <prefix>presence:proc:<process>  HASH  page id -> JSON [group, principal,
                                           title]
    <prefix>presence:group:<group>   HASH  principal id -> pages in the group
                                           (in every process)
    <prefix>presence:online          HASH  principal id -> pages in any group

Every change is one Lua script, so it is atomic and one round trip:

* JOIN adds the page to its process's hash (HSETNX: a second join of the
  page changes nothing) and counts it; it answers 1 when the principal's
  count in the group went from 0 to 1 (a join, decided once for all
  processes).
* LEAVE removes the page and answers 1 when the count reached 0. A page
  that is not there (left already, never joined, swept) answers 0.
* HEARTBEAT (every third of the presence timeout, from one thread per
  process) pushes the process's expiry on, and *sweeps*: the pages of
  processes whose expiry passed are removed and the principals that thereby
  left are returned. Removing and returning happen in one script, so each
  leave is reported by exactly one process, which publishes it.
* SYNC makes Redis hold exactly this process's pages (adds first, then
  removes, so a principal staying online does not flicker). The heartbeat
  runs it when the process's hash does not have as many pages as the
  process knows (Redis restarted empty, or another process swept this one
  while it was cut off) or when a join or leave failed half way.

The keys are computed inside the scripts (the sweep finds its groups in
the data), so they must all be on one redis-server: on a Redis Cluster,
each shard has a RedisPresence of its own for the groups on it, with a
prefix that puts all its keys in one slot of that shard (rediscluster.py).
Times come from Redis (TIME), so the clocks of the hosts do not matter.

A process that stops (SIGTERM) leaves its pages in Redis like a crashed
one: they are swept after the timeout. Its pages reconnect to another
process meanwhile and register there, so their principals do not leave and
join again.
"""

import json
import logging
import threading

from zope.interface import implementer

from zorg.live.interfaces import IPresence

log = logging.getLogger('zorg.live.broker.redis')

_LUA = """
local prefix = ARGV[1]
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function count(key, field, by)
  local n = redis.call('HINCRBY', key, field, by)
  if n <= 0 then redis.call('HDEL', key, field) end
  return n
end
-- One page more (by 1) or less (by -1) of the principal of `entry` in its
-- group: the principal's pages in the group now, and the decoded entry.
local function change(entry, by)
  local e = cjson.decode(entry)
  count(prefix .. 'presence:online', e[2], by)
  return count(prefix .. 'presence:group:' .. e[1], e[2], by), e
end
local function report(out, kind, e)
  out[#out + 1] = kind
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
  out[#out + 1] = e[3]
end
"""

# ARGV: prefix, process, timeout ms, page, entry -> 1 when first
JOIN = _LUA + """
-- A process is known from its first page on: if it dies before its first
-- heartbeat, its pages are still swept.
redis.call('ZADD', prefix .. 'presence:procs', 'NX', now() + ARGV[3], ARGV[2])
if redis.call('HSETNX', prefix .. 'presence:proc:' .. ARGV[2], ARGV[4],
              ARGV[5]) == 0 then
  return 0
end
if change(ARGV[5], 1) == 1 then return 1 end
return 0
"""

# ARGV: prefix, process, page -> 1 when last
LEAVE = _LUA + """
local key = prefix .. 'presence:proc:' .. ARGV[2]
local entry = redis.call('HGET', key, ARGV[3])
if not entry then return 0 end
redis.call('HDEL', key, ARGV[3])
if change(entry, -1) == 0 then return 1 end
return 0
"""

# ARGV: prefix, process, timeout ms, sweep ('1' or '')
#   -> {pages of this process in Redis, {'leave', group, principal, title,
#       ...}}
HEARTBEAT = _LUA + """
local t = now()
local procs = prefix .. 'presence:procs'
redis.call('ZADD', procs, t + ARGV[3], ARGV[2])
local out = {}
if ARGV[4] == '1' then
  -- A few dead processes per beat bound the time of one script call.
  local dead = redis.call('ZRANGEBYSCORE', procs, '-inf', t, 'LIMIT', 0, 8)
  for _, pid in ipairs(dead) do
    local key = prefix .. 'presence:proc:' .. pid
    for _, entry in ipairs(redis.call('HVALS', key)) do
      local n, e = change(entry, -1)
      if n == 0 then report(out, 'leave', e) end
    end
    redis.call('DEL', key)
    redis.call('ZREM', procs, pid)
  end
end
return {redis.call('HLEN', prefix .. 'presence:proc:' .. ARGV[2]), out}
"""

# ARGV: prefix, process, timeout ms, page, entry, page, entry, ...
#   -> {'join' or 'leave', group, principal, title, ...}
SYNC = _LUA + """
redis.call('ZADD', prefix .. 'presence:procs', now() + ARGV[3], ARGV[2])
local key = prefix .. 'presence:proc:' .. ARGV[2]
local stored = redis.call('HGETALL', key)
local have = {}
for i = 1, #stored, 2 do have[stored[i]] = stored[i + 1] end
local want = {}
local out = {}
for i = 4, #ARGV, 2 do
  want[ARGV[i]] = true
  if not have[ARGV[i]] then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    local n, e = change(ARGV[i + 1], 1)
    if n == 1 then report(out, 'join', e) end
  end
end
for page, entry in pairs(have) do
  if not want[page] then
    redis.call('HDEL', key, page)
    local n, e = change(entry, -1)
    if n == 0 then report(out, 'leave', e) end
  end
end
return out
"""


def changes(flat):
    """[(kind, group, principal, title), ...] from a script's flat list."""
    return [tuple(flat[i:i + 4]) for i in range(0, len(flat), 4)]


@implementer(IPresence)
class RedisPresence:
    """The presence of one process (one RedisBroker); see the module."""

    shared = True

    def __init__(self, client, prefix, processId, timeout, unavailable,
                 errors):
        if timeout <= 0:
            raise ValueError('the presence timeout must be positive')
        self._redis = client
        self.prefix = prefix
        self.processId = processId
        self.timeout = timeout
        self.interval = timeout / 3.0
        self._timeoutMs = str(max(1, int(timeout * 1000)))
        self._unavailable = unavailable   # error -> BrokerUnavailable
        self._errors = errors             # "Redis is not there" errors
        # Held over each script call and the matching change of _pages, so
        # the heartbeat compares Redis with a stable picture.
        self._lock = threading.Lock()
        self._pages = {}      # page id -> entry (what Redis should hold)
        self._dirty = False   # a call failed half way: SYNC at next beat
        self._listeners = ()
        self._stopping = threading.Event()
        self._thread = None
        self.failing = False
        self._join = client.register_script(JOIN)
        self._leave = client.register_script(LEAVE)
        self._heartbeat = client.register_script(HEARTBEAT)
        self._sync = client.register_script(SYNC)

    def _start(self):
        # The heartbeat thread starts with the first page or listener: a
        # broker that only publishes (a command line tool) needs none.
        if self._thread is None and not self._stopping.is_set():
            self._thread = threading.Thread(
                target=self._run, name='zorg.live redis presence',
                daemon=True)
            self._thread.start()

    # -- IPresence -------------------------------------------------------

    def join(self, group_id, principal_id, title, page):
        entry = json.dumps([group_id, principal_id, title or ''],
                           ensure_ascii=False, separators=(',', ':'))
        with self._lock:
            self._start()
            if page in self._pages:
                return False
            try:
                first = self._join(args=[self.prefix, self.processId,
                                         self._timeoutMs, page, entry])
            except self._errors as e:
                # It may have run: the next heartbeat makes Redis agree.
                self._dirty = True
                raise self._unavailable(e)
            self._pages[page] = entry
        return first == 1

    def leave(self, group_id, principal_id, page):
        with self._lock:
            if self._pages.pop(page, None) is None:
                return False
            try:
                last = self._leave(args=[self.prefix, self.processId, page])
            except self._errors:
                # Closing a page does not fail for that: the heartbeat
                # that reaches Redis again removes the page and reports
                # the leave then.
                self._dirty = True
                return False
        return last == 1

    def members(self, group_id):
        try:
            found = self._redis.hkeys(self.prefix + 'presence:group:'
                                      + group_id)
        except self._errors as e:
            raise self._unavailable(e)
        return sorted(found)

    def isOnline(self, principal_id):
        try:
            return bool(self._redis.hexists(self.prefix + 'presence:online',
                                            principal_id))
        except self._errors as e:
            raise self._unavailable(e)

    def addPresenceListener(self, callback):
        with self._lock:
            self._listeners = self._listeners + (callback,)
            self._start()

    def removePresenceListener(self, callback):
        with self._lock:
            self._listeners = tuple(
                cb for cb in self._listeners if cb != callback)

    # -- the heartbeat ---------------------------------------------------

    def beat(self):
        """One heartbeat: keep this process alive, sweep dead processes
        (only with a listener to publish their leaves: a process without
        one leaves that to the others), make Redis hold this process's
        pages. Reports the changes to the listeners and returns them."""
        with self._lock:
            sweep = '1' if self._listeners else ''
            held, found = self._heartbeat(args=[
                self.prefix, self.processId, self._timeoutMs, sweep])
            found = changes(found)
            if self._dirty or held != len(self._pages):
                args = [self.prefix, self.processId, self._timeoutMs]
                for page, entry in self._pages.items():
                    args += [page, entry]
                found += changes(self._sync(args=args))
                self._dirty = False
            listeners = self._listeners if found else ()
        for listener in listeners:
            try:
                listener(found)
            except Exception:
                log.exception('a presence listener failed')
        return found

    def _run(self):
        while not self._stopping.wait(self.interval):
            try:
                self.beat()
            except self._errors as e:
                if not self.failing:
                    log.warning('presence heartbeat: Redis unreachable (%s);'
                                ' other processes take the pages of this one'
                                ' for gone after %g seconds', e,
                                self.timeout)
                self.failing = True
                continue
            except Exception:
                log.exception('presence heartbeat failed')
                continue
            self.failing = False

    def close(self):
        """Stop the heartbeat. The pages stay in Redis until another
        process sweeps them (see the module's docstring)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
