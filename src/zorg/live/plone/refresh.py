"""Live content in place: the content area refreshed for each viewer.

With the setting *Refresh the content in place* (``refresh_in_place``), a
save does not send the "changed by" notice: after the commit, each viewer
who may view the content gets its content area as *they* would see it on
a reload -- the title, the description and ``#content-core`` of its
default view, rendered as that viewer (zorg.live.zope6.model: once per
user online and once for anonymous visitors, with Zope's security of each;
a folder listing so shows each viewer only the items they may view) --
and a short line saying who changed it.

The page is rendered whole (main_template and all) on a clone of the
saving request, and the parts are cut out of it with lxml; the viewlet
registers no page while doing so (`FRAGMENT` on the request).
"""

from html import escape

import lxml.html
import zope.component
from zope.i18n import translate

from zorg.live.interfaces import ILivePageManager
from zorg.live.core import audience
from zorg.live.core.events import Multi, Update, safe
from zorg.live.plone import access
from zorg.live.plone.messages import _
from zorg.live.zope6.model import ModelUpdate, findUser
from zorg.live.zope6.page import physicalGroup

TARGET = 'zorg-live-notice'       # the page's notice line (notice.py)
FRAGMENT = 'zorg.live.fragment'   # request key: rendering for a viewer
PARTS = (   # (element id on the page, how to find it in the rendering)
    ('zorg-live-title', '#content > header > h1'),
    ('zorg-live-description', '#content > header > p.lead'),
    ('content-core', '#content-core'),
)


def contentParts(html):
    """{element id: inner HTML} of the parts of a rendered page."""
    tree = lxml.html.fromstring(html)
    parts = {}
    for target, selector in PARTS:
        found = tree.cssselect(selector)
        if found:
            element = found[0]
            inner = (escape(element.text or '') + ''.join(
                lxml.html.tostring(child, encoding='unicode')
                for child in element))
            parts[target] = inner
    return parts


class ContentView:
    """The content's default view, rendered whole as the current user on
    the current (cloned) request; what ModelUpdate renders per viewer."""

    def __init__(self, context, request):
        self.context = context
        self.request = request

    def __call__(self):
        request, context = self.request, self.context
        request.set(FRAGMENT, True)
        layout = context.getLayout() or context.getDefaultLayout()
        view = zope.component.queryMultiAdapter((context, request),
                                                name=layout)
        if view is None:    # not a browser view: nothing to cut out
            return None
        return view()


class Refresh(ModelUpdate):
    """Renders the content per viewer and publishes each viewer's parts
    to the pages of the viewers who may view it (after the commit)."""

    def __init__(self):
        super().__init__('live-content', None)

    def render(self, obj, request=None):
        return ContentView(obj, request)()

    def renderings(self, obj, group_id, manager):
        byHTML = {}
        for userid in manager.whoIsOnline(group_id):
            if not access.mayView(obj, userid):
                continue
            user = findUser(obj, userid)
            if user is None:
                continue
            byHTML.setdefault(self.renderAs(obj, user), []).append(userid)
        result = [(audience.principals(ids), html)
                  for html, ids in byHTML.items() if html is not None]
        # Anonymous pages are rendered for where this process has some.
        anonymous = any(c.anonymous and c.group_id == group_id
                        for c in manager)
        if anonymous and access.mayView(obj, None):
            from AccessControl.SpecialUsers import nobody
            html = self.renderAs(obj, nobody)
            if html is not None:
                result.append((audience.anonymous(), html))
        return result

    def publish(self, obj, editor, request):
        manager = zope.component.getUtility(ILivePageManager)
        group = physicalGroup(obj)
        text = translate(_('refreshed_by', default='Updated by ${name}.',
                           mapping={'name': '\x00'}), context=request)
        before, _sep, after = escape(text).partition('\x00')
        line = ('<p class="zorg-live-refreshed text-muted small">%s<b>%s'
                '</b>%s</p>' % (before, escape(editor), after))
        for to, html in self.renderings(obj, group, manager):
            parts = contentParts(html)
            events = [Update(target, safe(inner))
                      for target, inner in parts.items()]
            events.append(Update(TARGET, safe(line)))
            manager._publish(Multi(*events), group, to)


refresh = Refresh()
