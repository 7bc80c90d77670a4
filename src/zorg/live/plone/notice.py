"""The change notice: a model-driven update that respects View.

When a document is saved (IObjectModifiedEvent on Dexterity content), the
``live-changed`` fragment is rendered once and, after the transaction
commits, delivered to the principals on the document's pages who may
view it at that moment: nobody hears of content they may not see, even
if they opened it before it was made private.
"""

import transaction
import zope.component
from AccessControl.PermissionRole import rolesForPermissionOn
from Acquisition import aq_inner
from zope.globalrequest import getRequest

from zorg.live.interfaces import ILivePageManager
from zorg.live.page.event import Update, safe
from zorg.live.plone.interfaces import IZorgLiveLayer
from zorg.live.plone.settings import settings
from zorg.live.zope6.model import ModelUpdate

TARGET = 'zorg-live-notice'


def mayView(obj, userid):
    """Whether the user `userid` has View on `obj` (Plone's users)."""
    from plone.api import user as users
    user = users.get(userid=userid)
    if user is None:
        return False
    return bool(user.getUser().allowed(
        aq_inner(obj), rolesForPermissionOn('View', aq_inner(obj))))


class ChangeNotice(ModelUpdate):
    """Subscriber for (Dexterity content, IObjectModifiedEvent)."""

    def __call__(self, obj, event):
        request = getRequest()
        if request is None or not IZorgLiveLayer.providedBy(request):
            return      # not installed in this site
        current = settings()
        if current is None or not current.notify_changes:
            return
        group = self.group(obj)
        html = self.render(obj, request)
        if html is None:
            return
        update = Update(self.target, safe(html))
        manager = zope.component.getUtility(ILivePageManager)

        def deliver(committed):
            if not committed:
                return
            allowed = [p for p in manager.whoIsOnline(group)
                       if mayView(obj, p)]
            if allowed:
                manager.publishToPrincipals(update, group, allowed)
        transaction.get().addAfterCommitHook(deliver)


changeNotice = ChangeNotice('live-changed', TARGET)
