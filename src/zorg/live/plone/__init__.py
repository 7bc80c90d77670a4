"""zorg.live for Plone 6: an add-on (GenericSetup profile
``zorg.live.plone:default``) that shows on every page who else is there,
and tells the viewers of a document when someone else saves it.

Built on the Zope 6 glue (zorg.live.zope6) and the core; what is Plone's
here: the browser layer that the profile installs (nothing shows before),
the viewlet, the settings in plone.registry with their control panel, and
the permission check of every notice (Plone's View on the document).
"""
