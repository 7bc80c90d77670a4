"""The Redis broker: group logs in a redis-server shared by processes.

Choose it with ``broker redis://host:port/db`` in zope.conf's
``<zorg-live>`` section, the PasteDeploy ini, or ZORG_LIVE_BROKER. It needs
redis-server 7.0 or newer (XSETID ... MAXDELETEDID). On a Redis Cluster
(``redis+cluster://``), rediscluster.py runs one of it per master.

Design (see also the doctest redis.txt):

* **Logs.** One Redis stream per group, ``<prefix>log:<group id>``. Event
  ids are the stream ids (``<ms>-<seq>``): they are the SSE ids and the
  long-poll positions. In Python a position is the tuple ``(ms, seq)``, so
  positions compare with < and > as the delivery rules need.

* **One publish, one write.** A publish is one EVALSHA of a Lua script that
  XADDs the entry, trims history and refreshes the stream's expiry. The
  stream assigns the id, but the encoded event must contain its own id: the
  broker calls ``encode(PLACEHOLDER)`` once, cuts the text at the quoted
  placeholder and stores the two halves (field ``d`` is the rest after the
  id; field ``h`` the part before it, left out when it is the usual
  ``{"id":``). Readers build ``h + '"' + id + '"' + d``: one concatenation.
  The audience, when there is one, is stored as JSON in field ``a``.

* **History and "recovered".** The script trims in batches (like the
  memory broker: when the log is a quarter over `historySize`) and records
  the newest dropped id as the stream's max-deleted-entry-id (XSETID
  MAXDELETEDID). A stream is always created with one entry that is deleted
  at once, so its max-deleted-entry-id (the *base*) is its creation time.
  A reader at position p is complete when p >= base. So a page whose
  position predates the stream (Redis restarted empty, the log expired) is
  told ``recovered: false`` instead of silently missing events.

* **Wake-ups.** Each broker (one per process) runs ONE background thread
  that does XREAD BLOCK over the streams of the groups this process reads
  (a group is *watched* from its first latest/read/waitFor until
  dropGroup), plus a private control stream that other threads XADD to
  when a group starts being watched (that interrupts the block without a
  race). The thread appends what it reads to a local cache per group and
  then calls the listeners with the tuple of group ids and notifies
  waitFor. A publish therefore wakes the listeners of every process,
  including its own, through this thread (not from publish()).

* **Reads.** `read` is served from the local cache when the position is
  inside the part the cache knows completely; older positions (a page that
  moved from another process, a slow reader) are read from Redis with
  XRANGE in one script call that also returns the base. `latest` always
  asks Redis (one script call), so a position learned from another
  process is never "newer than the log". The cache sees a publish a moment
  after Redis does (the reader thread's latency); waiters are woken then,
  so this delays nothing a page waits for. publish() does not append to
  the cache itself: an entry of another process with a smaller id might
  not have been read yet, and the cache must never have gaps.

* **Faults.** Redis unreachable at start: BrokerUnavailable naming the URL
  (makeBroker turns it into a ConfigError). Lost while running: publish,
  latest and reads that need Redis raise BrokerUnavailable (503,
  'broker-unavailable'); the reader thread reconnects with exponential
  backoff, then restarts each watched cache at the log's current end and
  wakes every waiter, so pages re-read from Redis: from their own position
  when history still covers it, else they get ``recovered: false``.

* **Moving between processes.** Private events live in the group stream
  with their audience, and each page's record (principal, group, ...) is
  shared (IPageRecords, see redispages.py): a page whose next request
  lands on a process that does not know its id is adopted there and
  continues from the request's ``lastEventId``, as long as the group's
  history covers the gap (else it is told ``recovered: false``). Only a
  page whose record expired gets 404 and registers again.

* **Groups.** dropGroup only stops watching (other processes may still
  have pages in the group); streams expire `streamTTL` seconds after their
  last publish and the reader refreshes the expiry of watched ones.

* **Presence** is shared (IPresence, see redispresence.py): a join or a
  leave is one script call that decides "first page" / "last page" for all
  processes; a heartbeat thread keeps this process's pages alive and
  sweeps those of processes that stopped beating for `presenceTimeout`.

* **Health.** `health()` says whether the reader thread is connected; it
  answers from that state without a round trip.
"""

import bisect
import contextlib
import json
import logging
import random
import secrets
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from zope.interface import implementer

from zorg.live.broker import redisurl
from zorg.live.broker.pending import Holder
from zorg.live.broker.redispages import RedisPages
from zorg.live.broker.redispresence import RedisPresence
from zorg.live.broker.redisurl import redactURL
from zorg.live.interfaces import (
    BrokerUnavailable, IBroker, IInputRecords, IPageRecords, IPresence,
    InputRunning)
from zorg.live.core.wire import reloadText

log = logging.getLogger('zorg.live.broker.redis')

DEFAULT_HEAD = '{"id":'
MAX_ID_PART = (1 << 64) - 1

# Errors that mean "Redis is not there (now)", as opposed to a bug. The
# last four come from a Redis Cluster that lost a shard (CLUSTERDOWN) or
# whose slots moved (rediscluster.py).
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError,
               redis.exceptions.ReadOnlyError,
               redis.exceptions.ClusterDownError,
               redis.exceptions.TryAgainError, redis.exceptions.MovedError,
               redis.exceptions.AskError)

# Every script starts with this: wake(logs) is told the logs a script
# appended to. One redis-server needs nothing more (the readers' XREAD
# sees the logs); a Redis Cluster shard replaces it (rediscluster.py).
SCRIPT_HEAD = """
local function wake(logs) end
"""

