"""GenericSetup: hide the uninstall profile from the add-ons panel."""

from plone.base.interfaces import INonInstallable
from zope.interface import implementer


@implementer(INonInstallable)
class HiddenProfiles:

    def getNonInstallableProfiles(self):
        return ['zorg.live.plone:uninstall']
