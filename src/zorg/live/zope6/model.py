"""``<live:update>`` on Zope 6: OFS object events update the pages.

The core's ModelUpdate is used as it is, with two Zope answers: the group
of an object is its physical path (as the Zope LivePage's), and the
fragment is rendered with the request ZPublisher is publishing
(zope.globalrequest), so Five views render with acquisition and Zope's
security as the user who made the change. The update is published after
the transaction commits (the core's publishOnCommit).
"""

from zope.globalrequest import getRequest

from zorg.live.page import model as core
from zorg.live.zope6.page import physicalGroup


class ModelUpdate(core.ModelUpdate):
    """The subscriber that one ``<live:update>`` declares, on Zope."""

    def __init__(self, view, target, group=None):
        super().__init__(view, target, group or physicalGroup)

    def render(self, obj, request=None):
        return super().render(obj, request or getRequest())


def updateDirective(_context, for_, view, target, event=None):
    """``<live:update>`` under Zope: the core's, with ModelUpdate above."""
    core.updateDirective(_context, for_, view, target, event,
                         factory=ModelUpdate)
