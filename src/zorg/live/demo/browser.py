"""The demo's pages: rooms (chat.html), the counter, login, @@notify and
@@live-status."""

import json
import time
from html import escape
from urllib.parse import urlencode

import zope.component
from zope.authentication.interfaces import IUnauthenticatedPrincipal
from zope.browserpage.viewpagetemplatefile import ViewPageTemplateFile
from zope.event import notify
from zope.lifecycleevent import ObjectModifiedEvent
from zope.publisher.browser import BrowserView
from zope.security import checkPermission
from zope.security.proxy import removeSecurityProxy
from zope.traversing.api import getRoot

from zorg.live.demo.interfaces import IRoom
from zorg.live.interfaces import BadRequest, Forbidden, ILivePageManager
from zorg.live.page.event import Append, Update, safe
from zorg.live.page.model import publishOnCommit
from zorg.live.page.page import LivePage, handler

MAX_TEXT = 2000
LOGINS = [('alice', 'Alice'), ('bob', 'Bob'), ('carol', 'Carol'),
          ('admin', 'Admin (manager)')]


def messageHTML(message):
    """One chat line; every piece of user text is escaped."""
    when = time.strftime('%H:%M', time.localtime(message['time']))
    if message.get('system'):
        return ('<p class="msg system"><span class="time">%s</span> '
                '<span class="text">%s</span></p>'
                % (when, escape(message['text'])))
    return ('<p class="msg"><span class="time">%s</span> '
            '<b class="nick">%s</b> <span class="text">%s</span></p>'
            % (when, escape(message['nickname']), escape(message['text'])))


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
    """chat.html: a room's last 50 messages, who is online, and `say`."""

    presence = True
    template = ViewPageTemplateFile('chat.pt')

    def title(self):
        return removeSecurityProxy(self.context).title

    def messages(self):
        return [messageHTML(m)
                for m in removeSecurityProxy(self.context).last(50)]

    def online(self):
        """Who is online here now (this page is registered already)."""
        manager = self.manager
        group = self.getGroupId()
        found = []
        for principal in manager.whoIsOnline(group):
            clients = manager.getClientsFor(principal, group)
            title = clients[0].title if clients else principal
            found.append({'id': principal, 'title': title})
        return found

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
        publishOnCommit(Append('messages', safe(messageHTML(message))),
                        self.getGroupId(), self.manager)
        return None


class CounterValue(BrowserView):
    """counter-value: the fragment that live:update re-renders."""

    def __call__(self):
        return '<span class="value">%d</span>' % int(
            removeSecurityProxy(self.context).value)


class CounterPage(DemoMixin, LivePage):
    """counter.html: one number, shared by every browser."""

    template = ViewPageTemplateFile('counter.pt')

    def value(self):
        return CounterValue(self.context, self.request)()

    @handler
    def increment(self):
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


class NotifyView(BrowserView):
    """@@notify: POST {"group": "/lobby", "text": "..."} as the manager
    publishes (and stores, when the group is a room) a system message."""

    def __call__(self):
        request, response = self.request, self.request.response
        response.setHeader('Content-Type', 'application/json')
        try:
            if request.method != 'POST':
                response.setHeader('Allow', 'POST')
                error = BadRequest('POST {"group": "/lobby", "text": "..."}')
                error.status = 405
                raise error
            body = request.bodyStream.read(65537)
            if len(body) > 65536:
                raise BadRequest('the body is larger than 64KB')
            try:
                data = json.loads(body or b'{}')
            except ValueError as e:
                raise BadRequest('the body is not JSON: %s' % e)
            if not isinstance(data, dict):
                raise BadRequest('the body must be a JSON object')
            group, text = data.get('group'), data.get('text')
            if not isinstance(group, str) or not group.startswith('/'):
                raise BadRequest('"group" must be a path such as "/lobby"')
            if not isinstance(text, str) or not text.strip():
                raise BadRequest('"text" must be a non-empty string')
            text = text.strip()[:MAX_TEXT]
        except BadRequest as e:
            response.setStatus(e.status)
            return json.dumps(e.asDict())
        root = removeSecurityProxy(getRoot(self.context))
        room = root.get(group.strip('/')) if group.count('/') == 1 else None
        stored = IRoom.providedBy(room)
        if stored:
            message = room.add('system', text, system=True)
        else:
            message = {'nickname': 'system', 'text': text,
                       'time': time.time(), 'system': True}
        publishOnCommit(Append('messages', safe(messageHTML(message))), group)
        return json.dumps({'ok': True, 'group': group, 'stored': stored})


class StatusPage(DemoMixin, LivePage):
    """@@live-status (managers): open pages, groups, who is online, events
    published, transports; every open status page is refreshed when one is
    rendered or asks for `refresh`."""

    template = ViewPageTemplateFile('status.pt')

    def getGroupId(self):
        return '@@live-status'

    def stats(self):
        manager = zope.component.getUtility(ILivePageManager)
        clients = list(manager)
        transports = {}
        for client in clients:
            name = getattr(client, 'transport', None) or 'not connected yet'
            transports[name] = transports.get(name, 0) + 1
        groups = []
        for group in manager.groups():
            pages = [c for c in clients if c.group_id == group]
            groups.append({'group': group, 'pages': len(pages),
                           'online': manager.whoIsOnline(group)})
        return {'pages': len(clients), 'waiting': manager.waiting,
                'peakWaiting': manager.peakWaiting,
                'published': manager.published, 'groups': groups,
                'transports': transports}

    def statsHTML(self):
        s = self.stats()
        rows = ''.join(
            '<tr><td>%s</td><td>%d</td><td>%s</td></tr>'
            % (escape(g['group']), g['pages'],
               escape(', '.join(g['online']) or '-'))
            for g in s['groups'])
        transports = ', '.join('%s: %d' % (escape(k), v)
                               for k, v in sorted(s['transports'].items()))
        return ('<p>%d open pages, %d waiting now (peak %d), %d events '
                'published; transports: %s</p>'
                '<table><tr><th>group</th><th>pages</th><th>online</th></tr>'
                '%s</table>' % (s['pages'], s['waiting'], s['peakWaiting'],
                                s['published'], transports or '-', rows))

    def render(self):
        html = super().render()
        self.refreshAll()
        return html

    def refreshAll(self):
        self.manager.publish(Update('stats', safe(self.statsHTML())),
                             self.getGroupId())

    @handler
    def refresh(self):
        self.refreshAll()
        return None
