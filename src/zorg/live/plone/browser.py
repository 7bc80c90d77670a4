"""The presence viewlet on every page, its LivePage, and the change notice.

The viewlet does not render a page of its own: it asks the site for the
``@@live-presence`` LivePage of the context and registers a client for it
(before the HTML leaves the server, as every LivePage does). The page's
input and protocol steps go to ``<context>/@@live-presence/@@client/...``,
guarded by the page's permission (View).
"""

from html import escape

from Acquisition import aq_inner
from plone.app.layout.viewlets.common import ViewletBase
from Products.Five.browser import BrowserView
from zope.component import getMultiAdapter

from zorg.live.plone.settings import settings
from zorg.live.zope6.page import LivePage, userInfo


class PresencePage(LivePage):
    """The live page behind the viewlet: its group is the context."""

    presence = True
    presenceTarget = 'zorg-live-online'

    def clientURL(self):
        return '%s/@@live-presence/@@client/%s' % (
            aq_inner(self.context).absolute_url(), self.uuid)

    def renderBody(self):
        return ''


class PresenceViewlet(ViewletBase):
    """"Who else is here": the people on this page, kept live."""

    def update(self):
        super().update()
        self.page = None
        current = settings()
        if current is None:
            return
        if not (current.presence or current.notify_changes):
            return
        page = getMultiAdapter((self.context, self.request),
                               name='live-presence')
        page.presence = bool(current.presence)
        page.newClient()
        self.page = page

    def render(self):
        page = self.page
        if page is None:
            return ''
        online = ''
        if page.presence:
            online = ''.join(
                '<li data-principal="%s">%s</li>' % (escape(p), escape(t))
                for p, t in page.online())
        return (
            '<div id="zorg-live" class="zorg-live">%s'
            '<span class="zorg-live-label">Here now:</span>'
            '<ul id="zorg-live-online">%s</ul>'
            '<div id="zorg-live-notice" role="status"></div></div>'
            % (page.scriptTag(), online))


class ChangedNotice(BrowserView):
    """The fragment a save sends to the document's viewers."""

    def __call__(self):
        _id, title, _anonymous = userInfo()
        return ('<p class="zorg-live-changed">This page was changed by '
                '<b>%s</b>. <a href="%s">Reload</a></p>'
                % (escape(title), escape(self.context.absolute_url())))
