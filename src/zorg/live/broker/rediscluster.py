"""The Redis broker on a Redis Cluster: ``broker redis+cluster://...``.

A cluster spreads keys over its masters (*shards*) by hash slot, and
refuses a command or a script whose declared keys lie in different slots
(CROSSSLOT), even on one node; an XREAD of several groups' logs is such a
command. So this broker is one RedisBroker per shard (`ShardBroker`, the
same Lua scripts and rules, see redis.py and pending.py), and a
`ClusterBroker` in front that sends each call to the shard of its key.

Keys (``<prefix>`` is ``zorg:live:``; a ``{...}`` is a hash tag: only it
decides the slot)::

    <prefix>log:{<group id>}        a group's log: one group, one shard
    <prefix>page:{<page id>}        a page's record, and beside it
    <prefix>inputs:{<page id>} ...  its input records and claims
    <prefix>{<anchor>}:inflight     a shard's transactions in flight,
    <prefix>{<anchor>}:flights      their logs (pending.py),
    <prefix>{<anchor>}:wake         what its scripts appended to,
    <prefix>{<anchor>}:ctl:<process> a reader's control stream,
    <prefix>{<anchor>}:presence:... the presence of its groups

The *anchor* of a shard is a tag found once at start (``zl0``, ``zl1``,
... the first whose slot that master serves, by the client's `keyslot`
and slot map), so a shard's own keys live on it.

* **Scripts.** A shard's scripts touch keys of several slots of that
  shard (a log and the shard's in-flight set). They run on a connection to
  that master, declare one key (which routes and checks the call) and
  pass the others in ARGV; the script head (`SHARD_HEAD`) puts them back
  in KEYS, and its shebang flag ``allow-cross-slot-keys`` (redis-server
  7.0) lets it use them. redis-py's RedisCluster is used for what it does
  well: finding the masters and the slot of a key (its public
  `get_primaries`, `get_node_from_key`).

* **A transaction on several shards** (publishMany) makes one PUBLISH
  call per shard it touches, at once, all pending with the same token: a
  shard gets the events of its groups and, for each input record of a
  page on it, that record (a shard may get only records). If any call
  fails, the shards that succeeded RESOLVE 'x' (cancelled) and the vote
  fails: 503, nothing stored, nothing shown. The finish resolves the
  token on every shard touched. A claim (CLAIM) runs on its page's shard
  and sees that shard's in-flight entry of the token, which the vote wrote
  there with the record.

* **MARK** is the minimum over the shards of each one's (Redis's clock,
  lowest in flight): one round trip per shard per request that renders,
  sent at once (a thread pool), so it costs the slowest shard's round
  trip. The shards' clocks may differ: the minimum of them is at or
  before every shard's clock, so a skew only makes marks earlier (a page
  may be sent an event its HTML already shows; the client drops an event
  id it has). A shard that does not answer fails the mark (503): no mark
  can be proven before its pending entries.

* **Readers.** One reader thread per shard, because one connection blocks
  in one XREAD on one node, and an XREAD of several slots is refused.
  Each script that appends to logs also appends the names of those logs
  to its shard's *wake* stream (bounded to WAKE_LENGTH entries); the
  reader blocks in XREAD on the wake stream and its control stream (one
  slot: the anchor), then reads the named logs it watches with XRANGE
  (pipelined). It reads every watched log (not only the named) after a
  (re)connection, after its set of groups changed, and when it fell
  behind the wake stream (a full answer: entries it skipped may have been
  trimmed). The price: one more XADD per script call on the shard, and a
  wake-up costs the reader two round trips instead of one.

* **Presence** of a group lives on its shard, in keys of the shard's
  anchor (the presence scripts find the keys in their data, so they stay
  on one slot); `isOnline` asks every shard. Page records and input
  records have their page id's tag.

* **Faults.** Each shard has RedisBroker's own: a shard that hangs or
  dies makes its calls fail after `timeout` (then fast), and marks and
  votes 503 meanwhile; its reader reconnects when it is back (an empty
  shard: its pages are told ``recovered: false``). Health is connected
  when every shard's reader is.

* **Failover.** A shard is its master's slots, not its node: its
  connections (`ShardConnection`) connect to the shard's current `node`.
  Before a reader (re)connects it asks `ClusterBroker.follow`, which reads
  the slot map again (at most once a second) and moves every shard whose
  anchor a replica now serves (`moveTo`: its connections close, and
  connect there when next used). `broker-replicas` (WAIT, see redis.py's
  _replicated) works per shard as on one server. A resharding (slots
  moved between masters) is not followed: calls on the moved slots
  answer 503 until the processes are restarted.
"""

