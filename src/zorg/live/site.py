"""Views every zorg.live site needs around the Zope publisher (registered
by bluebream.zcml)."""

from zope.authentication.interfaces import IAuthentication
from zope.component import getUtility
from zope.publisher.browser import BrowserView


class UnauthorizedView(BrowserView):
    """The view of Unauthorized: the authentication utility challenges the
    browser (HTTP basic auth: 401 with WWW-Authenticate); a logged-in
    principal who may not do something gets 403."""

    def __call__(self):
        request = self.request
        getUtility(IAuthentication).unauthorized(request.principal.id,
                                                 request)
        if request.response.getStatus() != 401:
            request.response.setStatus(403)
        request.response.setHeader('Content-Type', 'text/plain;charset=utf-8')
        return 'You may not do this as %s; log in as a user who may.' % (
            getattr(request.principal, 'title', request.principal.id))
