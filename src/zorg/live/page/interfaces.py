"""The interfaces of the page core, under the names of the original
zorg.live (``zorg.live.page.interfaces``). They are defined once, in
zorg.live.interfaces."""

from zorg.live.interfaces import (  # noqa: F401 (re-exported)
    IBroker, IDelivery, IEvent, ILivePage, ILivePageClient, ILivePageManager,
    IPageIdGenerator, IPresenceEvent, IPrincipalJoinedEvent,
    IPrincipalLeftEvent)
