"""Model-driven updates: an object event updates the pages showing the object.

A site developer declares, once, that an event of some objects re-renders a
fragment of the pages that show them::

    <configure xmlns:live="http://namespaces.zorg.org/live">
      <include package="zorg.live" file="meta.zcml" />
      <live:update
          for=".interfaces.ICounter"
          event="zope.lifecycleevent.interfaces.IObjectModifiedEvent"
          view="counter-value"
          target="counter" />
    </configure>

or in Python with `registerUpdate`. When such an event is notified (in the
worker thread that changed the object), zorg.live renders the named view of
the object *for each viewer*, and publishes ``Update(target, safe(html))``
to the group of the pages showing the object (its path, the default
LivePage group id), each rendering to the pages it was made for:

* one rendering per principal online in the group (any process), with an
  interaction of that principal, so a fragment that checks a permission
  (an "edit" link) shows what that viewer may see, not what the editor
  may;
* one rendering for the anonymous pages, as the unauthenticated
  principal.

Renderings that come out the same are published once, to all of their
principals. So an update costs one rendering per principal in the group
(plus one), never one per page, and nobody receives a fragment rendered
with somebody else's permissions. (Rendered with the editor's request's
other settings, its language among them.)

The update is published when the transaction commits (nothing is published
for a change that is rolled back or retried after a conflict); an object
that is not stored in a database is published at once; an object that has
no path (not located) shows on no page and publishes nothing. See
model.txt.
"""

import logging

import zope.component
import zope.interface
import zope.schema
from zope.configuration.fields import GlobalInterface, GlobalObject
from zope.interface import Interface
from zope.lifecycleevent.interfaces import IObjectModifiedEvent
from zope.publisher.interfaces import IRequest
from zope.security.management import queryInteraction
from zope.security.proxy import removeSecurityProxy

from zorg.live.interfaces import ILivePageManager
from zorg.live.core import audience as _audience
from zorg.live.core.events import Update, safe

log = logging.getLogger('zorg.live.model')


def currentRequest():
    """The request of the current interaction, or None (no request is
    being published in this thread)."""
    interaction = queryInteraction()
    if interaction is None:
        return None
    for participation in getattr(interaction, 'participations', ()):
        if IRequest.providedBy(participation):
            return participation
    return None


def groupOf(obj):
    """The group of the pages showing `obj`: its path (LivePage's default
    getGroupId)."""
    from zope.traversing.api import getPath
    return getPath(obj)


def publishOnCommit(event, group_id, manager=None):
    """Publish `event` to `group_id` when the current transaction commits;
    nothing is published when it aborts or fails (a conflict that the
    publisher retries runs the handler, and publishes, again), and a
    broker that cannot take it fails the commit: nothing is stored
    (zorg.live.page.transactional)."""
    from zorg.live.page.transactional import publishOnCommit as publish
    publish(event, group_id, manager)


