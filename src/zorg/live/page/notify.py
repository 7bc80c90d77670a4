"""``@@notify``: other systems push into a running site over HTTP.

    POST <site>/@@notify          (Content-Type: application/json)
    {"group": "/lobby", "text": "deploy done"}
    {"group": "/auction/7", "event": "new-bid", "data": {"price": 42}}

The principal needs the permission ``zorg.live.Notify`` (``zorg-live send``
is the command-line client). The view first fires an INotification zope
event, so that a site can handle a message its own way (the demo stores it
in the chat room and appends it to the room's pages) and mark it handled;
when nothing handled it, the group's pages get a custom event -- named
``notify`` unless "event" names another -- whose data is "data", or
``{"text": text}``. Either way nothing is published unless the transaction
commits.

Answers are JSON: 200 ``{"ok": true, "group", "pages", "handled", ...}``;
400 malformed body; 404 ``unknown-group`` (no page of the group is open and
nothing handled the message); 405 not a POST; 413 body over 64KB; 415 not
``application/json`` (which also keeps plain cross-site HTML forms out).
"""

import json
import re

import zope.component
import zope.event
from zope.interface import implementer
from zope.interface.interfaces import ObjectEvent
from zope.publisher.browser import BrowserView

from zorg.live.broker.memory import MemoryBroker
from zorg.live.interfaces import (
    BadRequest, ILivePageManager, INotification, LiveError)
from zorg.live.core import wire
from zorg.live.core.events import Custom
from zorg.live.page.model import publishOnCommit

MAX_BODY = 65536
MAX_GROUP = 500
EVENT_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_.:-]{0,63}$')


@implementer(INotification)
class Notification(ObjectEvent):

    def __init__(self, context, request, group, text, name, data):
        super().__init__(context)
        self.request, self.group, self.text = request, group, text
        self.name, self.data = name, data
        self.handled = False
        self.answer = {}


class UnknownGroup(LiveError):
    status = 404
    code = 'unknown-group'


def readMessage(request):
    """(group, text, name, data) from the JSON body, or a LiveError."""
    if request.method != 'POST':
        error = BadRequest('POST a JSON object such as {"group": "/lobby", '
                           '"text": "hello"}')
        error.status = 405
        raise error
    ctype = (request.getHeader('Content-Type', '') or '').split(';')[0]
    if ctype.strip().lower() != 'application/json':
        error = BadRequest('the body must be JSON (Content-Type: '
                           'application/json), got %r' % ctype[:80])
        error.status, error.code = 415, 'unsupported-media-type'
        raise error
    body = request.bodyStream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        error = BadRequest('the body is larger than %d bytes' % MAX_BODY)
        error.status, error.code = 413, 'too-large'
        raise error
    try:
        data = json.loads(body) if body else {}
    except ValueError as e:
        raise BadRequest('the body is not valid JSON: %s' % e)
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object')
    group, text = data.get('group'), data.get('text')
    name, payload = data.get('event', 'notify'), data.get('data')
    if not isinstance(group, str) or not group.strip() \
            or len(group) > MAX_GROUP:
        raise BadRequest('"group" must name a group, such as "/lobby" (the '
                         'path of the object the pages show)')
    if text is not None and not isinstance(text, str):
        raise BadRequest('"text" must be a string')
    text = text.strip() if text else None
    if text is None and payload is None:
        raise BadRequest('give "text" (a string) or "data" (any JSON)')
    try:
        json.dumps(payload, allow_nan=False)
    except ValueError:
        raise BadRequest('"data" must not contain NaN or Infinity')
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise BadRequest('"event" must be a name of letters, digits and '
                         '_.:- (at most 64), such as "new-bid"')
    return group.strip(), text, name, payload


class NotifyView(BrowserView):
    """The ``@@notify`` view (permission zorg.live.Notify in ZCML)."""

    def __call__(self):
        response = self.request.response
        wire.setHeaders(response, wire.NOTIFY_HEAD)
        try:
            group, text, name, data = readMessage(self.request)
            answer = self.deliver(group, text, name, data)
        except LiveError as e:
            if e.status == 405:
                wire.setHeaders(response, wire.allow('POST'))
            response.setStatus(e.status)
            return json.dumps(e.asDict())
        return json.dumps(answer)

    def deliver(self, group, text, name, data):
        manager = zope.component.getUtility(ILivePageManager)
        pages = sum(1 for client in manager if client.group_id == group)
        notification = Notification(self.context, self.request, group, text,
                                    name, data)
        zope.event.notify(notification)
        if not notification.handled:
            # Only a broker in this process knows every page of a group;
            # with a shared one (redis) other processes may hold some.
            if not pages and isinstance(manager.broker, MemoryBroker):
                known = manager.groups()
                raise UnknownGroup(
                    'no page of group %r is open, and the site did not take '
                    'the message; groups with open pages: %s%s'
                    % (group, ', '.join(known[:20]) or 'none',
                       ' ...' if len(known) > 20 else ''))
            event = Custom(name, data if data is not None else {'text': text})
            publishOnCommit(event, group, manager)
        answer = {'ok': True, 'group': group, 'pages': pages,
                  'handled': notification.handled}
        answer.update(notification.answer)
        return answer
