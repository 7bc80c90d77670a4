"""The ``@@client`` view of a LivePage: the wire protocol in Zope's publisher.

``<page>/@@client/<uuid>/output|events|input|close`` and
``<page>/@@client/register`` (see PROTOCOL.txt). Under LiveServerHTTP the
output, events and close steps never get here (the event loop answers
them); under WSGI-HTTP this view serves them in worker threads.
"""

import json
from urllib.parse import parse_qs

import transaction

from zope.interface import implementer
from zope.publisher.browser import BrowserView
from zope.publisher.interfaces import NotFound
from zope.publisher.interfaces.browser import IBrowserPublisher
from zope.security import canAccess
from zope.security.proxy import removeSecurityProxy

from zorg.live.interfaces import (
    BadRequest, Forbidden, LiveError, MethodNotAllowed, TooLarge)
from zorg.live.page import inputonce
from zorg.live.page.manager import NoMark, requestEnviron, requestMark
from zorg.live.core.inputs import SCOPE_KEY, Input, fromArguments, readBody
from zorg.live.core import wire
from zorg.live.core.wire import errorBody, errorHeaders

ACTIONS = ('output', 'events', 'input', 'close')
# The steps that change state: POST only (input also as GET when the
# unsafe setting allow-get-input is on).
POST_ONLY = ('input', 'close', 'register')


@implementer(IBrowserPublisher)
class ClientView(BrowserView):
    """Traverses ``<uuid>/<action>`` or ``register`` and answers JSON."""

    uuid = None
    action = None
    maxInputSize = 1 << 20   # setting max-input-size
    allowGetInput = False    # setting allow-get-input (unsafe)

    def publishTraverse(self, request, name):
        if self.uuid is None and self.action is None:
            if name == 'register':
                self.action = name
            else:
                self.uuid = name
            return self
        if self.action is None and name in ACTIONS:
            self.action = name
            return self
        raise NotFound(self, name, request)

    def browserDefault(self, request):
        return self, ()

    def __call__(self):
        response = self.request.response
        wire.setHeaders(response, wire.JSON_HEAD)
        try:
            if self.action is None:
                raise BadRequest('missing step: use %s'
                                 % ', '.join(ACTIONS))
            self.checkMethod()
            return getattr(self, 'do_' + self.action)()
        except LiveError as e:
            response.setStatus(e.status)
            for name, value in errorHeaders(e):
                response.setHeader(name, value)
            return errorBody(e)

    def checkMethod(self):
        method = self.request.method
        if self.action not in POST_ONLY or method == 'POST':
            return
        if self.action == 'input' and self.allowGetInput and method == 'GET':
            return
        wire.setHeaders(self.request.response, wire.allow('POST'))
        raise MethodNotAllowed(
            'use POST for %s (a GET could be made by any link or image on '
            'another site)' % self.action)

    @property
    def page(self):
        # The page's own permission guards everything but the capability
        # steps (output, events, close), which need only the page id.
        return removeSecurityProxy(self.context)

    def checkPagePermission(self):
        if not canAccess(self.context, '__call__'):
            raise Forbidden('You may not use this page; log in first.')

    def form(self, name, default=None):
        value = self.request.form.get(name)
        if value is None:
            # zope.publisher reads only the body's fields for some POSTs
            # (JSON, sendBeacon); the protocol's parameters are in the URL.
            query = parse_qs(self.request.get('QUERY_STRING', ''))
            value = query.get(name, [default])[0]
        return value

    def do_output(self):
        return self.page.output(self.uuid, self.form('outputNum', ''),
                                self.form('lastEventId'))

    def do_events(self):
        error = BadRequest('This server answers output with long-poll only '
                           '(WSGI-HTTP); use the output step.')
        error.status, error.code = 501, 'no-sse'
        raise error

    def do_close(self):
        self.page.manager.unregister(self.uuid)
        return wire.EMPTY_ANSWER

    def do_input(self):
        self.checkPagePermission()
        checked = self.inputFromRequest()
        inputId = self.request.getHeader(inputonce.HEADER)
        if inputId is None:
            replies = self.page.call(self.uuid, checked)
            return replies or wire.NO_REPLIES
        # Exactly once (page/inputonce.py): a repeat gets the answer the
        # first run recorded in its transaction's vote -- and only the
        # page's own principal may have it.
        inputId = inputonce.checkInputId(inputId)
        self.page.checkInput(self.uuid)
        mark = requestMark(self.request)
        if isinstance(mark, NoMark):
            # The broker failed this request already: one wait is enough.
            raise mark.error
        once = self.page.manager.inputs
        answer, claim = once.begin(self.uuid, inputId)
        if claim is None:
            return answer
        try:
            answer = self.page.call(self.uuid, checked) or wire.NO_REPLIES
            once.joinTransaction(transaction.get(), claim, answer,
                                 self.page.manager)
        except BaseException:
            once.ended(claim, committed=False)
            raise
        return answer

    def inputFromRequest(self):
        """The request's input (core/inputs.py's Input), checked here,
        where it arrives -- or, for an input that came over a shared
        connection, where that message arrived (LiveServerHTTP hands the
        checked value on in the request's ASGI scope, which only code in
        the server's process can fill)."""
        request = self.request
        scope = requestEnviron(request).get('asgi.scope')
        if scope is not None and isinstance(scope.get(SCOPE_KEY), Input):
            return scope[SCOPE_KEY]
        depth = self.page.maxArgumentsDepth
        ctype = request.getHeader('Content-Type', '') or ''
        if ctype.split(';')[0].strip() == wire.JSON_TYPE:
            limit = self.maxInputSize
            length = int(request.getHeader('Content-Length', '0') or 0)
            if length > limit:
                raise TooLarge('the input body is larger than %d bytes'
                               % limit)
            return readBody(request.bodyStream.read(limit + 1), limit, depth)
        name = self.form('handler-name') or self.form('handler')
        if not name:
            raise BadRequest('missing handler-name')
        return fromArguments(name, self.form('arguments'), depth)

    def pageURL(self):
        """The URL of the page this view is the ``@@client`` of (a
        platform whose request spells it otherwise overrides this)."""
        return self.request.getURL(2)

    def do_register(self):
        self.checkPagePermission()
        page = self.page
        manager = page.manager
        last = manager.parseEventId(self.form('lastEventId'))
        client = page.newClient()
        recovered = last is None or manager.rewind(client, last)
        return json.dumps({
            'uuid': client.uuid,
            'clientURL': '%s/@@client/%s' % (self.pageURL(), client.uuid),
            'lastEventId': manager.broker.formatPosition(
                client.delivery.acked),
            'recovered': recovered})


class LiveConnectionView(BrowserView):
    """``<app URL>/@@live``: who the request's credentials belong to.

    LiveServerHTTP asks this (in a worker thread, with the credentials of
    a WebSocket handshake or a shared SSE stream) before it accepts a
    browser's shared connection: the connection belongs to that principal
    (core/connection.py). A platform whose requests know their user
    otherwise overrides `principalId`.
    """

    def principalId(self):
        principal = getattr(self.request, 'principal', None)
        return None if principal is None else principal.id

    def __call__(self):
        wire.setHeaders(self.request.response, wire.JSON_HEAD)
        return json.dumps({'principal': self.principalId()})
