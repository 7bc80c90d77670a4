"""Presence in one process: who has pages in which group (IPresence).

The memory broker is one; the manager uses one of its own with a broker
that does not provide IPresence. The Redis broker shares presence between
processes instead (see redispresence.py).
"""

import threading

from zope.interface import implementer

from zorg.live.interfaces import IPresence


@implementer(IPresence)
class LocalPresence:
    """{group id: {principal id: set of page ids}} under one lock."""

    shared = False

    def __init__(self):
        self._presenceLock = threading.Lock()
        self._groups = {}

    def join(self, group_id, principal_id, title, page):
        with self._presenceLock:
            members = self._groups.setdefault(group_id, {})
            pages = members.get(principal_id)
            if pages is None:
                members[principal_id] = {page}
                return True
            pages.add(page)
            return False

    def leave(self, group_id, principal_id, page):
        with self._presenceLock:
            members = self._groups.get(group_id, {})
            pages = members.get(principal_id, ())
            if page not in pages:
                return False      # unknown, or left already
            pages.discard(page)
            if pages:
                return False
            del members[principal_id]
            if not members:
                del self._groups[group_id]
            return True

    def members(self, group_id):
        with self._presenceLock:
            return sorted(self._groups.get(group_id, ()))

    def isOnline(self, principal_id):
        with self._presenceLock:
            return any(principal_id in members
                       for members in self._groups.values())

    # Nothing here changes by itself (no other process, no expiry), so
    # listeners are never called.

    def addPresenceListener(self, callback):
        pass

    def removePresenceListener(self, callback):
        pass