class ModelUpdate:
    """The subscriber for (object, event) that one `live:update` declares."""

    def __init__(self, view, target, group=None):
        self.view = view
        self.target = target
        self.group = group or groupOf

    def __repr__(self):
        return '<ModelUpdate view=%r target=%r>' % (self.view, self.target)

    def render(self, obj, request=None):
        """The HTML of the view for `obj` (None when there is no such view),
        with the current security interaction."""
        if request is None:
            request = currentRequest()
        if request is None:
            from zope.publisher.browser import TestRequest
            request = TestRequest()
        view = zope.component.queryMultiAdapter((obj, request), name=self.view)
        if view is None:
            log.warning('live:update: no view %r for %r; no update published',
                        self.view, obj)
            return None
        # A fragment view must not change the answer of the request that
        # fired the event (e.g. its Content-Type); keep it as it was.
        response = getattr(request, 'response', None)
        ctype = response.getHeader('Content-Type') if response else None
        try:
            html = view()
        finally:
            if response is not None and ctype is not None:
                response.setHeader('Content-Type', ctype)
        return html

    def renderAs(self, obj, principal):
        """The HTML of the view for `obj` as `principal` sees it: rendered
        with a request and a security interaction of that principal."""
        from zope.publisher.browser import TestRequest
        from zope.security import management
        # The thread's interaction is swapped, not ended and begun again:
        # the editor's request keeps its own when this returns.
        from zope.security._definitions import thread_local
        editor = currentRequest()
        request = TestRequest(environ=dict(getattr(editor, 'environ', None)
                                           or {}))
        request.setPrincipal(principal)
        saved = getattr(thread_local, 'interaction', None)
        thread_local.interaction = management.getSecurityPolicy()(request)
        try:
            return self.render(obj, request)
        finally:
            thread_local.interaction = saved

    def renderings(self, obj, group_id, manager):
        """``[(audience, html)]``: one rendering per principal online in
        the group and one for anonymous pages; equal ones merged."""
        from zope.authentication.interfaces import (
            IAuthentication, IUnauthenticatedPrincipal, PrincipalLookupError)
        auth = zope.component.queryUtility(IAuthentication)
        if auth is None:
            # No principals to tell apart (a bare registry): one rendering.
            html = self.render(obj)
            return [] if html is None else [(None, html)]
        byHTML = {}
        for principal_id in manager.whoIsOnline(group_id):
            try:
                principal = auth.getPrincipal(principal_id)
            except PrincipalLookupError:
                continue      # gone meanwhile: nobody to render for
            html = self.renderAs(obj, principal)
            if html is not None:
                byHTML.setdefault(html, []).append(principal_id)
        anonymous = zope.component.queryUtility(IUnauthenticatedPrincipal)
        result = [(_audience.principals(ids), html)
                  for html, ids in byHTML.items()]
        if anonymous is not None:
            html = self.renderAs(obj, anonymous)
            if html is not None:
                result.append((_audience.anonymous(), html))
        return result

    def __call__(self, obj, event):
        # Declared by the site developer: trusted code, like a subscriber.
        obj = removeSecurityProxy(obj)
        try:
            group_id = self.group(obj)
        except (TypeError, LookupError):
            # Not located (not yet added, or removed): no page shows it.
            log.debug('live:update: %r has no path; nothing published', obj)
            return
        manager = zope.component.getUtility(ILivePageManager)
        for audience, html in self.renderings(obj, group_id, manager):
            update = Update(self.target, safe(html))
            if getattr(obj, '_p_jar', None) is not None:
                from zorg.live.page.transactional import publishOnCommit
                publishOnCommit(update, group_id, manager, audience)
            else:
                manager._publish(update, group_id, audience)


def registerUpdate(for_, view, target, event=IObjectModifiedEvent,
                   registry=None):
    """Python spelling of ``<live:update>``; returns the subscriber."""
    subscriber = ModelUpdate(view, target)
    if registry is None:
        registry = zope.component.getGlobalSiteManager()
    registry.registerHandler(subscriber, (for_, event))
    return subscriber


# -- the ZCML directive -----------------------------------------------------

class IUpdateDirective(Interface):
    """``<live:update for="..." event="..." view="..." target="..."/>``"""

    for_ = GlobalObject(
        title='The interface (or class) of the objects',
        required=True)

    event = GlobalInterface(
        title='The object event that changes them',
        description='Default: zope.lifecycleevent\'s IObjectModifiedEvent.',
        required=False)

    view = zope.schema.TextLine(
        title='The name of the view that renders the fragment',
        required=True)

    target = zope.schema.TextLine(
        title='The id of the element whose inner HTML the fragment replaces',
        required=True)


def updateDirective(_context, for_, view, target, event=None, factory=None):
    """``<live:update>``: subscribe `factory` (ModelUpdate, or a
    platform's subclass) to `event` of `for_`."""
    from zope.component.zcml import subscriber
    if event is None:
        event = IObjectModifiedEvent
    if not zope.interface.interfaces.IInterface.providedBy(for_):
        for_ = zope.interface.implementedBy(for_)
    subscriber(_context, for_=(for_, event),
               handler=(factory or ModelUpdate)(view, target))
