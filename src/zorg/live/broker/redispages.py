"""Page records shared by every process on one Redis (IPageRecords of
RedisBroker), so that any process can serve any page id.

Data (``<prefix>`` is ``zorg:live:`` unless configured)::

    <prefix>page:<page id>   STRING  JSON of the page's record (principal,
                                     title, group, presence, anonymous,
                                     cursor), expiring after `ttl` seconds

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


class RedisPages:
    """The page records of one RedisBroker (see the module's docstring)."""

    def __init__(self, client, prefix, unavailable, errors):
        self._redis = client
        self._prefix = prefix + 'page:'
        self._unavailable = unavailable
        self._errors = errors

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

    def drop(self, uuid):
        try:
            self._redis.delete(self._prefix + uuid)
        except self._errors as e:
            # It expires by itself.
            log.warning('could not delete a page record: %s', e)
