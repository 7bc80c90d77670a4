"""The change notice, and who hears of changes to who may view.

When a document is saved (IObjectModifiedEvent on Dexterity content), the
``live-changed`` fragment is rendered once and, after the transaction
commits, delivered to the pages of the document whose viewers may view it
at that moment (access.py: Plone's own View, asked as each of them).
With *Refresh the content in place*, each of them gets the new content
instead, rendered for them (refresh.py).

When who may view changes (a workflow transition, the sharing tab, a user
taken out of a group, global roles changed in the users or groups control
panel), the pages of those who lost View are told and closed after the
commit (access.revalidate).
"""

from html import escape

from plone.app.workflow.interfaces import ILocalrolesModifiedEvent
from zope.globalrequest import getRequest
from zope.i18n import translate

from zorg.live.core.events import Update, safe
from zorg.live.plone import access
from zorg.live.plone.interfaces import IZorgLiveLayer
from zorg.live.plone.messages import _
from zorg.live.plone.settings import settings
from zorg.live.plone.refresh import TARGET, refresh
from zorg.live.zope6.model import ModelUpdate


def installed():
    """The request being published, where the add-on is installed in its
    site (its browser layer); else None."""
    request = getRequest()
    if request is None or not IZorgLiveLayer.providedBy(request):
        return None
    return request


class ChangeNotice(ModelUpdate):
    """Subscriber for (Dexterity content, IObjectModifiedEvent)."""

    def __call__(self, obj, event):
        if ILocalrolesModifiedEvent.providedBy(event):
            return      # who may view changed, not the content: see below
        request = installed()
        if request is None:
            return
        current = settings()
        if current is None or not (current.notify_changes
                                   or current.refresh_in_place):
            return
        if current.refresh_in_place:
            from zorg.live.zope6.page import userInfo
            access.afterCommit(refresh.publish, obj, userInfo()[1], request)
            return
        html = self.render(obj, request)
        if html is None:
            return
        group = self.group(obj)
        update = Update(self.target, safe(html))
        access.afterCommit(access.publishToViewers, update, obj, group)


changeNotice = ChangeNotice('live-changed', TARGET)


def lostNotice(request):
    """(target, html) that the page of a viewer who lost View is told."""
    text = translate(_('lost_view', default='You may no longer view this '
                       'page.'), context=request)
    return TARGET, '<p class="zorg-live-lost">%s</p>' % escape(text)


def viewChanged(obj, event):
    """A workflow transition or a change of the sharing tab: check again
    who may view `obj` and what lies below it, after the commit."""
    request = installed()
    if request is None:
        return
    access.afterCommit(access.revalidate, obj, lostNotice(request))


def groupLeft(event):
    """A user left a group (or was deleted), or roles changed: the pages
    open anywhere in the site are checked again, after the commit."""
    request = installed()
    if request is None:
        return
    from plone import api
    access.afterCommit(access.revalidate, api.portal.get(),
                       lostNotice(request))


def roleViews():
    """Plone's control panels that change global roles (a user's, a
    group's); they notify no event of their own."""
    from Products.CMFPlone.controlpanel.browser import (
        usergroups_groupsoverview, usergroups_usersoverview)
    return (usergroups_usersoverview.UsersOverviewControlPanel,
            usergroups_groupsoverview.GroupsOverviewControlPanel)


def rolesChanged(event):
    """ZPublisher's IPubBeforeCommit: a form of the users or groups
    control panel was submitted: global roles may have changed, so the
    open pages of the site are checked again, after the commit."""
    request = event.request
    if request.get('REQUEST_METHOD') != 'POST':
        return
    published = request.get('PUBLISHED', None)
    view = getattr(published, '__self__', published)
    if isinstance(view, roleViews()):
        groupLeft(event)
