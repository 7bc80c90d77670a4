"""/favicon.ico: a plain 404 (bluebream.zcml registers it).

Browsers ask every site for /favicon.ico. Without this view the request
ends in NotFound, which the error reporting utility logs as an ERROR with
a traceback on every page view. A site with an icon registers its own
``favicon.ico`` (a resource or a more specific page) instead.
"""

from zope.publisher.browser import BrowserView


class NoFavicon(BrowserView):

    def __call__(self):
        self.request.response.setStatus(404)
        self.request.response.setHeader('Content-Type', 'text/plain')
        return 'This site has no icon.'
