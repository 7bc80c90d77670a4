"""``@@live-presence``: the first state of a LivePage's who-is-online list.

livepage.js keeps the list (``presenceTarget``) up to date with join and
leave events, but only from the moment the page connects: the people who
were there before, and the viewer, come from the server with the page. A
template renders them with::

    <ul tal:replace="structure view/@@live-presence"></ul>

which gives ``<ul id="online">`` (the page's presenceTarget) with one
``<li data-principal="id">Title</li>`` per principal online in the page's
group, in the markup and order that livepage.js uses. The page is
registered before its template renders, so a presence page lists its
viewer too.
"""

from html import escape

import zope.component
from zope.authentication.interfaces import (
    IAuthentication, PrincipalLookupError)
from zope.publisher.browser import BrowserView
from zope.security.proxy import removeSecurityProxy

DEFAULT_TARGET = 'online'


def principalTitle(principal_id, manager, group):
    """The principal's title: from the site's authentication utility, else
    from a page of theirs in this process, else the id."""
    auth = zope.component.queryUtility(IAuthentication)
    if auth is not None:
        try:
            return auth.getPrincipal(principal_id).title
        except PrincipalLookupError:
            pass
    for client in manager.getClientsFor(principal_id, group):
        if client.title:
            return client.title
    return principal_id


def online(page):
    """[{'id', 'title'}] of the principals online in the page's group."""
    manager = page.manager
    group = page.getGroupId()
    return [{'id': principal, 'title': principalTitle(principal, manager,
                                                      group)}
            for principal in manager.whoIsOnline(group)]


class PresenceList(BrowserView):
    """The view ``@@live-presence`` of a LivePage (see the module)."""

    def online(self):
        return online(removeSecurityProxy(self.context))

    def __call__(self):
        page = removeSecurityProxy(self.context)
        target = page.presenceTarget or DEFAULT_TARGET
        items = ''.join(
            '<li data-principal="%s">%s</li>'
            % (escape(p['id'], quote=True), escape(p['title']))
            for p in self.online())
        return '<ul id="%s">%s</ul>' % (escape(target, quote=True), items)
