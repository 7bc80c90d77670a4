"""The example's views: ``@@live-chat`` and the ``live-items`` fragment."""

from html import escape

from AccessControl import getSecurityManager
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile

from zorg.live.page.event import Append, safe
from zorg.live.page.page import handler
from zorg.live.zope6.page import LivePage


class ChatPage(LivePage):
    """A chat on a folder: whoever opens it is online there."""

    template = ViewPageTemplateFile('chat.pt')
    presence = True
    presenceTarget = 'online'

    @handler
    def say(self, text):
        title = self.principalInfo()[1]
        self.publish(Append('log', safe(
            '<p class="msg"><b>%s</b>: <span>%s</span></p>'
            % (escape(title), escape(str(text))))))


class Items(BrowserView):
    """The folder's items that the viewer may view: the fragment that
    <live:update> re-renders (for each viewer, zorg.live.zope6.model)."""

    def __call__(self):
        security = getSecurityManager()
        return ''.join('<li>%s</li>' % escape(item.getId())
                       for item in self.context.objectValues()
                       if security.checkPermission('View', item))
