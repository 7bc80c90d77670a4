"""Persistent content of the demo, created in the root folder at startup:
the chat rooms, the counter and the upload list."""

import time

import transaction
from BTrees.Length import Length
from BTrees.LOBTree import LOBTree
from persistent import Persistent
from zope.app.appsetup.bootstrap import getInformationFromEvent
from zope.container.contained import Contained
from zope.interface import implementer

from zorg.live.demo.interfaces import ICounter, IRoom, IUploads

ROOMS = [('lobby', 'Lobby'), ('zope', 'Zope'), ('random', 'Random')]
COUNTER = 'counter'
UPLOADS = 'uploads'
KEEP_UPLOADS = 100
KEEP = 1000   # messages kept per room (the oldest are dropped)


@implementer(IRoom)
class Room(Persistent, Contained):
    """A chat room; its messages are kept in a BTree keyed by time
    (microseconds), so two posts rarely touch the same bucket."""

    def __init__(self, title=''):
        self.title = title
        self.messages = LOBTree()
        self.count = Length()

    def add(self, nickname, text, principal=None, system=False):
        now = time.time()
        key = int(now * 1e6)
        while key in self.messages:
            key += 1
        message = {'nickname': str(nickname), 'text': str(text),
                   'time': now, 'principal': principal,
                   'system': bool(system), 'key': 'm%d' % key}
        self.messages[key] = message
        self.count.change(1)
        while self.count() > KEEP:
            del self.messages[self.messages.minKey()]
            self.count.change(-1)
        return message

    def last(self, count=50):
        keys = list(self.messages.keys())[-count:] if count else []
        return [self.messages[k] for k in keys]

    def __len__(self):
        return self.count()


@implementer(ICounter)
class Counter(Persistent, Contained):
    """A shared number."""

    value = 0

    def increment(self):
        self.value += 1
        return self.value


@implementer(IUploads)
class Uploads(Persistent, Contained):
    """The records of the last uploads (a small tuple, rewritten on each
    add: uploads are rare and the list is short)."""

    title = 'Uploads'

    def __init__(self):
        self.records = ()

    def add(self, name, size, sha256, principal, nickname):
        record = {'name': str(name), 'size': int(size), 'sha256': str(sha256),
                  'principal': principal, 'nickname': str(nickname),
                  'time': time.time()}
        self.records = ((record,) + self.records)[:KEEP_UPLOADS]
        return record

    def last(self, count=20):
        return list(self.records[:count])


def bootstrap(event):
    """IDatabaseOpenedWithRoot subscriber: create the rooms and the counter
    in the root folder when they are missing (the first start)."""
    db, connection, root, root_folder = getInformationFromEvent(event)
    try:
        if root_folder is None:   # zope.app.appsetup's bootstrap made it
            return
        for name, title in ROOMS:
            if name not in root_folder:
                root_folder[name] = Room(title)
        if COUNTER not in root_folder:
            root_folder[COUNTER] = Counter()
        if UPLOADS not in root_folder:   # also in demos made before it
            root_folder[UPLOADS] = Uploads()
        transaction.commit()
    finally:
        transaction.abort()
        connection.close()
