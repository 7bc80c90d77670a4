"""The zope events of presence: a join is not a leave, nor the other way
round (subscribers register for one interface and must get only it)."""

from zorg.live.interfaces import IPrincipalJoinedEvent, IPrincipalLeftEvent
from zorg.live.page.client import LivePageClient
from zorg.live.page.manager import PrincipalJoinedEvent, PrincipalLeftEvent


def client():
    return LivePageClient('page-a', 'uwe', 'room')


def test_left_event_does_not_provide_joined_interface():
    assert not IPrincipalJoinedEvent.providedBy(PrincipalLeftEvent(client()))


def test_joined_event_does_not_provide_left_interface():
    assert not IPrincipalLeftEvent.providedBy(PrincipalJoinedEvent(client()))


def test_presence_event_carries_principal_and_group():
    event = PrincipalLeftEvent(client())
    assert (event.principal, event.group_id) == ('uwe', 'room')
