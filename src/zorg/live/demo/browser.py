"""The demo's pages: rooms (chat.html), the counter, login, and the rooms'
share of @@notify (upload.py and status.py have the other pages)."""

import time
from html import escape
from urllib.parse import urlencode

from zope.authentication.interfaces import IUnauthenticatedPrincipal
from zope.browserpage.viewpagetemplatefile import ViewPageTemplateFile
from zope.event import notify
from zope.lifecycleevent import ObjectModifiedEvent
from zope.publisher.browser import BrowserView
from zope.security import checkPermission
from zope.security.proxy import removeSecurityProxy
from zope.traversing.api import getRoot

from zorg.live.demo.interfaces import IRoom
from zorg.live.interfaces import BadRequest, Forbidden
from zorg.live.core.events import Append, safe
from zorg.live.page.model import publishOnCommit
from zorg.live.page.page import LivePage, handler
from zorg.live.site import UnauthorizedView

MAX_TEXT = 2000
LOGINS = [('alice', 'Alice'), ('bob', 'Bob'), ('carol', 'Carol'),
          ('admin', 'Admin (manager)')]


def messageHTML(message):
    """One chat line; every piece of user text is escaped. Its key lets
    livepage.js add a line that the page's HTML shows already only once
    (delivery.txt, "Render and subscribe")."""
    when = time.strftime('%H:%M', time.localtime(message['time']))
    key = ' data-live-key="%s"' % escape(message['key'], quote=True) if (
        message.get('key')) else ''
    if message.get('system'):
        return ('<p class="msg system"%s><span class="time">%s</span> '
                '<span class="text">%s</span></p>'
                % (key, when, escape(message['text'])))
    return ('<p class="msg"%s><span class="time">%s</span> '
            '<b class="nick">%s</b> <span class="text">%s</span></p>'
            % (key, when, escape(message['nickname']),
               escape(message['text'])))


def messageEvent(message):
    """The event that appends a stored message to the room's pages."""
    return Append('messages', safe(messageHTML(message)),
                  key=message.get('key'))


def isAnonymous(request):
    principal = getattr(request, 'principal', None)
    return principal is None or IUnauthenticatedPrincipal.providedBy(principal)


class DemoMixin:
    """What every demo page shows around its content."""

    def principalTitle(self):
        principal = self.request.principal
        return None if isAnonymous(self.request) else principal.title

    def rootURL(self):
        return self.request.getApplicationURL()

    def loginURL(self):
        return '%s/@@login.html?%s' % (
            self.rootURL(), urlencode({'camefrom': self.request.getURL()}))

    def rooms(self):
        root = removeSecurityProxy(getRoot(self.context))
        return [{'name': name, 'title': room.title,
                 'url': '%s/%s' % (self.rootURL(), name),
                 'current': removeSecurityProxy(self.context) is room}
                for name, room in sorted(root.items())
                if IRoom.providedBy(room)]

    def logins(self):
        return LOGINS


class IndexView(DemoMixin, BrowserView):
    """The root folder's front page."""

    template = ViewPageTemplateFile('index.pt')

    def __call__(self):
        return self.template()


class ChatPage(DemoMixin, LivePage):
    """chat.html: a room's last 50 messages, who is online (rendered by
    zorg.live's @@live-presence), and `say`."""

    presence = True
    presenceTarget = 'online'
    template = ViewPageTemplateFile('chat.pt')

    def title(self):
        return removeSecurityProxy(self.context).title

    def messages(self):
        return [messageHTML(m)
                for m in removeSecurityProxy(self.context).last(50)]

    def canPost(self):
        return checkPermission('demo.Post', self.context)

    @handler
    def say(self, text):
        if not self.canPost():
            raise Forbidden('Anonymous visitors may only read: log in '
                            '(alice/alice, bob/bob, carol/carol) to post.')
        text = str(text).strip()
        if not text:
            return None
        if len(text) > MAX_TEXT:
            raise BadRequest('a message has at most %d characters' % MAX_TEXT)
        _id, nickname, _anonymous = self.principalInfo()
        message = self.context.add(nickname, text, principal=_id)
        publishOnCommit(messageEvent(message), self.getGroupId(),
                        self.manager)
        return None


class CounterValue(BrowserView):
    """counter-value: the fragment that live:update re-renders."""

    def __call__(self):
        return '<span class="value">%d</span>' % int(
            removeSecurityProxy(self.context).value)


class CounterPage(DemoMixin, LivePage):
    """counter.html: one number, shared by every browser; anybody watches,
    logged-in users count."""

    template = ViewPageTemplateFile('counter.pt')

    def value(self):
        return CounterValue(self.context, self.request)()

    def canCount(self):
        return checkPermission('demo.Post', self.context)

    @handler
    def increment(self):
        if not self.canCount():
            raise Forbidden('Anonymous visitors may only watch: log in '
                            '(alice/alice, bob/bob, carol/carol) to count.')
        self.context.increment()
        # <live:update for="ICounter" view="counter-value" target="counter">
        # turns this into one Update for every page showing the counter.
        notify(ObjectModifiedEvent(self.context))
        return None


class LoginView(BrowserView):
    """@@login.html: HTTP Basic authentication (what zope.principalregistry
    gives): anonymous gets 401 and the browser asks for a login."""

    def __call__(self):
        response = self.request.response
        if isAnonymous(self.request):
            response.setStatus(401)
            response.setHeader('WWW-Authenticate',
                               'Basic realm="zorg.live demo"')
            response.setHeader('Content-Type', 'text/html;charset=utf-8')
            return ('<html><body><p>Log in as alice/alice, bob/bob or '
                    'carol/carol (admin/admin is the manager).</p>'
                    '<p><a href="%s/">Back</a></p></body></html>'
                    % self.request.getApplicationURL())
        camefrom = self.request.form.get('camefrom') or \
            self.request.getApplicationURL() + '/'
        if not camefrom.startswith(self.request.getApplicationURL()):
            camefrom = self.request.getApplicationURL() + '/'
        response.redirect(camefrom)
        return ''


class ForbiddenPage(DemoMixin, UnauthorizedView):
    """The demo's page for Unauthorized: the same challenge (401) or 403 as
    zorg.live's view, in the demo's style (registered in overrides.zcml)."""

    template = ViewPageTemplateFile('forbidden.pt')

    def __call__(self):
        message = super().__call__()
        self.request.response.setHeader('Content-Type',
                                        'text/html;charset=utf-8')
        return self.template(message=message,
                             status=self.request.response.getStatus())


def roomNotification(notification):
    """INotification subscriber: a message for a room's group (from
    ``@@notify`` or ``zorg-live send``) is stored in the room and shown
    as a system message on its pages."""
    group = notification.group
    root = removeSecurityProxy(getRoot(notification.object))
    room = root.get(group.strip('/')) if group.count('/') == 1 else None
    if not IRoom.providedBy(room) or not notification.text:
        return
    message = room.add('system', notification.text[:MAX_TEXT], system=True)
    publishOnCommit(messageEvent(message), group)
    notification.handled = True
    notification.answer['stored'] = True
