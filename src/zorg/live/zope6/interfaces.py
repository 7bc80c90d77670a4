"""Interfaces of the Zope 6 glue."""

from zorg.live.interfaces import ILivePage


class IZopeLivePage(ILivePage):
    """A LivePage published by ZPublisher (a Five browser view)."""