import concurrent.futures
import hashlib
import json
import logging
import secrets
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from zope.interface import implementer

from zorg.live.broker import redisurl
from zorg.live.broker.redis import UNAVAILABLE, RedisBroker
from zorg.live.broker.redisurl import redactURL
from zorg.live.interfaces import (
    BrokerUnavailable, IBroker, IInputRecords, IPageRecords, IPresence,
    InputRunning)

log = logging.getLogger(__name__)

# Entries a shard's wake stream keeps (about: MAXLEN ~), and the most a
# reader takes in one XREAD of it.
WAKE_LENGTH = 1000

# The head of a shard's scripts: KEYS[1] is declared, the other keys come
# first in ARGV after their count (ShardScript), and wake() names the logs
# a script appended to in the shard's wake stream (%s).
SHARD_HEAD = """#!lua flags=allow-cross-slot-keys
local KEYS, ARGV = (function(k, a)
  local n = tonumber(a[1])
  local keys = {k[1]}
  for i = 2, n do keys[i] = a[i] end
  return keys, {unpack(a, n + 1)}
end)(KEYS, ARGV)
local function wake(logs)
  if #logs > 0 then
    redis.call('XADD', [==[%s]==], 'MAXLEN', '~', '%d', '*',
               'k', cjson.encode(logs))
  end
end
"""


class ShardScript:
    """A script of a shard, called as redis-py's Script is."""

    def __init__(self, client, text):
        self.client = client
        self.script = text
        self.sha = hashlib.sha1(text.encode('utf-8')).hexdigest()

    def __call__(self, keys=(), args=(), client=None):
        client = client or self.client
        try:
            return client.evalsha(self.sha, *evalArgs(keys, args))
        except redis.exceptions.NoScriptError:
            # A restarted (empty) shard: load it again.
            client.script_load(self.script)
            return client.evalsha(self.sha, *evalArgs(keys, args))


def evalArgs(keys, args):
    """EVALSHA's arguments after the sha: the first key declared (it
    routes the call and is checked), the others first in ARGV after their
    count (SHARD_HEAD puts them back in KEYS)."""
    return [1, keys[0], len(keys)] + list(keys[1:]) + list(args)


def logKey(prefix, group_id):
    return prefix + 'log:{' + group_id + '}'


def pageKey(prefix, uuid):
    return prefix + 'page:{' + uuid + '}'


class ShardConnection(redis.Connection):
    """A connection to whichever node serves its shard's slots now: its
    address is the shard's `node` when it connects (as redis-py's
    SentinelManagedConnection is to a service's master)."""

    def __init__(self, shard, **kwargs):
        self.shard = shard
        super().__init__(**kwargs)

    # redis.Connection connects to self.host and self.port; the values
    # given to its constructor are the node at start, and ignored.
    host = property(lambda self: self.shard.node.host,
                    lambda self, value: None)
    port = property(lambda self: self.shard.node.port,
                    lambda self, value: None)


