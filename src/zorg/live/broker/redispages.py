"""Page records shared by every process on one Redis (IPageRecords of
RedisBroker), so that any process can serve any page id.

Data (``<prefix>`` is ``zorg:live:`` unless configured)::

    <prefix>page:<page id>   STRING  JSON of the page's record (principal,
                                     title, group, presence, anonymous,
                                     cursor), expiring after `ttl` seconds
    <prefix>inputs:<page id> HASH    input id -> recorded answer of the
                                     page's inputs (page/inputonce.py)
    <prefix>inputo:<page id> LIST    their ids, oldest first (the bound)
    <prefix>inputc:<page id>:<input id>
                             STRING  the claim of a run of that input, with
                                     a deadline (PX)

Registering a page is one SET with EX; a process that gets a request for a
page id it does not know reads the record with one GET and *adopts* the
page (see LivePageManager.adopt). The processes that serve a page push its
expiry on with a pipelined EXPIRE now and then (refresh), so a page that
is alive somewhere stays adoptable, and the record of a page that stopped
asking goes away by itself; an explicit close deletes it at once.
"""

import json
import logging

from zorg.live.interfaces import InputUnknown

log = logging.getLogger('zorg.live.broker.redis')

# Claim an input id unless it is recorded (-> {1, answer}), another run
# holds it or its transaction is in flight (-> {0, 0}), or that
# transaction's outcome is unknown (-> {2, 0}); -> {0, 1} when claimed.
# KEYS hash, claim, the in-flight logs (redis.py); ARGV
# input id, token, ttl ms, deadline (ms of Redis's clock). Past the
# deadline it claims nothing: a hung Redis that runs the call when it
# wakes up, after the caller gave up (503), must not leave a claim that
# refuses the input's resend until it expires.
CLAIM = """
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    > tonumber(ARGV[4]) then
  return redis.error_reply('LATE the caller gave up on this claim')
end
local answer = redis.call('HGET', KEYS[1], ARGV[1])
if answer then
  local token = string.match(answer, '^!(%S+) ')
  if not token then return {1, answer} end
  -- Written by a transaction in flight (pending.py): running until it
  -- is resolved; once swept, its outcome is unknown.
  if redis.call('HEXISTS', KEYS[3], token) == 1 then return {0, 0} end
  return {2, 0}
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {0, 1}
end
if redis.call('GET', KEYS[2]) == ARGV[2] then return {0, 1} end
return {0, 0}
"""

# Release a claim if it is still the caller's. KEYS claim; ARGV token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""


class RedisPages:
    """The page records of one RedisBroker (see the module's docstring)."""

    def __init__(self, client, prefix, unavailable, errors, script=None,
                 tag=None):
        # script(text) -> a redis-py Script (the broker's way of running
        # them); tag(page id) -> the page id as it stands in its keys (a
        # Redis Cluster puts a page's keys in one slot: '{<page id>}').
        script = script or client.register_script
        self._tag = tag or (lambda uuid: uuid)
        self._redis = client
        self._prefix = prefix + 'page:'
        self._unavailable = unavailable
        self._errors = errors
        self._claim = script(CLAIM)
        self._release = script(RELEASE)

    def _pageKey(self, uuid):
        return self._prefix + self._tag(uuid)

    def save(self, uuid, record, ttl):
        text = json.dumps(record, separators=(',', ':'))
        try:
            self._redis.set(self._pageKey(uuid), text, ex=max(1, int(ttl)))
        except self._errors as e:
            raise self._unavailable(e)

    def load(self, uuid):
        try:
            text = self._redis.get(self._pageKey(uuid))
        except self._errors as e:
            raise self._unavailable(e)
        if text is None:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def refresh(self, uuids, ttl):
        # Best effort: a record that expires meanwhile only costs its page
        # one registration (404, register again from lastEventId).
        if not uuids:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for uuid in uuids:
                pipe.expire(self._pageKey(uuid), max(1, int(ttl)))
            pipe.execute()
        except self._errors as e:
            log.warning('could not refresh %d page records: %s',
                        len(uuids), e)

    def inputKeys(self, uuid, inputId=None):
        """The keys of a page's input records: answers (HASH) and their
        order (LIST), and with `inputId` the claim of that id."""
        base = self._prefix[:-len('page:')]
        uuid = self._tag(uuid)
        keys = [base + 'inputs:' + uuid, base + 'inputo:' + uuid]
        if inputId is not None:
            keys.append(base + 'inputc:' + uuid + ':' + inputId)
        return keys

    def claimInput(self, uuid, inputId, token, ttl, deadline, flights):
        # Called inside RedisBroker._guarded, which turns Redis's failures
        # (and a LATE claim) into BrokerUnavailable.
        answers, _order, claim = self.inputKeys(uuid, inputId)
        found, value = self._claim(keys=[answers, claim, flights],
                                   args=[inputId, token,
                                         max(1, int(ttl * 1000)), deadline])
        if found == 2:
            raise InputUnknown(
                'input %s ran in a transaction whose process did not '
                'finish it: whether it was stored is not known; reload the '
                'page to see' % inputId[:64])
        if found:
            return value, False
        return None, bool(value)

    def releaseInput(self, uuid, inputId, token):
        # Best effort: a claim left behind expires by itself.
        try:
            self._release(keys=[self.inputKeys(uuid, inputId)[2]],
                          args=[token])
        except self._errors as e:
            log.warning('could not release an input claim (it expires by '
                        'itself): %s', e)

    def drop(self, uuid):
        try:
            self._redis.delete(self._pageKey(uuid), *self.inputKeys(uuid))
        except self._errors as e:
            # It expires by itself.
            log.warning('could not delete a page record: %s', e)
