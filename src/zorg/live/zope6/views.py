"""The ``@@client`` view of a Zope LivePage.

The core's ClientView speaks the wire protocol; on Zope three things
differ, and only these are overridden here:

- the page permission is Zope's (AccessControl): the core's check asks
  zope.security, which knows nothing of Five's declarations and lets
  everything through;
- ZPublisher keeps a request body that is not a form in ``BODYFILE``
  (zope.publisher calls it ``bodyStream``);
- ZPublisher's ``getURL()`` takes no level: the page's URL is ``URL2``.
"""

import io

from AccessControl import getSecurityManager
from AccessControl.PermissionRole import rolesForPermissionOn
from Acquisition import aq_inner

from zorg.live.interfaces import Forbidden
from zorg.live.page import views as core


class ClientView(core.ClientView):
    """The wire protocol of a Zope LivePage (``@@client/...``)."""

    def __call__(self):
        request = self.request
        # A request looks up attributes it lacks in `other`; for a JSON
        # body ZPublisher leaves the WSGI input unread in BODYFILE.
        body = request.get('BODYFILE')
        request.other['bodyStream'] = body if body is not None else (
            io.BytesIO())
        return super().__call__()

    def checkPagePermission(self):
        # Five protects the page with its permission (a PermissionRole in
        # the class's __roles__, which ZPublisher checks when it publishes
        # the page); the view is not wrapped in acquisition, so ask for the
        # roles of that permission on the page's context.
        page = self.page
        for klass in type(page).__mro__:
            if '__roles__' in vars(klass):
                roles = vars(klass)['__roles__']
                break
        else:   # no declaration at all: not published by Five, refuse
            raise Forbidden('This page declares no permission.')
        if roles is None:     # zope.Public
            return
        if hasattr(roles, '__of__'):   # a PermissionRole (C or Python)
            roles = rolesForPermissionOn(roles.__name__, aq_inner(page.context))
        user = getSecurityManager().getUser()
        if user is None or not user.allowed(aq_inner(page.context), roles):
            raise Forbidden('You may not use this page; log in first.')

    def pageURL(self):
        # ZPublisher's URL2 (the core's getURL(2) is zope.publisher's).
        return self.request['URL2']


class LiveConnectionView(core.LiveConnectionView):
    """``@@live`` on Zope: the user is AccessControl's, not the request's
    zope.security principal."""

    def principalId(self):
        from zorg.live.zope6.page import userInfo
        return userInfo()[0]
