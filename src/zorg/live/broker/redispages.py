"""Page records shared by every process on one Redis (IPageRecords of
RedisBroker), so that any process can serve any page id.

Data (``<prefix>`` is ``zorg:live:`` unless configured)::

    <prefix>page:<page id>   STRING  JSON of the page's record (principal,
                                     title, group, presence, anonymous,
                                     cursor), expiring after `ttl` seconds
    <prefix>inputs:<page id> HASH    input id -> recorded answer of the
                                     page's inputs (page/inputonce.py)
    <prefix>inputo:<page id> LIST    their ids, oldest first (the bound)

Registering a page is one SET with EX; a process that gets a request for a
page id it does not know reads the record with one GET and *adopts* the
page (see LivePageManager.adopt). The processes that serve a page push its
expiry on with a pipelined EXPIRE now and then (refresh), so a page that
is alive somewhere stays adoptable, and the record of a page that stopped
asking goes away by itself; an explicit close deletes it at once.
"""

import json
import logging

log = logging.getLogger('zorg.live.broker.redis')

# Record an input's answer and forget the oldest beyond the bound, in one
# round trip: KEYS hash, list; ARGV input id, answer, keep, ttl.
REMEMBER = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  while redis.call('LLEN', KEYS[2]) > tonumber(ARGV[3]) do
    redis.call('HDEL', KEYS[1], redis.call('LPOP', KEYS[2]))
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
"""


class RedisPages:
    """The page records of one RedisBroker (see the module's docstring)."""

    def __init__(self, client, prefix, unavailable, errors):
        self._redis = client
        self._prefix = prefix + 'page:'
        self._unavailable = unavailable
        self._errors = errors
        self._remember = client.register_script(REMEMBER)

    def save(self, uuid, record, ttl):
        text = json.dumps(record, separators=(',', ':'))
        try:
            self._redis.set(self._prefix + uuid, text, ex=max(1, int(ttl)))
        except self._errors as e:
            raise self._unavailable(e)

    def load(self, uuid):
        try:
            text = self._redis.get(self._prefix + uuid)
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
                pipe.expire(self._prefix + uuid, max(1, int(ttl)))
            pipe.execute()
        except self._errors as e:
            log.warning('could not refresh %d page records: %s',
                        len(uuids), e)

    def _inputKeys(self, uuid):
        base = self._prefix[:-len('page:')]
        return base + 'inputs:' + uuid, base + 'inputo:' + uuid

    def recallInput(self, uuid, inputId):
        try:
            return self._redis.hget(self._inputKeys(uuid)[0], inputId)
        except self._errors as e:
            raise self._unavailable(e)

    def rememberInput(self, uuid, inputId, answer, keep, ttl):
        try:
            self._remember(keys=self._inputKeys(uuid),
                           args=[inputId, answer, keep, max(1, int(ttl))])
        except self._errors as e:
            raise self._unavailable(e)

    def drop(self, uuid):
        try:
            self._redis.delete(self._prefix + uuid, *self._inputKeys(uuid))
        except self._errors as e:
            # It expires by itself.
            log.warning('could not delete a page record: %s', e)
