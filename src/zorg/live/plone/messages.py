"""The add-on's message factory: its i18n domain is ``zorg.live``
(translations in locales/, registered in configure.zcml)."""

from zope.i18nmessageid import MessageFactory

_ = MessageFactory('zorg.live')