class ShardBroker(RedisBroker):
    """RedisBroker's rules on one master of a cluster (see the module).
    `follow()` (the ClusterBroker's) tells it which node serves its
    anchor's slots now; the reader asks before each (re)connection."""

    def __init__(self, node, anchor, url, where, follow=None, **settings):
        self.node = node
        self.anchor = anchor
        self._where = where
        self._follow = follow
        self._wakeCursor = '0-0'
        self._readAll = True
        super().__init__(url, **settings)

    def __repr__(self):
        return '<ShardBroker %s of %s>' % (self.node.name,
                                            redactURL(self.url))

    def _clients(self, url):
        options = dict(host=self.node.host, port=self.node.port,
                       username=self._where.username,
                       password=self._where.password,
                       decode_responses=True, socket_connect_timeout=2,
                       health_check_interval=0, retry=Retry(NoBackoff(), 0),
                       connection_class=ShardConnection, shard=self)
        return (redis.Redis(connection_pool=redis.ConnectionPool(
                    socket_timeout=self.timeout, **options)),
                redis.Redis(connection_pool=redis.ConnectionPool(
                    socket_timeout=self.block + 10, **options),
                    single_connection_client=True))

    def moveTo(self, node):
        """Its slots are served by `node` now (a replica promoted): every
        connection is closed, and connects there when next used; calls in
        flight on the old node fail (503)."""
        log.warning('the Redis Cluster master %s of %s failed over to %s; '
                    'following it', self.node.name, redactURL(self.url),
                    node.name)
        self.node = node
        for client in (self._redis, self._reader):
            client.connection_pool.disconnect()
        self._reader.connection.disconnect()

    def _unavailable(self, error):
        # Name the master: the URL names the whole cluster.
        return super()._unavailable('master %s: %s' % (self.node.name,
                                                        error))

    def _script(self, text):
        return ShardScript(self._redis, SHARD_HEAD % (
            self._tagged('wake'), WAKE_LENGTH) + text)

    def _evalArgs(self, keys, args):
        return evalArgs(keys, args)

    def _key(self, group_id):
        return logKey(self.prefix, group_id)

    def _tagged(self, name):
        return '%s{%s}:%s' % (self.prefix, self.anchor, name)

    def _pageTag(self, uuid):
        return '{' + uuid + '}'

    def _restart(self):
        if self._follow is not None:
            self._follow(self)
        # Every log is read after this; the wake stream from its end.
        last = self._reader.xrevrange(self._tagged('wake'), count=1)
        self._wakeCursor = last[0][0] if last else '0-0'
        self._readAll = True
        super()._restart()

    def _fetch(self, cursors, block):
        if self._readAll:
            self._readAll = False
            return self._range(cursors, list(cursors))
        wake = self._tagged('wake')
        reply = self._reader.xread(
            {self._ctlKey: self._ctlCursor, wake: self._wakeCursor},
            count=WAKE_LENGTH, block=block) or []
        named = set()
        for key, items in reply:
            if not items:
                continue
            if key == self._ctlKey:
                # Its groups changed: the next round reads them all, from
                # a fresh picture of the caches.
                self._ctlCursor = items[-1][0]
                self._readAll = True
                continue
            self._wakeCursor = items[-1][0]
            if len(items) >= WAKE_LENGTH:
                # Fell behind: what it skipped may have been trimmed.
                self._readAll = True
            for _id, fields in items:
                named.update(logNames(fields.get('k')))
        if self._readAll:
            return []
        return self._range(cursors, [g for g in cursors
                                     if self._key(g) in named])

    def _range(self, cursors, groups):
        """What follows each group's cursor in its log (XRANGE, one
        pipeline per page of `readCount` entries)."""
        found = []
        pending = {group_id: cursors[group_id] for group_id in groups}
        while pending:
            pipe = self._reader.pipeline(transaction=False)
            order = list(pending)
            for group_id in order:
                pipe.xrange(self._key(group_id),
                            '(%d-%d' % pending[group_id], '+',
                            count=self.readCount)
            pending = {}
            for group_id, items in zip(order, pipe.execute()):
                if items:
                    found.append((group_id, items))
                if len(items) >= self.readCount:
                    ms, _sep, seq = items[-1][0].partition('-')
                    pending[group_id] = (int(ms), int(seq))
        return found


