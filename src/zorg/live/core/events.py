"""The events that pages receive, and their JSON encoding.

An event is a type name plus JSON fields. Fields named ``html`` carry
server-rendered HTML; every other text is set by the browser as plain text.
HTML given as a plain ``str`` is escaped: only objects that declare
themselves safe (``__html__``, as markupsafe.Markup and `safe()` do) are
inserted as markup. Encoding happens once per publish (`encode`).
"""

import html as _html
import json

from zope.interface import implementer

from zorg.live.interfaces import IEvent


class SafeHTML(str):
    """A string of HTML that the page vouches for (not user input)."""

    def __html__(self):
        return str(self)


def safe(markup):
    """Mark `markup` as trusted HTML: it is inserted without escaping."""
    return SafeHTML(markup)


def escape_html(value):
    """HTML text for `value`: trusted markup unchanged, anything else escaped."""
    if hasattr(value, '__html__'):
        return str(value.__html__())
    return _html.escape(str(value), quote=False)


@implementer(IEvent)
class Event:
    """A named event with JSON fields; subclasses fix the name."""

    name = None

    def __init__(self, **fields):
        self._fields = fields

    def fields(self):
        return dict(self._fields)

    def asDict(self):
        data = {'event': self.name}
        data.update(self.fields())
        return data

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, json.dumps(self.fields()))


def encode(event, event_id=None):
    """The JSON text of `event`, with its id first when it has one."""
    data = {'id': event_id} if event_id is not None else {}
    data.update(event.asDict())
    # NaN and Infinity are not JSON: a browser's JSON.parse would reject the
    # whole answer, and with it every other event for the page.
    return json.dumps(data, separators=(',', ':'), ensure_ascii=False,
                      allow_nan=False)


class _HTMLEvent(Event):
    """An event that puts HTML into the element with id `target`."""

    def __init__(self, target, html):
        super().__init__(target=str(target), html=escape_html(html))


class _KeyedHTMLEvent(_HTMLEvent):
    """An insertion that may carry a `key`: the page adds the fragment only
    when `target` holds no element with ``data-live-key`` equal to it, so
    a fragment that the page's HTML already shows is not shown twice
    (delivery.txt, "Render and subscribe"). The fragment itself should
    carry the same ``data-live-key``."""

    def __init__(self, target, html, key=None):
        super().__init__(target, html)
        if key is not None:
            self._fields['key'] = str(key)


class Append(_KeyedHTMLEvent):
    """Append HTML to the children of `target`."""
    name = 'append'


class Prepend(_KeyedHTMLEvent):
    """Insert HTML before the first child of `target`."""
    name = 'prepend'


class Update(_HTMLEvent):
    """Replace the inner HTML of `target`."""
    name = 'update'


class Replace(_HTMLEvent):
    """Replace `target` itself (outer HTML)."""
    name = 'replace'


class Remove(Event):
    """Remove the element `target`."""
    name = 'remove'

    def __init__(self, target):
        super().__init__(target=str(target))


class SetAttribute(Event):
    """Set attribute `name` of `target` to `value` (text)."""
    name = 'attribute'

    def __init__(self, target, name, value):
        super().__init__(target=str(target), name=str(name), value=str(value))


class AddClass(Event):
    """Add CSS class `name` to `target`."""
    name = 'addclass'

    def __init__(self, target, name):
        super().__init__(target=str(target), name=str(name))


class RemoveClass(Event):
    """Remove CSS class `name` from `target`."""
    name = 'removeclass'

    def __init__(self, target, name):
        super().__init__(target=str(target), name=str(name))


class Progress(Event):
    """Show progress `value` (0..1) in `target`, with an optional text."""
    name = 'progress'

    def __init__(self, target, value, text=''):
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError('progress value must be between 0 and 1, '
                             'got %r' % value)
        super().__init__(target=str(target), value=value, text=str(text))


class Reload(Event):
    """Reload the whole page."""
    name = 'reload'


class Error(Event):
    """Tell the page something went wrong (shown as text)."""
    name = 'error'

    def __init__(self, message):
        super().__init__(message=str(message))


class Idle(Event):
    """Nothing happened during refreshInterval."""
    name = 'idle'


class Close(Event):
    """The server ends this page's connection; the page stops asking."""
    name = 'close'

    def __init__(self, reason=''):
        super().__init__(reason=str(reason))


class Multi(Event):
    """Several events applied in order, delivered as one."""
    name = 'multi'

    def __init__(self, *events):
        super().__init__()
        self.events = list(events)

    def fields(self):
        return {'events': [e.asDict() for e in self.events]}


class Join(Event):
    """A principal opened its first page in the group."""
    name = 'join'

    def __init__(self, principal, title=''):
        super().__init__(principal=str(principal), title=str(title))


class Leave(Event):
    """The last page of a principal in the group closed or timed out."""
    name = 'leave'

    def __init__(self, principal, title=''):
        super().__init__(principal=str(principal), title=str(title))


class Custom(Event):
    """A named event that the page's own JavaScript listens for.

    `data` is any JSON-able value; the browser never inserts it as HTML.
    """
    name = 'custom'

    def __init__(self, name, data=None):
        # Fail at the publisher, not at every receiver.
        json.dumps(data, allow_nan=False)
        super().__init__(name=str(name), data=data)


BUILTIN = {cls.name: cls for cls in (
    Append, Prepend, Update, Replace, Remove, SetAttribute, AddClass,
    RemoveClass, Progress, Reload, Error, Idle, Close, Multi, Join, Leave,
    Custom)}
