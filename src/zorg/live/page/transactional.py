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
  (``IBroker.publishMany``: all appended or none), and in the same call
  records the answers of the inputs that ran the transaction
  (zorg.live.page.inputonce) and enters the transaction *in flight*. If
  that fails (the broker is down, or hangs until its timeout, or an input
  was recorded by another run meanwhile), the vote fails, the transaction
  aborts and *nothing is stored*: the request answers 503 and the user
  may try again. This call is the transaction's one atomic point: its
  events and its input records become true there, together, or not at
  all.
* What the vote writes is *pending* (zorg.live.broker.pending): no page
  is shown its events, and a resend of its inputs waits, until the
  transaction is resolved. If the vote succeeds, the database finishes
  the commit, and then the finish here *confirms* it: the events are
  shown where they stand in the logs (in commit order: the vote ran
  under the storage's commit lock). An abort after the vote *cancels*
  them. A process that dies between its vote and its finish resolves
  nothing: at the in-flight deadline the broker sweeps the transaction
  as *unknown*, its pages reload, and a resend of its inputs is told
  ``input-unknown`` (never run twice, never answered as if stored).
* While it is in flight, no request's mark passes its events (rule 10 of
  delivery.py): a page rendered from a snapshot that does not show the
  transaction still receives its events.

So a message is either stored and published, or refused and stored
nowhere. The price: while the broker call runs, the storage's commit lock
is held, so a hung broker delays other commits by up to its timeout. A
broker that is known to be unavailable (its health says so) is refused at
once, without waiting.

Outside a transaction that a server began for a request, publishing is
immediate and a failure raises to the caller (LivePageManager.publish).
"""

import logging
import secrets

import transaction
import zope.component
from zope.interface import implementer
from transaction.interfaces import IDataManager

from zorg.live.interfaces import BrokerUnavailable, ILivePageManager
from zorg.live.page.event import Reload, encode
from zorg.live.page.wire import errorBody, setHeaders, unavailableHead

log = logging.getLogger('zorg.live.page.transactional')

# Sorts after any storage's key (paths, host:port, names): votes last.
SORT_KEY = '~~zorg.live.publish'


@implementer(IDataManager)
class PublishingDataManager:
    """The events of one transaction and the records of the inputs that
    ran it, published in its vote; the transaction is *in flight* in the
    broker from its vote to its finish (rule 10 of delivery.py)."""

    def __init__(self, manager):
        self.manager = manager
        self.transaction_manager = transaction.manager
        self.items = []     # (event, group_id, audience)
        self.inputs = []    # IInputRecords' input tuples (inputonce.Claim)
        self.flight = None  # the broker's in-flight token after the vote
        self.groups = []    # the groups its events went to

    def add(self, event, group_id, audience):
        self.items.append((event, group_id, audience))

    def sortKey(self):
        return SORT_KEY

    def abort(self, txn):
        self._forget(committed=False)

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        if not self.items and not self.inputs:
            return
        broker = self.manager.broker
        health = getattr(broker, 'health', None)
        if health is not None and not health().get('connected', True):
            raise BrokerUnavailable(
                'the message broker is unavailable: nothing was stored; '
                'try again shortly')
        # One broker call: the events, the input records and the
        # transaction's in-flight entry, all of them or none.
        flight = secrets.token_hex(8)
        self.manager.publishMany(self.items, inputs=self.inputs,
                                 inFlight=flight)
        self.groups = list(dict.fromkeys(g for _e, g, _a in self.items))
        self.flight = flight
        self.items, self.inputs = [], []

    def tpc_finish(self, txn):
        # The storage has finished (it sorts first): the data are visible
        # to every new snapshot, so the events may be shown and marks may
        # pass them now.
        if not self._forget(committed=True):
            # The broker lost the transaction between its vote and now (a
            # Redis restarted empty): its events are gone, and a page
            # registered meanwhile shows the change neither in its HTML
            # nor on its stream. Its groups' pages reload, now that the
            # data are stored.
            for group_id in self.groups:
                try:
                    self.manager.publish(Reload(), group_id)
                except BrokerUnavailable as e:
                    log.warning('could not tell the pages of %s to reload '
                                'after the broker lost a transaction: %s',
                                group_id, e)

    def tpc_abort(self, txn):
        self._forget(committed=False)

    def _forget(self, committed):
        """Forget the transaction, confirming or cancelling what its vote
        wrote; False when the broker had lost it."""
        self.items, self.inputs = [], []
        flight, self.flight = self.flight, None
        if flight is None:
            return True
        return self.manager.broker.finished(flight, committed)


def _dataManager(manager, txn=None):
    if manager is None:
        manager = zope.component.getUtility(ILivePageManager)
    txn = txn if txn is not None else transaction.get()
    try:
        return txn.data(manager)
    except KeyError:
        dm = PublishingDataManager(manager)
        txn.set_data(manager, dm)
        txn.join(dm)
        return dm


def publishOnCommit(event, group_id, manager=None, audience=None):
    """Publish `event` to `group_id` (maybe only to `audience`) when the
    current transaction commits: with its other events, in its vote."""
    dm = _dataManager(manager)
    # Encoded now, in the handler's thread and with its error: a bad event
    # fails the request, not the vote.
    encode(event)
    dm.add(event, group_id, audience)


def recordOnCommit(record, manager=None, txn=None):
    """Write an input's record (zorg.live.page.inputonce) in the vote of
    `txn` (the current transaction), in the call that publishes its
    events."""
    _dataManager(manager, txn).inputs.append(record)


class BrokerUnavailableView:
    """The answer when a request failed with BrokerUnavailable (its
    transaction did not commit): 503, the JSON error, and when to retry."""

    retryAfter = 5

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        response = self.request.response
        response.setStatus(503)
        setHeaders(response, unavailableHead(self.retryAfter))
        return errorBody(self.context)
