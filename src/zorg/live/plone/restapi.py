"""What Volto's add-on (volto-zorg-live) asks of the site.

- ``GET <content>/++api++/@live`` (plone.restapi, so Volto's own API
  calls carry the user's token): registers a live page of the content for
  the user, as the Classic UI viewlet does when it renders, and answers
  what the viewlet would show: the page's id and first event id, who is
  here, who is editing, and the settings.
- ``@@live`` (the browser's shared connection): a WebSocket cannot carry
  an ``Authorization`` header, so Volto's browsers are known by the
  cookie in which Volto keeps plone.restapi's token (``auth_token``),
  checked by plone.restapi's own JWT plugin. The page then attaches to
  that socket as a Classic UI page does.
- ``@live`` answers a connection ticket too (core/ticket.py), which
  volto-zorg-live sends with the socket's handshake (``?ticket=``), so
  that the server knows the user without asking the site. It is bound to
  no credentials, as a Classic UI page's is under a cookie login: the
  socket carries the token in a cookie, not in the Authorization header
  of the ``@live`` call.
"""

import time

from plone.restapi.pas.plugin import JWTAuthenticationPlugin
from plone.restapi.services import Service
from zope.component import getMultiAdapter

from zorg.live.core.ticket import TICKETS, siteOfURL
from zorg.live.page.manager import requestEnviron
from zorg.live.plone import editing
from zorg.live.plone.settings import settings
from zorg.live.zope6.page import userInfo
from zorg.live.zope6.views import LiveConnectionView

TOKEN_COOKIE = 'auth_token'   # where Volto keeps the user's JWT


class LivePageService(Service):
    """``@live``: a live page of the content for Volto."""

    def reply(self):
        current = settings()
        if current is None:
            self.request.response.setStatus(404)
            return {'error': {'type': 'NotFound',
                              'message': 'Live pages are not installed '
                                         'in this site.'}}
        page = getMultiAdapter((self.context, self.request),
                               name='live-presence')
        page.presence = bool(current.presence)
        page.newClient()
        viewer = userInfo()[0]
        state = editing.editingState(self.context)
        manager = page.manager
        return {
            'ticket': ticketFor(page, self.request),
            'uuid': page.uuid,
            'clientURL': page.clientURL(),
            'lastEventId': manager.broker.formatPosition(
                page.client.delivery.acked),
            'heartbeatInterval': page.client.heartbeatInterval,
            'online': [{'id': p, 'title': t} for p, t in page.online()]
            if page.presence else [],
            'editing': None if state is None or state[0] == viewer else {
                'id': state[0], 'title': state[1],
                'html': editing.editingHTML(
                    state, viewer, self.request,
                    editor=editing.mayModify(self.context, viewer))},
            'settings': {'presence': bool(current.presence),
                         'notify_changes': bool(current.notify_changes),
                         'show_editing': bool(current.show_editing)},
        }


def ticketFor(page, request):
    """The connection ticket of `page`'s principal for its site's
    ``@@live``, or None where the server issues none."""
    issue = requestEnviron(request).get(TICKETS)
    if issue is None:
        return None
    return issue(page.client.principal, siteOfURL(page.liveURL()),
                 time.time(), credentials='')


def tokenUser(context, token):
    """The user id whose plone.restapi token `token` is, or None."""
    from Acquisition import aq_chain, aq_inner
    for item in aq_chain(aq_inner(context)):
        folder = getattr(item, 'acl_users', None)
        if folder is None or not hasattr(folder, 'objectValues'):
            continue
        for plugin in folder.objectValues():
            if isinstance(plugin, JWTAuthenticationPlugin):
                found = plugin.authenticateCredentials(
                    {'extractor': plugin.getId(), 'token': token})
                if found:
                    return found[0]
        break    # the nearest user folder only
    return None


class PloneLiveConnectionView(LiveConnectionView):
    """``@@live`` in a Plone site: the logged-in user (cookie or basic
    auth), else the user of Volto's token cookie."""

    def principalId(self):
        principal = super().principalId()
        if not userInfo()[2]:
            return principal
        token = self.request.cookies.get(TOKEN_COOKIE)
        if token:
            userid = tokenUser(self.context, token)
            if userid:
                return userid
        return principal
