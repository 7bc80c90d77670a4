"""LivePage: the browser view base class of live pages.

A site developer subclasses LivePage, gives it a template, declares input
handlers with ``@handler`` and registers it with ``<browser:page>``. The
client script is injected into the rendered HTML, after the page's client
was registered, so nothing published between render and first poll is lost.
"""

import inspect
import re
import time
from html import escape

import zope.component
from zope.authentication.interfaces import IUnauthenticatedPrincipal
from zope.interface import implementer
from zope.publisher.browser import BrowserPage

from zorg.live.interfaces import (
    BadRequest, Busy, Forbidden, ILivePage, ILivePageClient,
    ILivePageManager, IPageIdGenerator, TooLarge)
from zorg.live.page.client import LivePageClient, randomPageId
from zorg.live.core.events import IEvent, encode
from zorg.live.core import audience as _audience
from zorg.live.page import strangers
from zorg.live.page.manager import TRANSPORTS, requestEnviron, requestMark
from zorg.live.core.ticket import TICKETS, siteOfURL
from zorg.live.page.transactional import publishOnCommit
from zorg.live.core import wire
from zorg.live.core.wire import errorBody, errorHeaders
from zorg.live.core.inputs import fromArguments, nesting

HANDLER_MARK = '_zorg_live_handler'
SCRIPT_PATH = '++resource++zorgajax/livepage.js'
# What livepage.js shares with livepage-worker.js: loaded first.
COMMON_PATH = '++resource++zorgajax/livepage-common.js'


def handler(func=None, *, name=None):
    """Declare a LivePage method as an input handler.

    Only declared handlers can be called by pages: the handler name that a
    page sends is looked up in the declared ones, never with getattr::

        class Chat(LivePage):
            @handler
            def say(self, text):
                self.publish(Append('log', text))
    """
    def mark(f):
        setattr(f, HANDLER_MARK, name or f.__name__)
        return f
    return mark(func) if func is not None else mark


def declaredHandlers(cls):
    """{handler name: function} for a LivePage class and its bases."""
    found = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            name = getattr(value, HANDLER_MARK, None)
            if name is not None:
                found[name] = value
    return found


def injectScript(html, tag):
    """Put `tag` at the end of <head> (or at the start of the page)."""
    match = re.search(r'</head\s*>', html, re.IGNORECASE)
    if match is None:
        return tag + '\n' + html
    return html[:match.start()] + tag + '\n' + html[match.start():]