def logNames(text):
    """The log keys of a wake entry."""
    try:
        found = json.loads(text or '[]')
    except ValueError:
        return []
    return found if isinstance(found, list) else []


@implementer(IBroker, IPresence, IPageRecords, IInputRecords)
class ClusterBroker:
    """The broker on a Redis Cluster; see the module's docstring."""

    shared = True
    blocking = True
    prefix = RedisBroker.prefix

    def __init__(self, url, historySize=1000, prefix=None, streamTTL=None,
                 presenceTimeout=None, timeout=None, replicas=0,
                 commitTimeout=None):
        where = redisurl.parseCluster(url)
        if prefix is not None:
            self.prefix = prefix
        if '{' in self.prefix or '}' in self.prefix:
            raise ValueError('a Redis Cluster broker\'s key prefix cannot '
                             'have { or } (they make hash tags)')
        self.url = url
        self.historySize = historySize
        timeout = RedisBroker.timeout if timeout is None else timeout
        try:
            self.cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port)
                               for host, port in where.nodes],
                username=where.username, password=where.password,
                decode_responses=True, socket_connect_timeout=2,
                socket_timeout=timeout)
            primaries = self.cluster.get_primaries()
        except (redis.exceptions.RedisClusterException,) + UNAVAILABLE as e:
            raise BrokerUnavailable(
                'cannot reach the Redis Cluster broker at %s (%s): start '
                'it, or change the broker setting (<zorg-live> broker, '
                'ZORG_LIVE_BROKER)' % (redactURL(url), e))
        self.shards = {}
        self._mapLock = threading.Lock()
        self._mapRead = time.monotonic()
        settings = dict(historySize=historySize, prefix=self.prefix,
                        streamTTL=streamTTL, presenceTimeout=presenceTimeout,
                        timeout=timeout, commitTimeout=commitTimeout,
                        replicas=replicas)
        self._order = []    # the shards (by their masters at start)
        try:
            for node in sorted(primaries, key=lambda n: n.name):
                shard = ShardBroker(node, self._anchor(node), url, where,
                                    follow=self.follow, **settings)
                self.shards[node.name] = shard
                self._order.append(shard)
        except BaseException:
            for shard in self.shards.values():
                shard.close()
            self.cluster.close()
            raise
        # Calls to every shard at once (mark, votes, finishes): each waits
        # `timeout` at most.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4 * len(self._order),
            thread_name_prefix='zorg.live cluster')

    def __repr__(self):
        return '<ClusterBroker %s>' % redactURL(self.url)

    def _anchor(self, node):
        for n in range(1 << 20):
            tag = 'zl%d' % n
            if self.cluster.get_node_from_key('{%s}' % tag).name == node.name:
                return tag
        raise ValueError('no hash tag lands on %s' % node.name)

    def _shardOf(self, key):
        try:
            node = self.cluster.get_node_from_key(key)
        except redis.exceptions.RedisClusterException as e:
            raise BrokerUnavailable('the Redis Cluster at %s does not '
                                    'serve the slot of a key (%s)'
                                    % (redactURL(self.url), e))
        shard = self.shards.get(node.name)
        if shard is None:
            with self._mapLock:     # follow() is between map and shards
                shard = self.shards.get(node.name)
        if shard is None:
            raise BrokerUnavailable(
                'the Redis Cluster at %s moved slots to %s, which serves '
                'none of the shards this process knew at start (a '
                'resharding): restart it' % (redactURL(self.url), node.name))
        return shard

    # The slot map is read again at most this often (seconds).
    mapEvery = 1.0

    def follow(self, shard):
        """Called by a shard's reader before it (re)connects: read the
        slot map again (at most every `mapEvery` seconds, for all shards)
        and move every shard whose anchor is served by another node now,
        a replica promoted by a failover. Slots that moved between masters
        (a resharding) are not followed: see _shardOf."""
        with self._mapLock:
            due = time.monotonic() - self._mapRead >= self.mapEvery
            if due:
                self._mapRead = time.monotonic()
        if due:
            # Network I/O, so outside the lock (other readers and
            # _shardOf take it); redis-py serializes its own refreshes.
            try:
                self.cluster.nodes_manager.initialize()
            except (redis.exceptions.RedisClusterException,
                    redis.RedisError) as e:
                # The cluster is failing over: the reader backs off and
                # asks again.
                raise redis.ConnectionError(
                    'cannot read the Redis Cluster\'s slot map (%s)' % e)
        with self._mapLock:
            moved = {}
            for other in self._order:
                try:
                    node = self.cluster.get_node_from_key(
                        '{%s}' % other.anchor)
                except redis.exceptions.RedisClusterException:
                    continue    # not covered now: the next time
                if node.name != other.node.name:
                    moved[other] = node
            for other, node in moved.items():
                other.moveTo(node)
            if moved:
                self.shards = {s.node.name: s for s in self._order}

    def shardOf(self, group_id):
        """The ShardBroker of a group."""
        return self._shardOf(logKey(self.prefix, group_id))

    def _pageShard(self, uuid):
        return self._shardOf(pageKey(self.prefix, uuid))

    def _each(self, call, shards):
        """[(True, result) or (False, exception)] of call(shard) for each
        of `shards`, run at once."""
        def outcome(shard):
            try:
                return True, call(shard)
            except Exception as e:
                return False, e
        futures = [self._pool.submit(outcome, shard) for shard in shards[1:]]
        return [outcome(shards[0])] + [f.result() for f in futures]

    # -- IBroker -----------------------------------------------------------

    def publish(self, group_id, encode, audience=None):
        return self.shardOf(group_id).publish(group_id, encode, audience)

    def publishMany(self, items, inputs=(), inFlight=None):
        parts = {}     # shard -> ([item numbers], [input records])
        for number, item in enumerate(items):
            parts.setdefault(self.shardOf(item[0]), ([], []))[0].append(
                number)
        for record in inputs:
            parts.setdefault(self._pageShard(record[0]), ([], []))[1].append(
                record)
        if len(parts) <= 1:
            shard = next(iter(parts), self._order[0])
            return shard.publishMany(items, inputs, inFlight)
        # Several shards: pending on each with one token (an immediate
        # publish gets one of its own, confirmed at once), so that a
        # failure on one cancels the others.
        token = inFlight or secrets.token_hex(8)
        shards = list(parts)

        def vote(shard):
            numbers, records = parts[shard]
            return shard.publishMany([items[n] for n in numbers], records,
                                     token)
        outcomes = self._each(vote, shards)
        failed = [value for ok, value in outcomes if not ok]
        if failed:
            voted = [s for s, (ok, _v) in zip(shards, outcomes) if ok]
            if voted:
                self._each(lambda s: s.finished(token, committed=False),
                           voted)
            raise next((e for e in failed if isinstance(e, InputRunning)),
                       failed[0])
        if inFlight is None:
            self._each(lambda s: s.finished(token), shards)
        positions = [None] * len(items)
        for shard, (_ok, found) in zip(shards, outcomes):
            for number, position in zip(parts[shard][0], found):
                positions[number] = position
        return positions

    def finished(self, token, committed=True):
        shards = [s for s in self._order if token in s._flights]
        if not shards:
            return True
        outcomes = self._each(lambda s: s.finished(token, committed), shards)
        return all(ok and value for ok, value in outcomes)

    def mark(self):
        """The earliest of every shard's mark (see the module)."""
        marks = []
        for ok, value in self._each(lambda s: s.mark(), self._order):
            if not ok:
                raise value
            marks.append(value)
        return min(marks)

    def read(self, group_id, after, limit=1000):
        return self.shardOf(group_id).read(group_id, after, limit)

    def readStored(self, group_id, after, limit=1000):
        return self.shardOf(group_id).readStored(group_id, after, limit)

    def readLocal(self, group_id, after, limit=1000):
        return self.shardOf(group_id).readLocal(group_id, after, limit)

    def latest(self, group_id):
        return self.shardOf(group_id).latest(group_id)

    def latestLocal(self, group_id):
        return self.shardOf(group_id).latestLocal(group_id)

    def bounds(self, group_id):
        return self.shardOf(group_id).bounds(group_id)

    def base(self, group_id):
        return self.shardOf(group_id).base(group_id)

    def parsePosition(self, text):
        return self._order[0].parsePosition(text)

    def formatPosition(self, position):
        return self._order[0].formatPosition(position)

    def addListener(self, callback):
        for shard in self._order:
            shard.addListener(callback)

    def removeListener(self, callback):
        for shard in self._order:
            shard.removeListener(callback)

    def waitFor(self, group_id, after, timeout):
        return self.shardOf(group_id).waitFor(group_id, after, timeout)

    def dropGroup(self, group_id):
        self.shardOf(group_id).dropGroup(group_id)

    def groupCount(self):
        return sum(shard.groupCount() for shard in self._order)

    @property
    def available(self):
        return all(shard.available for shard in self._order)

    def health(self):
        shards = {name: shard.health()['connected']
                  for name, shard in self.shards.items()}
        errors = ['%s: %s' % (s.node.name, s.lastError)
                  for s in self._order if s.lastError]
        return {'kind': 'redis', 'url': redactURL(self.url),
                'connected': all(shards.values()),
                'error': '; '.join(errors) or None, 'shards': shards}

    # -- IPresence: a group's on its shard ------------------------------

    def join(self, group_id, principal_id, title, page):
        return self.shardOf(group_id).join(group_id, principal_id, title,
                                           page)

    def leave(self, group_id, principal_id, page):
        return self.shardOf(group_id).leave(group_id, principal_id, page)

    def members(self, group_id):
        return self.shardOf(group_id).members(group_id)

    def isOnline(self, principal_id):
        return any(shard.isOnline(principal_id) for shard in self._order)

    def addPresenceListener(self, callback):
        for shard in self._order:
            shard.addPresenceListener(callback)

    def removePresenceListener(self, callback):
        for shard in self._order:
            shard.removePresenceListener(callback)

    # -- IPageRecords and IInputRecords: on the page's shard -------------

    def savePage(self, uuid, record, ttl):
        self._pageShard(uuid).savePage(uuid, record, ttl)

    def loadPage(self, uuid):
        return self._pageShard(uuid).loadPage(uuid)

    def refreshPages(self, uuids, ttl):
        byShard = {}
        for uuid in uuids:
            byShard.setdefault(self._pageShard(uuid), []).append(uuid)
        for shard, some in byShard.items():
            shard.refreshPages(some, ttl)

    def dropPage(self, uuid):
        self._pageShard(uuid).dropPage(uuid)

    def claimInput(self, uuid, inputId, token, ttl):
        shard = self._pageShard(uuid)
        found = shard.claimInput(uuid, inputId, token, ttl)
        if found == (None, False):
            # Another run holds it, or a transaction in flight wrote it.
            # If that transaction's process died, a sweep (MARK) finds it
            # unknown; on one redis-server the readers of its logs sweep,
            # but its logs may be on other shards than its page: sweep
            # the page's shard (a round trip only in this case).
            shard.mark()
            found = shard.claimInput(uuid, inputId, token, ttl)
        return found

    def releaseInput(self, uuid, inputId, token):
        self._pageShard(uuid).releaseInput(uuid, inputId, token)

    def forgetInputs(self, uuid):
        pass    # dropPage deletes them with the record

    def close(self):
        for shard in self._order:
            shard.close()
        self._pool.shutdown(wait=False)
        self.cluster.close()


def makeRedisBroker(url, **settings):
    """The broker of a Redis URL of any form (redisurl.py)."""
    if url.startswith(redisurl.CLUSTER + ':'):
        return ClusterBroker(url, **settings)
    return RedisBroker(url, **settings)
