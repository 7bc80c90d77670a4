"""Test instrumentation: count the ZODB connections the instance opens.

ZODB's ActivityMonitor is told of every connection that closes; the test
instance installs one when the database opens, and ``@@zodb-connections``
answers how many connections have closed so far (the connection of that
request itself closes after it answers, so it counts in the next answer).
"""

from Products.Five.browser import BrowserView
from ZODB.ActivityMonitor import ActivityMonitor


def installMonitor(event):
    event.database.setActivityMonitor(ActivityMonitor(history_length=86400))


class ConnectionCount(BrowserView):
    """How many ZODB connections have been opened and closed."""

    def __call__(self):
        self.request.response.setHeader('Content-Type', 'text/plain')
        monitor = self.context._p_jar.db().getActivityMonitor()
        return str(len(monitor.log))


class AddThenFail(BrowserView):
    """Adds a folder (which notifies the container's modification), then
    fails: ZPublisher aborts the transaction."""

    def __call__(self, id):
        self.context.manage_addFolder(id)
        raise RuntimeError('failing after adding %s, on purpose' % id)


class AddPrivate(BrowserView):
    """Adds a folder that only managers may view (its View permission is
    set before it is added, so the one ContainerModifiedEvent already
    sees it private)."""

    def __call__(self, id):
        from OFS.Folder import Folder
        folder = Folder(id)
        folder._View_Permission = ('Manager',)   # not acquired
        self.context._setObject(id, folder)
        return 'added'
