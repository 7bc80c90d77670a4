"""The viewlet on every page ("Here now", the notices), its LivePage, and
the change notice.

The viewlet does not render a page of its own: it asks the site for the
``@@live-presence`` LivePage of the context and registers a client for it
(before the HTML leaves the server, as every LivePage does). The page's
input and protocol steps go to ``<context>/@@live-presence/@@client/...``,
guarded by the page's permission (View).

"Here now" is a row of avatars, the member's portrait where they have one
and else their initials on a colour of their own, with the full name on
hover; livepage.js keeps the list (join/leave), and the add-on's script
(static/zorg-live-plone.js) draws the avatars of those who join later the
same way.
"""

import zlib
from html import escape

from Acquisition import aq_inner
from plone.app.layout.viewlets.common import ViewletBase
from Products.CMFCore.utils import getToolByName
from Products.Five.browser import BrowserView
from zope.component import getMultiAdapter
from zope.i18n import translate

from zorg.live.plone import editing
from zorg.live.plone.messages import _
from zorg.live.plone.refresh import FRAGMENT
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


def initials(name):
    """'Ann Arbor' -> 'AA'; one word -> its first letter (the same rule
    as zorg-live-plone.js)."""
    words = name.split()
    if not words:
        return '?'
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else '')
    return letters.upper()


def hue(principal):
    """The colour of someone's initials: the same for them everywhere
    (zorg-live-plone.js computes the same from the id)."""
    return zlib.crc32(principal.encode('utf-8')) % 360


def avatar(principal, title, portrait=None):
    """One entry of "Here now"."""
    picture = ('<img src="%s" alt="" loading="lazy" />' % escape(portrait)
               if portrait else '')
    return ('<li data-principal="%s" title="%s"><span class="zorg-live-'
            'avatar" style="--zorg-live-hue: %d" aria-hidden="true">%s%s'
            '</span><span class="visually-hidden">%s</span></li>'
            % (escape(principal), escape(title), hue(principal),
               escape(initials(title)), picture, escape(title)))


class PresenceViewlet(ViewletBase):
    """"Who else is here" (and who is editing): the people on this page,
    kept live, above the content's title."""

    def update(self):
        super().update()
        self.page = None
        self.current = settings()
        current = self.current
        if current is None or self.request.get(FRAGMENT):
            return      # or: the content rendered for a viewer's refresh
        if not (current.presence or current.notify_changes
                or current.show_editing or current.refresh_in_place):
            return
        page = getMultiAdapter((self.context, self.request),
                               name='live-presence')
        page.presence = bool(current.presence)
        page.newClient()
        self.page = page

    def portrait(self, principal):
        memberdata = getToolByName(self.context, 'portal_memberdata', None)
        portraits = getattr(memberdata, 'portraits', None)
        if portraits is None:
            return None
        picture = portraits.get(principal, None)
        return None if picture is None else picture.absolute_url()

    def render(self):
        page = self.page
        if page is None:
            return ''
        request = self.request
        here = ''
        if page.presence:
            label = translate(_('here_now', default='Here now'),
                              context=request)
            here = (
                '<div class="zorg-live-here">'
                '<span class="zorg-live-label">%s</span>'
                '<ul id="zorg-live-online" class="zorg-live-avatars" '
                'aria-label="%s">%s</ul></div>' % (
                    escape(label), escape(label), ''.join(
                        avatar(p, t, self.portrait(p))
                        for p, t in page.online())))
        warning = ''
        if self.current.show_editing:
            warning = editing.editingHTML(
                editing.editingState(self.context), userInfo()[0], request,
                editor=editing.mayModify(self.context, userInfo()[0]))
        portraits = '%s/portal_memberdata/portraits/' % (
            self.site_url)
        return (
            '<div id="zorg-live" class="zorg-live" data-portraits="%s">%s%s'
            '<div id="zorg-live-editing" role="status">%s</div>'
            '<div id="zorg-live-notice" role="status"></div></div>'
            % (escape(portraits), page.scriptTag(), here, warning))


class ChangedNotice(BrowserView):
    """The fragment a save sends to the document's viewers."""

    def __call__(self):
        _id, title, _anonymous = userInfo()
        text = translate(_('changed_by', default='This page was changed by '
                           '${name}.', mapping={'name': '\x00'}),
                         context=self.request)
        reload = translate(_('reload', default='Reload'),
                           context=self.request)
        before, _sep, after = escape(text).partition('\x00')
        return ('<p class="zorg-live-changed alert alert-info">%s<b>%s</b>'
                '%s <a href="%s">%s</a></p>'
                % (before, escape(title), after,
                   escape(self.context.absolute_url()), escape(reload)))