@implementer(ILivePage)
class LivePage(BrowserPage):
    """Base class of live pages (a browser view)."""

    presence = False          # receive join/leave events of the group
    transport = 'auto'        # 'auto' (WebSocket, SSE, long-poll) or one
    # 'shared': one connection per browser and site, shared by its tabs
    # (livepage.js); 'tab': each tab its own, as before.
    connection = 'shared'
    presenceTarget = None     # id of the page's list of who is online
    maxArgumentsSize = 65536  # bytes of handler arguments
    maxArgumentsDepth = 32    # nesting of handler arguments (setting)
    template = None           # a page template or a callable giving HTML
    # Ids of the elements that X-Live-Progress may write to (uploads by
    # the page's own principal); none unless the page declares them.
    progressTargets = ()
    # What livepage.js may set with attribute events beyond its
    # allow-lists (e.g. ('style',) or ('mailto',)); see zorg/ajax.
    allowAttributes = ()
    allowSchemes = ()
    retryAfter = 5

    uuid = None
    client = None

    @property
    def manager(self):
        return zope.component.getUtility(ILivePageManager)

    def getGroupId(self):
        """The page's group: by default, the path of its context."""
        context = self.context
        try:
            from zope.traversing.api import getPath
            return getPath(context)
        except (TypeError, AttributeError, ImportError):
            cls = type(self)
            return '%s.%s' % (cls.__module__, cls.__qualname__)

    def principalInfo(self):
        """(id, title, anonymous) of the request's principal."""
        principal = getattr(self.request, 'principal', None)
        if principal is None:
            return 'zope.anybody', 'Unauthenticated User', True
        return (principal.id, getattr(principal, 'title', principal.id),
                IUnauthenticatedPrincipal.providedBy(principal))

    def requestPrincipalId(self):
        """The id of the request's principal, or None for a direct call
        that no publisher authenticated (a platform whose requests know
        their user otherwise overrides this, and principalInfo)."""
        principal = getattr(self.request, 'principal', None)
        return None if principal is None else principal.id

    def applicationURL(self):
        """The site's root URL, where the zorgajax resources are (a
        platform whose requests spell it otherwise overrides this)."""
        return self.request.getApplicationURL()

    def liveURL(self):
        """The URL of the browser's shared connection for this site:
        ``@@live`` where the site knows its users (here: at the root; a
        platform whose users live in a site of their own overrides
        this)."""
        return '%s/@@live' % self.applicationURL()

    def checkAnonymousCap(self, client):
        """Busy (503 with Retry-After) when an anonymous page may not
        have a place: the caps of max-anonymous-pages, per client address
        and per network prefix; a full cap evicts a page of the fullest
        prefix for a visitor of another (page/strangers.py). Counted
        before registering: requests at the same moment may pass the caps
        by as many as there are worker threads."""
        strangers.admit(self.manager, client)

    def newClient(self):
        """Register a client for this page and remember its id."""
        generate = zope.component.queryUtility(IPageIdGenerator,
                                               default=randomPageId)
        self.uuid = generate()
        client = zope.component.queryAdapter(self, ILivePageClient)
        if client is None:
            client = pageClient(self)
        self.checkAnonymousCap(client)
        self.client = self.manager.register(client,
                                            requestMark(self.request))
        return self.client

    def clientURL(self):
        return '%s/@@client/%s' % (self.request.getURL(), self.uuid)

    def scriptTag(self):
        """The page's script tags: livepage-common.js, then livepage.js
        with the page's settings."""
        base = self.applicationURL()
        manager = self.manager
        last = manager.broker.formatPosition(self.client.delivery.acked)
        client = self.client
        # The server tells the script its timings and what it offers, so
        # that the two cannot disagree (a long-poll held longer than the
        # script waits would be taken for lost).
        offered = requestEnviron(self.request).get(TRANSPORTS,
                                                   'sse longpoll')
        attrs = [('src', '%s/%s' % (base, SCRIPT_PATH)),
                 ('data-uuid', self.uuid),
                 ('data-client-url', self.clientURL()),
                 ('data-last-event-id', last),
                 ('data-transport', self.transport),
                 ('data-transports', offered),
                 ('data-refresh-interval', '%g' % client.refreshInterval),
                 ('data-heartbeat-interval',
                  '%g' % client.heartbeatInterval)]
        if 'ws' in offered.split():
            # The browser's shared connection.
            attrs.append(('data-live-url', self.liveURL()))
            attrs.append(('data-connection', self.connection))
            issue = requestEnviron(self.request).get(TICKETS)
            if issue is not None:
                # The connection need not ask the site who this is
                # (core/ticket.py).
                attrs.append(('data-live-ticket', issue(
                    client.principal, siteOfURL(self.liveURL()),
                    time.time())))
        if self.presenceTarget:
            attrs.append(('data-presence-target', self.presenceTarget))
        if self.allowAttributes:
            attrs.append(('data-allow-attributes',
                          ' '.join(self.allowAttributes)))
        if self.allowSchemes:
            attrs.append(('data-allow-schemes', ' '.join(self.allowSchemes)))
        return '<script src="%s"></script>\n<script %s></script>' % (
            escape('%s/%s' % (base, COMMON_PATH), quote=True), ' '.join(
                '%s="%s"' % (k, escape(v, quote=True)) for k, v in attrs))

    def renderBody(self):
        """The page's own HTML (its template)."""
        template = self.template
        if template is None:
            # <browser:page class="..." template="..."> names it `index`.
            template = getattr(self, 'index', None)
        if template is None:
            raise NotImplementedError('%s needs a template or a renderBody()'
                                      % type(self).__name__)
        return template()

    def render(self):
        try:
            self.newClient()
        except Busy as e:
            response = self.request.response
            response.setStatus(e.status)
            for name, value in errorHeaders(e):
                response.setHeader(name, value)
            return errorBody(e)
        for name, value in wire.LIVE_PAGE_HEAD:
            self.request.response.setHeader(name, value)
        return injectScript(self.renderBody(), self.scriptTag())

    def __call__(self):
        return self.render()

    # -- input -----------------------------------------------------------

    def checkInput(self, uuid):
        """The client of page `uuid` when this request may send it input
        (its own principal, its own page class and group); else Forbidden
        (or UnknownPage). Checked before anything of the page is run or
        answered, a recorded answer too (inputonce, rule 3)."""
        client = self.manager.getClient(uuid)
        principal = self.requestPrincipalId()
        # A request that went through the publisher always has a principal
        # (maybe the unauthenticated one); only direct calls have none.
        if principal is not None and principal != client.principal:
            raise Forbidden('This page belongs to another user; log in as '
                            'that user or reload the page.')
        # A page id is the capability of one page: it calls the handlers
        # of its own page (class) in its own group, not those of another
        # page it was sent to.
        if client.group_id != self.getGroupId() or getattr(
                client, 'pageClass', None) not in (None, pageClassName(self)):
            raise Forbidden('This page id belongs to another page; reload '
                            'the page.')
        return client

    def input(self, uuid, handler_name, arguments=None):
        """Call handler `handler_name` of page `uuid` with `arguments`
        (text, a list or an object), checked here (core/inputs.py): a
        direct call is an edge where input arrives."""
        return self.call(uuid, fromArguments(handler_name, arguments,
                                             self.maxArgumentsDepth))

    def call(self, uuid, checked):
        """Run the `Input` `checked` (checked where it arrived) for page
        `uuid`: the page's own checks (who may send it input, declared
        handlers, its arguments limit and the handler's signature), then
        the handler."""
        client = self.checkInput(uuid)
        handler_name = checked.handler
        handlers = declaredHandlers(type(self))
        # The name comes from the wire: from a JSON body it may be a list.
        func = (handlers.get(handler_name) if isinstance(handler_name, str)
                else None)
        if func is None:
            raise BadRequest('Undeclared handler %r: this page declares %s'
                             % (handler_name, ', '.join(sorted(handlers))
                                or 'no handlers'))
        if checked.size > self.maxArgumentsSize:
            raise TooLarge('handler arguments are larger than %d bytes'
                           % self.maxArgumentsSize)
        args, kwargs = checked.args, checked.kwargs
        if (checked.depthLimit > self.maxArgumentsDepth
                and nesting([args, kwargs]) - 1 > self.maxArgumentsDepth):
            raise BadRequest('arguments nest deeper than %d lists or objects '
                             '(this page\'s maxArgumentsDepth)'
                             % self.maxArgumentsDepth)
        try:
            inspect.signature(func).bind(self, *args, **kwargs)
        except TypeError as e:
            raise BadRequest('handler %r: %s' % (handler_name, e))
        self.uuid, self.client = uuid, client
        replies = func(self, *args, **kwargs)
        return self.encodeReplies(replies)

    def encodeReplies(self, replies):
        """The input answer: JSON of the events meant for the sender only
        (delivered with the answer, not through the group log)."""
        if replies is None:
            return ''
        if IEvent.providedBy(replies):
            replies = [replies]
        return wire.replies([encode(e) for e in replies])

    def output(self, uuid, outputNum, lastEventId=None):
        return self.manager.output(uuid, outputNum, lastEventId)

    # -- publishing helpers for handlers ---------------------------------

    def publishing(self):
        """True when this page's request runs in a transaction that a
        server began for it (it came through LiveServerHTTP or WSGI-HTTP):
        the handlers' events then go out when it commits, all or none
        (zorg.live.page.transactional). Else they go out at once."""
        return requestMark(self.request) is not None

    def _publish(self, event, audience=None):
        group_id = self.getGroupId()
        if self.publishing():
            return publishOnCommit(event, group_id, self.manager, audience)
        return self.manager._publish(event, group_id, audience)

    def publish(self, event):
        """Send to every page of this page's group."""
        return self._publish(event)

    def publishToOthers(self, event):
        """Send to the group, except the page that called the handler."""
        return self._publish(event, _audience.others(self.uuid))

    def publishToPrincipals(self, event, principal_ids):
        """Send to the pages of some principals in this page's group."""
        return self._publish(event, _audience.principals(principal_ids))

    def publishToClient(self, event, uuid):
        """Send to one page of this page's group."""
        return self._publish(event, _audience.client(uuid))


def pageClassName(page):
    """'module.Class/view name' of a page: what its page id is bound to.
    zope's <browser:page> makes a class per registration: the site's own
    class is the first one of its bases that zope did not make."""
    for cls in type(page).__mro__:
        if not cls.__module__.startswith('zope.browserpage'):
            break
    return '%s.%s/%s' % (cls.__module__, cls.__qualname__,
                         getattr(page, '__name__', ''))


def pageClient(page):
    """The default client factory: adapts an ILivePage to ILivePageClient."""
    principal, title, anonymous = page.principalInfo()
    client = LivePageClient(page.uuid, principal, page.getGroupId(),
                            title=title, presence=page.presence,
                            anonymous=anonymous)
    # What the page id is bound to in this process (a page adopted from
    # another process's record is bound to its group and principal).
    client.pageClass = pageClassName(page)
    client.progressTargets = tuple(page.progressTargets)
    client.address = requestEnviron(page.request).get('REMOTE_ADDR')
    return client