_LUA_COMMON = """
local function ensure(key, ttl)
  if redis.call('EXISTS', key) == 0 then
    -- The base of a new log is its creation: one entry, deleted at once,
    -- sets max-deleted-entry-id.
    local id = redis.call('XADD', key, '*', 'base', '')
    redis.call('XDEL', key, id)
    redis.call('PEXPIRE', key, ttl)
  end
end
local function info(key)
  local i = redis.call('XINFO', 'STREAM', key)
  local last, base, added, length
  for k = 1, #i, 2 do
    if i[k] == 'last-generated-id' then last = i[k + 1]
    elseif i[k] == 'max-deleted-entry-id' then base = i[k + 1]
    elseif i[k] == 'entries-added' then added = i[k + 1]
    elseif i[k] == 'length' then length = i[k + 1] end
  end
  -- Fresh: nothing was ever trimmed (only the creation entry is gone), so
  -- the base is the log's creation.
  local fresh = 0
  if added == length + 1 then fresh = 1 end
  return last, base, fresh
end
"""

# Resolve a transaction in flight (see pending.py): write the marker
# `outcome` after its events in each of its logs, once.
_LUA_RESOLVE = """
local function resolve(flights, token, outcome)
  local logs = redis.call('HGET', flights, token)
  if not logs then return end
  redis.call('HDEL', flights, token)
  local woken = {}
  for _, key in ipairs(cjson.decode(logs)) do
    if redis.call('EXISTS', key) == 1 then
      redis.call('XADD', key, '*', 'm', outcome, 't', token)
      woken[#woken + 1] = key
    end
  end
  wake(woken)
end
"""

# The one atomic point of a transaction (page/transactional.py): its
# events, the records of the inputs that ran it and its in-flight entry,
# all written or none.
# KEYS: [1] the in-flight set, [2] the in-flight logs (HASH), then the
# logs of the events in order (a log may repeat), then per input record:
# its page's answers (HASH), their order (LIST), its claim (STRING).
# ARGV: historySize, trim slack, ttl ms, deadline (ms of Redis's clock, 0:
# none), events count, records count, in-flight token ('' for none),
# in-flight ttl ms; then per event its field count and fields; then per
# record: input id, claim token, answer, keep, ttl s.
# -> {event ids..., [in-flight member]}
# Past the deadline it writes nothing: a call that a hung Redis runs only
# when it wakes up, after the caller gave up on it (and aborted its
# transaction), must not publish a phantom. A record whose id is recorded
# already, or whose claim another run holds, fails the whole call
# (FENCED): that run's effects are stored once, by the other run.
# With a token, what it writes is *pending* (pending.py): the events carry
# the token (field t), the records are '!<token> <answer>', and RESOLVE or
# the MARK sweep decides them later, once.
PUBLISH = _LUA_COMMON + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[4])
if deadline > 0 and now > deadline then
  return redis.error_reply('LATE the caller gave up on this publish')
end
local nev, nrec = tonumber(ARGV[5]), tonumber(ARGV[6])
local token = ARGV[7]
local arg = 9
for k = 1, nev do arg = arg + tonumber(ARGV[arg]) + 1 end
local recarg = arg
for r = 0, nrec - 1 do
  local key, a = 2 + nev + r * 3, recarg + r * 5
  local held = redis.call('GET', KEYS[key + 3])
  if redis.call('HEXISTS', KEYS[key + 1], ARGV[a]) == 1
      or (held and held ~= ARGV[a + 1]) then
    return redis.error_reply('FENCED ' .. ARGV[a])
  end
