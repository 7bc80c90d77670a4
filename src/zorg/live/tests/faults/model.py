"""What a browser shows of a page, from what it received: livepage.js's
rules, in Python, for the driver (which must ask as the browser does)
and for the checker (which judges what the browser would show).

1. The page starts with its HTML (the messages it shows, by key) and its
   cursor (``data-last-event-id``).
2. An event whose id is not above the last applied id is dropped
   (`compareEventIds`: ids compare as integers split on ``-``); an
   applied event moves the last id.
3. An ``append`` whose key the page already shows is dropped (the page's
   HTML may show a message that is also after its cursor).
4. A ``reload`` event (``recovered: false``), a registration answered
   ``recovered: false`` or refused (4xx): the page reloads. It ends; the
   client renders a new page.

    >>> page = PageModel(['m1'], '5-0')
    >>> page.apply({'id': '5-0', 'event': 'append', 'key': 'm1'})
    'old'
    >>> page.apply({'id': '6-0', 'event': 'append', 'key': 'm1'})
    'shown'
    >>> page.apply({'id': '10-0', 'event': 'append', 'key': 'm2'})
    'applied'
    >>> page.apply({'id': '9-3', 'event': 'append', 'key': 'm3'})
    'old'
    >>> page.shown, page.lastEventId
    (['m1', 'm2'], '10-0')
    >>> page.apply({'id': '11-0', 'event': 'reload', 'recovered': False})
    'reload'
    >>> page.reloaded
    True
"""

import re

NUMBER = re.compile(r'\d+\Z')


def _part(text):
    return (0, int(text)) if NUMBER.match(text) else (1, text)


def compareEventIds(a, b):
    """-1, 0 or 1, as livepage.js compares event ids."""
    left, right = str(a).split('-'), str(b).split('-')
    for i in range(max(len(left), len(right))):
        if i >= len(left):
            return -1
        if i >= len(right):
            return 1
        x, y = _part(left[i]), _part(right[i])
        if x != y:
            return -1 if x < y else 1
    return 0


class PageModel:
    """One rendered page as the browser holds it."""

    def __init__(self, shown, lastEventId):
        self.shown = list(shown)          # keys, in the order shown
        self._keys = set(self.shown)
        self.lastEventId = lastEventId or None
        self.reloaded = False

    def apply(self, event):
        """Apply one received event; says what became of it: 'old' (id
        not above the last), 'shown' (its key is shown already),
        'applied', 'reload', or 'other' (an event of another type)."""
        if self.reloaded:
            return 'old'
        eventId = event.get('id')
        if eventId not in (None, ''):
            if (self.lastEventId is not None and
                    compareEventIds(eventId, self.lastEventId) <= 0):
                return 'old'
            self.lastEventId = str(eventId)
        kind = event.get('event')
        if kind == 'reload':
            self.reloaded = True
            return 'reload'
        if kind != 'append':
            return 'other'
        key = event.get('key')
        if key in self._keys:
            return 'shown'
        self._keys.add(key)
        self.shown.append(key)
        return 'applied'
