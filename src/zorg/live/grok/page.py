"""LivePage as a ``grok.View``."""

import grok
from zope.publisher.publish import mapply

from zorg.live.page import page as core


class LivePage(core.LivePage, grok.View):
    """A Grok view that is a live page: Grok calls ``update()`` and renders
    the associated template; the page registers its client and gets the
    client script as every LivePage does."""

    grok.baseclass()

    def __call__(self):
        mapply(self.update, (), self.request)
        if self.request.response.getStatus() in (302, 303):
            return None     # update() redirected: nothing to render
        return core.LivePage.render(self)

    def render(self):
        return core.LivePage.render(self)
    # Grok's rule "a template or a render method": this render is the
    # base class's, so the associated template is the page's own.
    render.base_method = True

    def renderBody(self):
        return self._render_template()
