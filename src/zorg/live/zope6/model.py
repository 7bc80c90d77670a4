"""``<live:update>`` on Zope 6: OFS object events update the pages.

The core's ModelUpdate is used with three Zope answers:

- the group of an object is its physical path (as the Zope LivePage's);
- the fragment is rendered with the request ZPublisher is publishing
  (zope.globalrequest), so Five views render with acquisition and the
  site's browser layers;
- each viewer gets the fragment as rendered for them (DESIGN.md, promise
  8): once per distinct AccessControl security context online in the
  group -- each user on a page of the group, found in the user folder
  that knows them (a Plone portal's, or the root's), and one for anonymous
  pages -- with Zope's security manager of that user and a clone of the
  request whose AUTHENTICATED_USER is that user. Equal renderings are
  published once, to all of their viewers. A listing that shows only
  what its viewer may view (a catalog search, or checkPermission per
  item) so shows a private item only to those who may view it.

The updates are published after the transaction commits (the core's
publishOnCommit).
"""

from AccessControl import getSecurityManager
from AccessControl.SecurityManagement import (
    newSecurityManager, setSecurityManager)
from AccessControl.SpecialUsers import nobody
from Acquisition import aq_base, aq_chain, aq_inner
from zope.component.hooks import getSite, setSite
from zope.globalrequest import getRequest, setRequest

from zorg.live.core import audience
from zorg.live.page import model as core
from zorg.live.zope6.page import physicalGroup


def findUser(obj, userid):
    """The user `userid` as Zope's security sees it at `obj`: from the
    nearest user folder above it that knows them, wrapped in it."""
    for item in aq_chain(aq_inner(obj)):
        if getattr(aq_base(item), 'acl_users', None) is None:
            continue
        folder = item.acl_users
        user = folder.getUserById(userid)
        if user is not None:
            return user.__of__(folder)
    return None


def viewerRequest(request, user):
    """A request like `request` (its environ, browser layers, language)
    for rendering as `user`: a clone, so nothing a view caches on the
    request (plone.memoize) passes from one viewer to another."""
    if request is None or not hasattr(request, 'clone'):
        return request
    clone = request.clone()
    clone['AUTHENTICATED_USER'] = user
    return clone


class ModelUpdate(core.ModelUpdate):
    """The subscriber that one ``<live:update>`` declares, on Zope."""

    def __init__(self, view, target, group=None):
        super().__init__(view, target, group or physicalGroup)

    def render(self, obj, request=None):
        return super().render(obj, request or getRequest())

    def renderAs(self, obj, user):
        """The fragment as `user` (a wrapped Zope user, or nobody) sees
        it; the editor's security manager, request and site are put
        back."""
        editor = getRequest()
        request = viewerRequest(editor, user)
        saved, site = getSecurityManager(), getSite()
        newSecurityManager(request, user)
        setRequest(request)
        try:
            return self.render(obj, request)
        finally:
            # Closing the clone ends it as a request (EndRequestEvent,
            # which clears the site): first, then everything is put back.
            if request is not editor and hasattr(request, 'close'):
                request.close()
            setSite(site)
            setSecurityManager(saved)
            setRequest(editor)

    def renderings(self, obj, group_id, manager):
        """``[(audience, html)]``: one rendering per user online in the
        group and one for anonymous pages; equal ones merged."""
        byHTML = {}
        for userid in manager.whoIsOnline(group_id):
            user = findUser(obj, userid)
            if user is None:
                continue      # gone meanwhile: nobody to render for
            html = self.renderAs(obj, user)
            if html is not None:
                byHTML.setdefault(html, []).append(userid)
        result = [(audience.principals(ids), html)
                  for html, ids in byHTML.items()]
        html = self.renderAs(obj, nobody)
        if html is not None:
            result.append((audience.anonymous(), html))
        return result


def updateDirective(_context, for_, view, target, event=None):
    """``<live:update>`` under Zope: the core's, with ModelUpdate above."""
    core.updateDirective(_context, for_, view, target, event,
                         factory=ModelUpdate)
