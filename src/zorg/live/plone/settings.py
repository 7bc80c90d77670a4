"""Reading the settings, and the control panel that edits them."""

from plone.app.registry.browser import controlpanel
from plone.registry.interfaces import IRegistry
from zope.component import queryUtility

from zorg.live.plone.interfaces import ISettings
from zorg.live.plone.messages import _


def settings():
    """The ISettings record proxy, or None where the add-on is not
    installed (its records are missing)."""
    registry = queryUtility(IRegistry)
    if registry is None:
        return None
    try:
        return registry.forInterface(ISettings, prefix='zorg.live')
    except KeyError:
        return None


class SettingsForm(controlpanel.RegistryEditForm):
    schema = ISettings
    schema_prefix = 'zorg.live'
    label = _('Live pages')
    description = _('Presence, change notices and who is editing, as '
                    'they happen.')


class ControlPanel(controlpanel.ControlPanelFormWrapper):
    form = SettingsForm
