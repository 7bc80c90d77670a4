"""The demo's content: chat rooms, a shared counter, the upload list."""

from zope.interface import Attribute, Interface


class IReadRoom(Interface):
    """A chat room: a group of live pages with a persistent history."""

    title = Attribute("The room's title.")

    def last(count=50):
        """The newest `count` messages, oldest first (dicts with nickname,
        text, time, principal, system)."""

    def __len__():
        """The number of stored messages."""


class IRoom(IReadRoom):

    def add(nickname, text, principal=None, system=False):
        """Store a message; return it."""


class IReadCounter(Interface):

    value = Attribute("The current value (an int).")


class ICounter(IReadCounter):
    """A number shared by every browser: the model-driven update demo."""

    def increment():
        """Add one; return the new value."""


class IReadUploads(Interface):
    """What was uploaded through upload.html (not the bytes: the demo keeps
    the name, size and SHA-256 of each file)."""

    title = Attribute("The page's title.")

    def last(count=20):
        """The newest `count` uploads, newest first (dicts with name, size,
        sha256, principal, nickname, time)."""


class IUploads(IReadUploads):

    def add(name, size, sha256, principal, nickname):
        """Record an upload; return its record."""
