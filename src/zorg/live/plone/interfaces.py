"""The add-on's browser layer and settings."""

from zope import schema
from zope.interface import Interface
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from zorg.live.plone.messages import _


class IZorgLiveLayer(IDefaultBrowserLayer):
    """Requests of a site where the add-on is installed."""


class ISettings(Interface):
    """Live pages settings (plone.registry, the "Live pages" control
    panel)."""

    presence = schema.Bool(
        title=_('Show who else is here'),
        description=_('Every page shows the other people who have it open.'),
        default=True, required=False)

    notify_changes = schema.Bool(
        title=_('Tell viewers when a document changes'),
        description=_('When someone saves a page, everyone viewing it is '
                      'told who changed it, with a link to reload.'),
        default=True, required=False)

    refresh_in_place = schema.Bool(
        title=_('Refresh the content in place'),
        description=_('Instead of the notice, the content area of the '
                      'viewers\' pages is replaced by the saved version, '
                      'rendered for each viewer.'),
        default=False, required=False)

    show_editing = schema.Bool(
        title=_('Show who is editing'),
        description=_('While someone has the edit form of a page open, its '
                      'viewers see who, and a second editor is warned.'),
        default=True, required=False)
