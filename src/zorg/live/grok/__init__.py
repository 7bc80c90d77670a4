"""Grok glue: a Grok view that is a LivePage.

::

    from zorg.live import grok as live

    class Chat(live.LivePage):
        grok.context(ChatApp)
        grok.require('zope.View')
        presence = True

        @live.handler
        def say(self, text):
            self.publish(live.Append('log', text))

Grok finds the view and its template (``chat_templates/chat.pt``) when it
groks the package (``<grok:grok package="." />``); zorg.live's own
registrations come with ``<include package="zorg.live.grok" />`` (or with
``<includeDependencies package="." />`` when zorg.live is among the
application's requirements). Grok runs on zope.publisher and zope.app.wsgi
like a BlueBream site, so the core is used as it is: only the rendering
differs (Grok's ``update()`` and associated template).
"""

from zorg.live.grok.page import LivePage  # noqa: F401
from zorg.live.core.events import (  # noqa: F401
    Append, Prepend, Remove, Replace, Update, safe)
from zorg.live.page.page import handler  # noqa: F401
