"""The server-side record of one open page (LivePageClient) and page ids."""

import secrets
import time

from zope.interface import implementer, provider

from zorg.live.interfaces import ILivePageClient, IPageIdGenerator


@provider(IPageIdGenerator)
def randomPageId():
    """128 random bits as URL-safe text: unguessable, never reused."""
    return secrets.token_urlsafe(16)


def redact(uuid):
    """A page id as it may appear in logs and messages (not the capability)."""
    return '%s...' % uuid[:4]


@implementer(ILivePageClient)
class LivePageClient:
    """One open page. Settings are class attributes so a site (or a test,
    as in the original README) can change them for every page at once."""

    refreshInterval = 25.0   # below common proxy timeouts (30-60 s)
    clientTimeout = 60.0     # a silent page is dropped after this
    heartbeatInterval = 15.0  # SSE comment lines keep proxies from closing

    def __init__(self, uuid, principal, group_id, title='', presence=False,
                 anonymous=False):
        self.uuid = uuid
        # Anonymous visitors share one principal id: they are neither
        # online (presence) nor capped per principal.
        self.anonymous = anonymous
        self.principal = principal
        self.title = title
        self.group_id = group_id
        self.presence = presence
        self.delivery = None      # set by the manager on registration
        self.refused = False      # over the per-principal cap
        self.adopted = False      # made from the record of another process
        self.transport = None     # 'longpoll' or 'sse' once it asked
        self.active = 0           # output requests or streams open now
        self.lastSeen = time.monotonic()

    def touch(self):
        self.lastSeen = time.monotonic()

    def expired(self, now):
        # Never less than two long-poll waits: a page that waits as it is
        # told must not be dropped for it (a stream is active: never).
        timeout = max(self.clientTimeout, 2 * self.refreshInterval)
        return self.active == 0 and now - self.lastSeen > timeout

    def __repr__(self):
        return '<LivePageClient %s of %r in %r>' % (
            redact(self.uuid), self.principal, self.group_id)
