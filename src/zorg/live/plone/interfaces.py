"""The add-on's browser layer and settings."""

from zope import schema
from zope.interface import Interface
from zope.publisher.interfaces.browser import IDefaultBrowserLayer


class IZorgLiveLayer(IDefaultBrowserLayer):
    """Requests of a site where the add-on is installed."""


class ISettings(Interface):
    """Live pages settings (plone.registry, the "Live pages" control
    panel)."""

    presence = schema.Bool(
        title='Show who else is here',
        description='Every page shows the other people who have it open.',
        default=True, required=False)

    notify_changes = schema.Bool(
        title='Tell viewers when a document changes',
        description='When someone saves a page, everyone viewing it is '
                    'told who changed it, with a link to reload.',
        default=True, required=False)
