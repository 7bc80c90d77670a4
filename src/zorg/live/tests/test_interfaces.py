"""Every implementation provides its interface, as interfaces.py (the map
of the package) says. The brokers are verified by test_broker_contract.py,
the Redis presence there too (through the Redis broker)."""

import pytest
from zope.interface.verify import verifyClass, verifyObject
from zope.publisher.browser import TestRequest as Request

from zorg.live import interfaces as I
from zorg.live import testing
from zorg.live.broker.presence import LocalPresence
from zorg.live.broker.redispresence import RedisPresence
from zorg.live.core import events as event
from zorg.live.page.client import LivePageClient, randomPageId
from zorg.live.core.delivery import Delivery
from zorg.live.page.manager import (
    LivePageManager, PrincipalJoinedEvent, PrincipalLeftEvent)
from zorg.live.page.notify import Notification
from zorg.live.server.livehttp import LiveServer, liveServerType
from zorg.live.server.settings import Settings
from zorg.live.server.wsgihttp import WSGIServer, wsgiServerType


@pytest.fixture
def registry():
    testing.setUp()
    yield
    testing.tearDown()


def test_the_core(registry):
    manager = LivePageManager()
    verifyObject(I.ILivePageManager, manager)
    client = manager.register(LivePageClient('p', 'alice', 'g'))
    verifyObject(I.ILivePageClient, client)
    verifyObject(I.IDelivery, client.delivery)
    verifyObject(I.IPresenceEvent, PrincipalJoinedEvent(client))
    verifyObject(I.IPrincipalLeftEvent, PrincipalLeftEvent(client))
    verifyObject(I.IPresence, LocalPresence())
    verifyClass(I.IPresence, RedisPresence)
    verifyObject(I.IPageIdGenerator, randomPageId)
    verifyObject(I.INotification, Notification(None, None, 'g', 't', 'n',
                                               None))
    assert isinstance(Delivery(0), Delivery)


def test_the_page(registry):
    import zope.component
    zope.component.provideUtility(LivePageManager(), I.ILivePageManager)
    page = testing.TestLivePage(None, Request())
    page.render()
    verifyObject(I.ILivePage, page)


@pytest.mark.parametrize('made', [
    event.Append('t', 'x'), event.Prepend('t', 'x', key='k'),
    event.Update('t', 'x'), event.Replace('t', 'x'), event.Remove('t'),
    event.Custom('n', {'a': 1}), event.Idle(), event.Error('m'),
    event.Close('r'), event.Join('p', 'P'), event.Leave('p', 'P'),
    event.Progress('t', 0.5, 'half')])
def test_events(made):
    verifyObject(I.IEvent, made)


def test_the_servers(registry):
    settings = Settings(threads=1)
    verifyObject(I.IServerType, liveServerType)
    verifyObject(I.IServerType, wsgiServerType)
    live = LiveServer('s', None, '127.0.0.1', 0, settings)
    try:
        verifyObject(I.IServer, live)
    finally:
        live.socket.close()
    wsgi = WSGIServer('w', lambda e, s: [], '127.0.0.1', 0, settings)
    try:
        verifyObject(I.IServer, wsgi)
    finally:
        wsgi.server.close()
