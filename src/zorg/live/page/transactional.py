"""Publishing in a transaction: the events go out when it commits, all of
them or none, and never when it aborts.

A handler that stores a chat message and publishes it, an ``<live:update>``
of a modified object, ``@@notify``: their events belong to the request's
transaction. They are collected by a data manager that joins the
transaction and publishes them in its vote, the second phase's last step
before anything is final:

* Data managers vote in the order of their sort keys, and this one's sorts
  after the database's. When it votes, the database has voted (conflicts
  were checked, the data are written but not yet final).
* It publishes all the transaction's events in one broker call
  (``IBroker.publishMany``: all appended or none). If that fails (the
  broker is down, or hangs until its timeout), the vote fails, the
  transaction aborts and *nothing is stored*: the request answers 503
  ``broker-unavailable`` and the user may try again.
* If it succeeds, the database finishes the commit (a finish cannot fail
  but for a crash of the machine).

So a message is either stored and published, or refused and stored
nowhere. The price: while the broker call runs, the storage's commit lock
is held, so a hung broker delays other commits by up to its timeout. A
broker that is known to be unavailable (its health says so) is refused at
once, without waiting.

Outside a transaction that a server began for a request, publishing is
immediate and a failure raises to the caller (LivePageManager.publish).
"""

import transaction
import zope.component
from zope.interface import implementer
from transaction.interfaces import IDataManager

from zorg.live.interfaces import BrokerUnavailable, ILivePageManager
from zorg.live.page.event import encode
from zorg.live.page.wire import errorBody

# Sorts after any storage's key (paths, host:port, names): votes last.
SORT_KEY = '~~zorg.live.publish'


@implementer(IDataManager)
class PublishingDataManager:
    """The events of one transaction, published in its vote."""

    def __init__(self, manager):
        self.manager = manager
        self.transaction_manager = transaction.manager
        self.items = []     # (event, group_id, audience)

    def add(self, event, group_id, audience):
        self.items.append((event, group_id, audience))

    def sortKey(self):
        return SORT_KEY

    def abort(self, txn):
        self._forget()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        if not self.items:
            return
        broker = self.manager.broker
        health = getattr(broker, 'health', None)
        if health is not None and not health().get('connected', True):
            raise BrokerUnavailable(
                'the message broker is unavailable: nothing was stored; '
                'try again shortly')
        self.manager.publishMany(self.items)
        self.items = []

    def tpc_finish(self, txn):
        self._forget()

    def tpc_abort(self, txn):
        self._forget()

    def _forget(self):
        self.items = []


def publishOnCommit(event, group_id, manager=None, audience=None):
    """Publish `event` to `group_id` (maybe only to `audience`) when the
    current transaction commits: with its other events, in its vote."""
    if manager is None:
        manager = zope.component.getUtility(ILivePageManager)
    txn = transaction.get()
    try:
        dm = txn.data(manager)
    except KeyError:
        dm = PublishingDataManager(manager)
        txn.set_data(manager, dm)
        txn.join(dm)
    # Encoded now, in the handler's thread and with its error: a bad event
    # fails the request, not the vote.
    encode(event)
    dm.add(event, group_id, audience)


class BrokerUnavailableView:
    """The answer when a request failed with BrokerUnavailable (its
    transaction did not commit): 503, the JSON error, and when to retry."""

    retryAfter = 5

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        response = self.request.response
        response.setStatus(503)
        response.setHeader('Content-Type', 'application/json')
        response.setHeader('Retry-After', str(self.retryAfter))
        return errorBody(self.context)