end
local ids, low, logs, seen = {}, nil, {}, {}
arg = 9
for k = 1, nev do
  local key = KEYS[2 + k]
  local n = tonumber(ARGV[arg])
  ensure(key, ARGV[3])
  local fields = {unpack(ARGV, arg + 1, arg + n)}
  if not seen[key] then
    seen[key] = true
    logs[#logs + 1] = key
  end
  if token ~= '' then
    fields[#fields + 1] = 't'
    fields[#fields + 1] = token
  end
  local id = redis.call('XADD', key, '*', unpack(fields))
  arg = arg + n + 1
  local size = tonumber(ARGV[1])
  local len = redis.call('XLEN', key)
  if len >= size + tonumber(ARGV[2]) then
    local dropped = redis.call('XRANGE', key, '-', '+', 'COUNT', len - size)
    redis.call('XTRIM', key, 'MAXLEN', size)
    redis.call('XSETID', key, id, 'MAXDELETEDID', dropped[#dropped][1])
  end
  redis.call('PEXPIRE', key, ARGV[3])
  ids[k] = id
  local ms = tonumber(string.match(id, '^(%d+)-'))
  if low == nil or ms < low then low = ms end
end
for r = 0, nrec - 1 do
  local key, a = 2 + nev + r * 3, recarg + r * 5
  local answer = ARGV[a + 2]
  if token ~= '' then answer = '!' .. token .. ' ' .. answer end
  redis.call('HSET', KEYS[key + 1], ARGV[a], answer)
  redis.call('RPUSH', KEYS[key + 2], ARGV[a])
  while redis.call('LLEN', KEYS[key + 2]) > tonumber(ARGV[a + 3]) do
    redis.call('HDEL', KEYS[key + 1], redis.call('LPOP', KEYS[key + 2]))
  end
  redis.call('EXPIRE', KEYS[key + 1], ARGV[a + 4])
  redis.call('EXPIRE', KEYS[key + 2], ARGV[a + 4])
  redis.call('DEL', KEYS[key + 3])
end
wake(logs)
if token ~= '' then
  -- No expiry on either key: an entry leaves them when it is resolved
  -- (RESOLVE) or swept (MARK), never silently.
  local limit = now + tonumber(ARGV[8])
  local member = string.format('%.0f', limit) .. ':' .. token
  redis.call('ZADD', KEYS[1], low or limit, member)
  redis.call('HSET', KEYS[2], token, cjson.encode(logs))
  ids[#ids + 1] = member
end
return ids
"""

# The finish (outcome 'c') or abort after the vote ('x') of a transaction
# in flight. KEYS: the in-flight set, the in-flight logs, then the
# answers (HASH) of each input record it wrote; ARGV: its member, token,
# outcome, then the input ids. -> 1, or 0 when it was no longer in flight
# (swept as unknown past its deadline, or Redis lost it).
RESOLVE = _LUA_RESOLVE + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
resolve(KEYS[2], ARGV[2], ARGV[3])
local prefix = '!' .. ARGV[2] .. ' '
for r = 3, #KEYS do
  local id = ARGV[r + 1]
  local answer = redis.call('HGET', KEYS[r], id)
  if answer and string.sub(answer, 1, #prefix) == prefix then
    if ARGV[3] == 'c' then
      redis.call('HSET', KEYS[r], id, string.sub(answer, #prefix + 1))
    else
      redis.call('HDEL', KEYS[r], id)
    end
  end
end
return 1
"""

# KEYS: the in-flight set, the in-flight logs -> {now ms, lowest
# in-flight ms or -1}. It sweeps the entries past their deadline (a
# process that died between vote and finish, or could not confirm): their
# outcome is unknown ('u', see pending.py); their input records stay
# '!<token> ...' and CLAIM answers 'input-unknown' for them.
MARK = _LUA_RESOLVE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local low = -1
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  local limit, token = string.match(all[i], '^(%d+):(.*)$')
  if tonumber(limit) < now then
    redis.call('ZREM', KEYS[1], all[i])
    resolve(KEYS[2], token, 'u')
  elseif low < 0 or tonumber(all[i + 1]) < low then
    low = tonumber(all[i + 1])
  end
end
return {now, low}
"""

# KEYS[1] log, KEYS[2] the in-flight set; ARGV: ttl ms -> {last id, base,
# fresh, lowest in-flight ms or ''}
LATEST = _LUA_COMMON + """
ensure(KEYS[1], ARGV[1])
local last, base, fresh = info(KEYS[1])
local low = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {last, base, fresh, low[2] or ''}
"""


# KEYS[1] log; ARGV: ttl ms, '(' .. after, count -> {last, base, entries}
READ = _LUA_COMMON + """
ensure(KEYS[1], ARGV[1])
local last, base, _fresh = info(KEYS[1])
local entries = redis.call('XRANGE', KEYS[1], ARGV[2], '+', 'COUNT', ARGV[3])
return {last, base, entries}
"""


def parseId(text):
    ms, _sep, seq = text.partition('-')
    return (int(ms), int(seq or 0))


def formatId(position):
    return '%d-%d' % position


def before(position):
    """The largest position smaller than `position`."""
    ms, seq = position
    return (ms, seq - 1) if seq else (ms - 1, MAX_ID_PART)


def reloadEntry(position):
    """The entry in place of a transaction whose outcome is unknown
    (pending.py): its pages reload."""
    return (position, reloadText(formatId(position)), None)


class GroupCache:
    """What the reader thread saw of one watched group's log.

    It holds every entry shown with ``start < position <= head``, oldest
    first; `cursor` is how far it read the log, and `holder` has what it
    read after the first unresolved pending entry (pending.py).
    """

    __slots__ = ('start', 'head', 'cursor', 'positions', 'entries', 'holder')

    def __init__(self, start):
        self.reset(start)

    def reset(self, start):
        self.restart(start)
        self.cursor = start
        self.holder = Holder(reloadEntry)

    def restart(self, start):
        """Forget what is shown up to `start`, keeping what the holder
        holds (its pending entries' markers are still to come)."""
        self.start = self.head = start
        self.positions = []
        self.entries = []


@implementer(IBroker, IPresence, IPageRecords, IInputRecords)
class RedisBroker:
    """Group logs as Redis streams; see the module's docstring."""

    prefix = 'zorg:live:'
    streamTTL = 24 * 3600       # seconds a log lives after its last publish
    block = 5.0                 # seconds of one XREAD BLOCK
    maxBackoff = 5.0            # seconds between reconnection attempts
    presenceTimeout = 30.0      # seconds before a silent process's pages go
    shared = True               # presence is shared (IPresence)
    blocking = True             # calls may wait on the network
    # Every call on a request's path (publish, mark, claims, page records,
    # presence) waits at most `timeout` seconds (setting broker-timeout),
    # without retrying. After a failure, the calls of publish, mark and
    # claims fail at once but for one at a time that tries Redis (see
    # _guarded), for `failFast` seconds and for as long as those fail,
    # rather than each waiting out the timeout again.
    timeout = 2.0
    failFast = 1.0
    # A transaction in flight (voted, not finished) holds marks back, and
    # its events and those after them in its logs, for this long at most:
    # the bound for a process that died between vote and finish (then its
    # pages reload, see pending.py). Setting commit-timeout.
    inFlightTTL = 10.0
    # While a reader holds pending entries, it sweeps expired transactions
    # this often (MARK), in case no request does.
    sweepEvery = 1.0
    # broker-replicas: a replica that acknowledged the master's stream
    # longer ago than this is not counted (replicas acknowledge every
    # second).
    replicaLag = 1

    @property
    def publishDeadline(self):
        # Redis appends a transaction's events only within this many
        # seconds of the call (by its clock): a publish we gave up on
        # (after `timeout`) was not appended; the rest of `timeout` is
        # the answer's time to come back.
        return self.timeout / 2

    def __init__(self, url, historySize=1000, prefix=None, streamTTL=None,
                 presenceTimeout=None, timeout=None, replicas=0,
                 commitTimeout=None):
        # Replicas that must have a publish before it succeeds (setting
        # broker-replicas; see _replicated).
        self.replicas = replicas
        if replicas < 0:
            raise ValueError('broker-replicas cannot be negative')
        if commitTimeout is not None:
            self.inFlightTTL = commitTimeout
        if self.inFlightTTL <= 0:
            raise ValueError('the commit timeout (setting commit-timeout) '
                             'must be positive')
        if timeout is not None:
            self.timeout = timeout
        if self.timeout <= 0:
            raise ValueError('the broker timeout (setting broker-timeout) '
                             'must be positive')
        if historySize < 1:
            raise ValueError('historySize must be at least 1')
        if presenceTimeout is not None:
            self.presenceTimeout = presenceTimeout
        if self.presenceTimeout <= 0:
            raise ValueError('the presence timeout (setting '
                             'presence-timeout) must be positive')
        self.url = url
        self.historySize = historySize
        if prefix is not None:
            self.prefix = prefix
        if streamTTL is not None:
            self.streamTTL = streamTTL
        self._ttl = str(int(self.streamTTL * 1000))
        # history-size counts events. A log also holds the markers of
        # transactions (pending.py), at most one per event, so it keeps
        # twice as many entries.
        self._kept = 2 * historySize
        self._slack = str(max(1, self._kept // 4))
        # One XREAD never returns more than historySize entries of a log:
        # an answer shorter than that proves that nothing it skipped over
        # was trimmed (see _append).
        self.readCount = min(historySize, 1000)
        self._placeholder = 'zl%s' % secrets.token_hex(12)
        self._marker = '"%s"' % self._placeholder
        self.processId = secrets.token_hex(8)
        self._ctlKey = self._tagged('ctl:' + self.processId)
        self._ctlCursor = '0-0'
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._caches = {}     # group id -> GroupCache (the watched groups)
        self._listeners = ()
        self._stopping = threading.Event()
        self.available = False
        self.lastError = None   # why the reader lost Redis (None: it has it)
        self.reconnects = 0
        self.clockOffset = 0.0  # Redis's clock minus ours, in seconds
        self.clockError = 0.0   # how far off that may be (a round trip)
        self._failedAt = -1e9   # monotonic time a request's call failed
        self._probing = False   # a call is trying Redis after a failure
        self._probeLock = threading.Lock()
        self._flights = {}      # in-flight token -> (member, records)
        # Resolutions that failed (Redis unreachable at the finish): the
        # reader thread sends them again once Redis answers.
        self._unresolved = []
        self._unresolvedLock = threading.Lock()
        self._lastSweep = 0.0
        try:
            self._redis, self._reader = self._clients(url)
            version = self._redis.info('server').get('redis_version', '0')
        except UNAVAILABLE as e:
            raise BrokerUnavailable(
                'cannot reach the Redis broker at %s (%s): start '
                'redis-server there or change the broker setting '
                '(<zorg-live> broker, ZORG_LIVE_BROKER)'
                % (redactURL(url), e))
        except (ValueError, redis.RedisError) as e:
            raise ValueError('bad Redis broker URL %s: %s'
                             % (redactURL(url), e))
        if int(version.split('.')[0]) < 7:
            raise ValueError('the Redis broker at %s runs redis-server %s; '
                             'zorg.live needs 7.0 or newer'
                             % (redactURL(url), version))
        self._measureClock(self._redis)
        self.available = True
        self._publish = self._script(PUBLISH)
        self._resolve = self._script(RESOLVE)
        self._mark = self._script(MARK)
        self._latest = self._script(LATEST)
        self._read = self._script(READ)
        self.presence = RedisPresence(
            self._redis, self._tagged(''), self.processId,
            self.presenceTimeout, self._unavailable, UNAVAILABLE)
        self.pages = RedisPages(self._redis, self.prefix, self._unavailable,
                                UNAVAILABLE, script=self._script,
                                tag=self._pageTag)
        self._thread = threading.Thread(
            target=self._run, name='zorg.live redis reader', daemon=True)
        self._thread.start()

    def __repr__(self):
        return '<RedisBroker %s>' % redactURL(self.url)

    def _clients(self, url):
        """The connections: one for the calls of requests, one for the
        reader thread (it blocks in XREAD)."""
        options = dict(decode_responses=True, socket_connect_timeout=2,
                       health_check_interval=0, retry=Retry(NoBackoff(), 0))
        return (redisurl.client(url, socket_timeout=self.timeout, **options),
                redisurl.client(url, socket_timeout=self.block + 10,
                                single_connection_client=True, **options))

    def _script(self, text):
        """`text` as a redis-py Script on the connection of requests
        (called with ``keys=``, ``args=`` and maybe ``client=``)."""
        return self._redis.register_script(SCRIPT_HEAD + text)

    def _key(self, group_id):
        return self.prefix + 'log:' + group_id

    def _tagged(self, name):
        """The key `name` of this broker's own (not a group's or a
        page's): the in-flight set, the control stream, presence."""
        return self.prefix + name

    def _pageTag(self, uuid):
        """A page id as it stands in the keys of the page's records."""
        return uuid

    def _unavailable(self, error):
        self._failedAt = time.monotonic()
        return BrokerUnavailable(
            'the Redis broker at %s is unavailable (%s); try again shortly'
            % (redactURL(self.url), error))

    # -- the IBroker API -------------------------------------------------

    def _fields(self, encode, audience):
        """The stream fields of one event (see the module's docstring)."""
        text = encode(self._placeholder)
        cut = text.find(self._marker)
        if cut < 0:
            raise ValueError('encode() must put the id it is given into the '
                             'JSON text as a string')
        head = text[:cut]
        fields = ['d', text[cut + len(self._marker):]]
        if head != DEFAULT_HEAD:
            fields += ['h', head]
        if audience is not None:
            fields += ['a', json.dumps(audience, separators=(',', ':'))]
        return fields

    @contextlib.contextmanager
    def _guarded(self):
        """Around a call of a request's path: Redis unreachable, or late
        past a script's deadline, becomes BrokerUnavailable. After a failure, while a
        call is failing, one call at a time (the *probe*) goes to Redis
        and waits at most `timeout`; the others fail at once. A probe
        that succeeds ends that: Redis is back."""
        probe = False
        if self._probing or time.monotonic() - self._failedAt < self.failFast:
            with self._probeLock:
                if self._probing:
                    raise BrokerUnavailable(
                        'the Redis broker at %s does not answer; try again '
                        'shortly' % redactURL(self.url))
                self._probing = probe = True
        try:
            yield
        except UNAVAILABLE as e:
            raise self._unavailable(e)
        except redis.ResponseError as e:
            # A script past its deadline (LATE): Redis ran it only after
            # we gave up, so it wrote nothing; for the caller, Redis did
            # not answer in time.
            if str(e).startswith('LATE'):
                raise self._unavailable('it answered too late')
            raise
        else:
            if probe:
                self._failedAt = -1e9
        finally:
            if probe:
                self._probing = False

    def _inFlightKey(self):
        return self._tagged('inflight')

    def _flightsKey(self):
        return self._tagged('flights')

    def _call(self, items, inputs=(), inFlight=None, deadline=0,
              replicate=False):
        """One PUBLISH script call (see its comment); `replicate`: with
        the replicas of broker-replicas (see _replicated)."""
        keys = [self._inFlightKey(), self._flightsKey()]
        events, records, answers = [], [], []
        for group_id, encode, audience in items:
            fields = self._fields(encode, audience)
            keys.append(self._key(group_id))
            events += [len(fields)] + fields
        for uuid, inputId, token, answer, keep, ttl in inputs:
            inputKeys = self.pages.inputKeys(uuid, inputId)
            keys += inputKeys
            records += [inputId, token, answer, keep, max(1, int(ttl))]
            answers.append((inputKeys[0], inputId))
        args = ([self._kept, self._slack, self._ttl, deadline,
                 len(items), len(inputs), inFlight or '',
                 int(self.inFlightTTL * 1000)] + events + records)
        try:
            with self._guarded():
                ids = (self._replicated(keys, args) if replicate
                       else self._publish(keys=keys, args=args))
        except redis.ResponseError as e:
            text = str(e)
            if text.startswith('FENCED'):
                raise InputRunning(
                    'input %s was run by another request meanwhile; send '
                    'it again to get its answer' % text.split()[-1][:64])
            raise
        if inFlight and len(ids) > len(items):
            self._flights[inFlight] = (ids.pop(), answers)
        return [parseId(event_id) for event_id in ids]

    def _deadline(self):
        """The time (ms of Redis's clock, as estimated here, early rather
        than late) after which Redis must not act on a call made now."""
        return int((time.time() + self.clockOffset - self.clockError
                    + self.publishDeadline) * 1000)

    def _replicated(self, keys, args):
        """The PUBLISH script of a transaction (publishMany), made safe
        against a failover when `replicas` > 0 (setting broker-replicas).
        An immediate publish (outside a transaction: scripts, the health
        probe) promises nothing stored and does not wait: a missing
        replica refuses commits, it does not take the processes out of
        the balancer.

        Redis replicates asynchronously: a master that dies right after
        it answered takes with it what it had not yet sent to a replica,
        and a failover to that replica loses those events without a
        trace (the pages' positions are still inside the promoted log's
        history, so nothing tells them to reload). So:

        1. Before it writes: INFO replication, and 503 (nothing written)
           unless `replicas` replicas are online and acknowledged the
           stream within `replicaLag` seconds. A master left without its
           replica (after a failover, until the old master is back as a
           replica) refuses commits instead of taking ones it could lose.
        2. The script, then WAIT on the same connection (a pipeline) for
           `replicas` acknowledgements, a quarter of `timeout` at most:
           the transaction commits, and its request is answered 200, once
           its events are on a replica that Sentinel can promote.
        3. A WAIT that falls short (the replica stalled in between) is
           logged and the commit goes on: the events are in the log
           already and may have been delivered, so refusing now would
           show pages a change that is not stored. The replica gets them
           when it catches up; step 1 refuses the next ones meanwhile.
        """
        if not self.replicas:
            return self._publish(keys=keys, args=args)
        info = self._redis.info('replication')
        good = sum(1 for name, replica in info.items()
                   if name.startswith('slave') and isinstance(replica, dict)
                   and replica.get('state') == 'online'
                   and replica.get('lag', 0) <= self.replicaLag)
        if info.get('role') != 'master' or good < self.replicas:
            raise redis.TimeoutError(
                '%d of %d replicas are in sync with the master'
                % (good, self.replicas))
        for _attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            pipe.evalsha(self._publish.sha, *self._evalArgs(keys, args))
            pipe.execute_command('WAIT', self.replicas,
                                 max(1, int(self.timeout * 250)))
            ids, acked = pipe.execute(raise_on_error=False)
            if not isinstance(ids, redis.exceptions.NoScriptError):
                break
            self._redis.script_load(self._publish.script)  # a new master
        if isinstance(ids, Exception):
            raise ids
        if isinstance(acked, Exception):
            raise acked
        if acked < self.replicas:
            log.warning('a publish was acknowledged by %d of %d replicas '
                        'in time; committed all the same (its events are '
                        'in the log)', acked, self.replicas)
        return ids

    def _evalArgs(self, keys, args):
        """EVALSHA's arguments after the sha, for a script of _script."""
        return [len(keys)] + list(keys) + list(args)

    def publishMany(self, items, inputs=(), inFlight=None):
        return self._call(items, inputs, inFlight, self._deadline(),
                          replicate=True)

    def publish(self, group_id, encode, audience=None):
        return self._call([(group_id, encode, audience)])[0]

    def finished(self, token, committed=True):
        flight = self._flights.pop(token, None)
        if flight is None:
            return True
        call = self._resolution(token, flight, committed)
        try:
            with self._guarded():
                resolved = self._resolve(**call)
        except BrokerUnavailable as e:
            # The reader thread sends it again when Redis answers. If that
            # is after the in-flight deadline and a sweep came first, the
            # transaction is *unknown*: its pages reload, and a resend of
            # its inputs is told input-unknown.
            log.warning('could not resolve a transaction in flight (sent '
                        'again when Redis answers): %s', e)
            with self._unresolvedLock:
                self._unresolved.append(call)
            return True
        # Not there: Redis restarted (empty) since the vote, or the entry
        # outlived its deadline; either way its events may be lost, or
        # marks passed them.
        return bool(resolved) or not committed

    def _resolution(self, token, flight, committed):
        """The RESOLVE call of a transaction in flight."""
        member, answers = flight
        keys = [self._inFlightKey(), self._flightsKey()]
        keys += [key for key, _id in answers]
        args = [member, token, 'c' if committed else 'x']
        args += [inputId for _key, inputId in answers]
        return dict(keys=keys, args=args)

    def _resolveAgain(self):
        """Send the resolutions that failed again (the reader thread)."""
        with self._unresolvedLock:
            calls, self._unresolved = self._unresolved, []
        for n, call in enumerate(calls):
            try:
                self._resolve(client=self._reader, **call)
            except BaseException:
                with self._unresolvedLock:
                    self._unresolved[:0] = calls[n:]
                raise

    def read(self, group_id, after, limit=1000):
        cache = self._watch(group_id)
        with self._lock:
            # A cache is the log only while its reader is connected: with
            # the reader away, Redis may be back empty (a restart) before
            # the reader resets the cache, so the cache cannot say that
            # history still covers `after`. Redis is asked instead.
            if (self.available and self._caches.get(group_id) is cache
                    and after >= cache.start):
                start = bisect.bisect_right(cache.positions, after)
                return cache.entries[start:start + limit], True
        return self.readStored(group_id, after, limit)

    def readStored(self, group_id, after, limit=1000):
        """Like read(), always from Redis (not from the local cache)."""
        holder = Holder(reloadEntry)
        entries, cursor, recovered = [], after, None
        # Markers and held entries are not shown: read on while a whole
        # answer was made of them (and nothing is held, which only waits).
        for _round in range(8):
            try:
                _last, base, items = self._read(
                    keys=[self._key(group_id)],
                    args=[self._ttl, '(' + formatId(cursor), limit])
            except UNAVAILABLE as e:
                raise self._unavailable(e)
            if recovered is None:
                recovered = after >= parseId(base)
            entries += holder.feed([self._raw(event_id, fields)
                                    for event_id, fields in items])
            if entries or holder.holding or len(items) < limit:
                break
            cursor = parseId(items[-1][0])
        return entries[:limit], recovered

    def readLocal(self, group_id, after, limit=1000):
        with self._lock:
            cache = self._caches.get(group_id)
            if cache is None or after < cache.start or not self.available:
                return None     # see read()
            start = bisect.bisect_right(cache.positions, after)
            return cache.entries[start:start + limit], True

    def latest(self, group_id):
        last, _base, _fresh, start = self._stored(group_id)
        self._watch(group_id, start)
        return last

    def latestLocal(self, group_id):
        # The newest position the reader has seen: never beyond the log's
        # newest, maybe a moment behind it.
        cache = self._caches.get(group_id)
        return None if cache is None else cache.head

    def bounds(self, group_id):
        last, base, fresh, start = self._stored(group_id)
        self._watch(group_id, start)
        return base, last, fresh

    def base(self, group_id):
        """The newest position dropped from the log (or its creation)."""
        return self._stored(group_id)[1]

    def mark(self):
        """A position before every entry XADDed from now on, to any
        stream (stream ids start with Redis's clock in milliseconds), and
        before every event of a transaction in flight in any process: one
        round trip (MARK)."""
        with self._guarded():
            now, low = self._mark(keys=[self._inFlightKey(),
                                        self._flightsKey()])
        return (min(now, low) if low >= 0 else now) - 1, MAX_ID_PART

    def parsePosition(self, text):
        text = str(text).strip()
        ms, sep, seq = text.partition('-')
        for part in (ms, seq):
            if not (part.isascii() and part.isdigit()) or len(part) > 20:
                raise ValueError('event id must look like <ms>-<seq> (a '
                                 'Redis stream id), got %r' % text[:40])
        position = (int(ms), int(seq))
        if max(position) > MAX_ID_PART:
            raise ValueError('event id out of range: %r' % text[:40])
        return position

    def formatPosition(self, position):
        return formatId(position)

    def addListener(self, callback):
        with self._lock:
            self._listeners = self._listeners + (callback,)

    def removeListener(self, callback):
        with self._lock:
            # == and not `is`: a bound method (LiveApp._onPublish) is a
            # new object each time it is looked up.
            self._listeners = tuple(
                cb for cb in self._listeners if cb != callback)

    def waitFor(self, group_id, after, timeout):
        cache = self._watch(group_id)

        # A reader before the cache's start reads from Redis, which shows
        # it nothing past a pending entry (those are after the start, see
        # _stored): it waits for the cache to show something new.
        def ready():
            return (self._caches.get(group_id) is not cache
                    or cache.head > max(after, cache.start))
        with self._cond:
            return self._cond.wait_for(ready, timeout)

    def dropGroup(self, group_id):
        # Other processes may still have pages in the group: only stop
        # watching it here. The stream expires after streamTTL.
        with self._cond:
            if self._caches.pop(group_id, None) is not None:
                self._cond.notify_all()

    def groupCount(self):
        with self._lock:
            return len(self._caches)

    def health(self):
        return {'kind': 'redis', 'url': redactURL(self.url),
                'connected': self.available, 'error': self.lastError}

    # -- IPresence (see redispresence.py) ----------------------------------

    def join(self, group_id, principal_id, title, page):
        return self.presence.join(group_id, principal_id, title, page)

    def leave(self, group_id, principal_id, page):
        return self.presence.leave(group_id, principal_id, page)

    def members(self, group_id):
        return self.presence.members(group_id)

    def isOnline(self, principal_id):
        return self.presence.isOnline(principal_id)

    def addPresenceListener(self, callback):
        self.presence.addPresenceListener(callback)

    def removePresenceListener(self, callback):
        self.presence.removePresenceListener(callback)

    # -- IPageRecords (see redispages.py) -----------------------------------

    def savePage(self, uuid, record, ttl):
        self.pages.save(uuid, record, ttl)

    def loadPage(self, uuid):
        return self.pages.load(uuid)

    def refreshPages(self, uuids, ttl):
        self.pages.refresh(uuids, ttl)

    def dropPage(self, uuid):
        self.pages.drop(uuid)

    # Input claims and records (page/inputonce.py): beside the page's
    # record; the records are written by the PUBLISH script.

    def claimInput(self, uuid, inputId, token, ttl):
        with self._guarded():
            return self.pages.claimInput(uuid, inputId, token, ttl,
                                         self._deadline(),
                                         self._flightsKey())

    def releaseInput(self, uuid, inputId, token):
        self.pages.releaseInput(uuid, inputId, token)

    def forgetInputs(self, uuid):
        pass    # dropPage deletes them with the record

    def close(self):
        """Stop the threads and close the connections."""
        self.presence.close()
        self._stopping.set()
        self._kick()
        self._thread.join(2)
        if self._thread.is_alive():
            try:
                self._reader.connection.disconnect()
            except Exception:
                pass
            self._thread.join(5)
        self._reader.close()
        self._redis.close()

    # -- internals -------------------------------------------------------

    def _stored(self, group_id, client=None):
        """(last id, base, fresh, start) of the log in Redis, creating it
        if needed. `start` is where a cache of it may start: before every
        pending entry (of a transaction in flight), so that the cache
        reads those and their markers itself."""
        try:
            last, base, fresh, low = self._latest(
                keys=[self._key(group_id), self._inFlightKey()],
                args=[self._ttl], client=client)
        except UNAVAILABLE as e:
            raise self._unavailable(e)
        last = parseId(last)
        start = last if low == '' else min(last, (int(low) - 1, MAX_ID_PART))
        return last, parseId(base), bool(fresh), start

    def _measureClock(self, client):
        """Estimate Redis's clock against ours (the midpoint of a TIME
        round trip)."""
        before = time.time()
        seconds, micros = client.time()
        after = time.time()
        self.clockOffset = seconds + micros / 1e6 - (before + after) / 2
        self.clockError = after - before

    def _watch(self, group_id, last=None):
        """The cache of a group, watching the group from now on."""
        cache = self._caches.get(group_id)
        if cache is not None:
            return cache
        if last is None:
            last = self._stored(group_id)[3]
        with self._lock:
            cache = self._caches.get(group_id)
            if cache is not None:
                return cache
            cache = self._caches[group_id] = GroupCache(last)
        self._kick()
        return cache

    def _kick(self):
        """Make the reader thread's XREAD return (its set of groups
        changed, or it must stop)."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(self._ctlKey, {'k': '1'}, maxlen=10)
            pipe.pexpire(self._ctlKey, int(self.streamTTL * 1000))
            pipe.execute()
        except redis.RedisError:
            pass  # the reader is reconnecting and will see every group

    def _raw(self, event_id, fields):
        """A log entry as pending.Holder takes it: ``(position, entry or
        None for a marker, token, outcome)``."""
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2]))
        position = parseId(event_id)
        outcome = fields.get('m')
        if outcome is not None:
            return position, None, fields.get('t'), outcome
        audience = fields.get('a')
        return (position,
                (position,
                 '%s"%s"%s' % (fields.get('h', DEFAULT_HEAD), event_id,
                               fields.get('d', '}')),
                 json.loads(audience) if audience is not None else None),
                fields.get('t'), None)

    # -- the reader thread -----------------------------------------------

    def _run(self):
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._restart()
                if not self.available:
                    log.warning('the Redis broker at %s is back',
                                redactURL(self.url))
                self.lastError = None
                self.available = True
                self._failedAt = -1e9     # back: no need to fail fast
                backoff = 0.1
                lastRefresh = time.monotonic()
                while not self._stopping.is_set():
                    self._readOnce()
                    if time.monotonic() - lastRefresh > self.block:
                        lastRefresh = time.monotonic()
                        self._refreshExpiry()
                        self._measureClock(self._reader)
            except Exception as e:
                if self._stopping.is_set():
                    break
                if not isinstance(e, UNAVAILABLE):
                    # Not a lost connection: a bug or a Redis that answers
                    # what we did not expect. Say where, every time.
                    log.exception('the Redis broker reader at %s failed; '
                                  'reconnecting', redactURL(self.url))
                elif self.available:
                    log.warning('lost the Redis broker at %s (%s); '
                                'reconnecting', redactURL(self.url), e)
                self.lastError = str(e) or type(e).__name__
                self.available = False
                self.reconnects += 1
                try:
                    self._reader.connection.disconnect()
                except Exception:
                    pass
                self._stopping.wait(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, self.maxBackoff)

    def _restart(self):
        """(Re)connected: a watched cache whose log still covers where it
        read to goes on from there; any other (the log was lost, trimmed
        past it, or is a promoted replica's that ends before it) starts
        again at its log's end, and its readers re-read from Redis, which
        tells them whether history still covers them. Everybody is woken.

        Going on matters at the first connection too: a cache made just
        before it, and a publish in between, would otherwise be skipped by
        a cache moved to the end (a waiter on it would wait for the next
        event)."""
        self._reader.ping()
        with self._lock:
            groups = list(self._caches)
        stored = {}
        for group_id in groups:
            stored[group_id] = self._stored(group_id, self._reader)
        with self._cond:
            for group_id, (last, base, _fresh, start) in stored.items():
                cache = self._caches.get(group_id)
                if cache is not None and not base <= cache.cursor <= last:
                    cache.reset(start)
            self._cond.notify_all()
        self._notify(tuple(groups))

    def _refreshExpiry(self):
        with self._lock:
            keys = [self._key(g) for g in self._caches]
        pipe = self._reader.pipeline(transaction=False)
        for key in keys:
            pipe.pexpire(key, int(self.streamTTL * 1000))
        pipe.execute()

    def _readOnce(self):
        with self._lock:
            cursors = {group_id: cache.cursor
                       for group_id, cache in self._caches.items()}
            holding = any(cache.holder.holding
                          for cache in self._caches.values())
        if self._unresolved:
            self._resolveAgain()
        if holding and time.monotonic() - self._lastSweep > self.sweepEvery:
            # Held entries wait for a marker; a transaction whose process
            # died gets one only from a sweep (MARK), which requests make
            # too, but a quiet site may have none.
            self._lastSweep = time.monotonic()
            self._mark(keys=[self._inFlightKey(), self._flightsKey()],
                       client=self._reader)
        block = self.block if not holding else min(self.block,
                                                   self.sweepEvery)
        woken = []
        reply = self._fetch(cursors, int(block * 1000))
        with self._cond:
            for group_id, items in reply:
                cache = self._caches.get(group_id)
                if cache is None or not items:
                    continue  # dropped meanwhile
                if self._append(cache, items):
                    woken.append(group_id)
            if woken:
                self._cond.notify_all()
        if woken:
            self._notify(tuple(woken))

    def _fetch(self, cursors, block):
        """Wait up to `block` ms for what follows `cursors` (group id ->
        position) in the logs: ``[(group id, entries)]``. One XREAD over
        the logs and the control stream."""
        streams = {self._ctlKey: self._ctlCursor}
        groups = {}
        for group_id, cursor in cursors.items():
            key = self._key(group_id)
            streams[key] = formatId(cursor)
            groups[key] = group_id
        reply = self._reader.xread(streams, count=self.readCount,
                                   block=block) or []
        found = []
        for key, items in reply:
            if key == self._ctlKey:
                self._ctlCursor = items[-1][0]
            elif items:
                found.append((groups[key], items))
        return found

    def _append(self, cache, items):
        """Take what XREAD read of a cache's log; whether it shows
        something new."""
        if len(items) >= self.readCount:
            # A full answer: the reader is behind and history may have
            # been trimmed between what it had and what it got. The cache
            # restarts just before this answer; older positions are read
            # from Redis, which knows exactly what was dropped.
            # What the holder holds stays: a page before the start reads
            # from Redis, which holds the same entries, and is woken when
            # their marker comes (a new holder would ignore it).
            first = parseId(items[0][0])
            if first > cache.cursor:
                cache.restart(before(first))
        raw = []
        for event_id, fields in items:
            item = self._raw(event_id, fields)
            if item[0] > cache.cursor:
                raw.append(item)
                cache.cursor = item[0]
        shown = cache.holder.feed(raw)
        for entry in shown:
            if entry[0] <= cache.start:
                continue    # held from before a restart: read from Redis
            cache.positions.append(entry[0])
            cache.entries.append(entry)
            cache.head = entry[0]
        excess = len(cache.positions) - self.historySize
        if excess >= max(1, self.historySize // 4):
            cache.start = cache.positions[excess - 1]
            del cache.positions[:excess]
            del cache.entries[:excess]
        return bool(shown)

    def _notify(self, group_ids):
        if not group_ids:
            return
        for listener in self._listeners:
            try:
                listener(group_ids)
            except Exception:
                log.exception('a broker listener failed')
