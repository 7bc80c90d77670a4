"""poll.html: a lunch poll that every open page shows live, with who is
online."""

from html import escape

from persistent.mapping import PersistentMapping
from zope.annotation.interfaces import IAnnotations
from zope.browserpage.viewpagetemplatefile import ViewPageTemplateFile
from zope.security.proxy import removeSecurityProxy

from zorg.live.interfaces import BadRequest
from zorg.live.page.event import Update, safe
from zorg.live.page.model import publishOnCommit
from zorg.live.page.page import LivePage, handler

CHOICES = ['Pizza', 'Sushi', 'Tacos']


class PollPage(LivePage):
    template = ViewPageTemplateFile('poll.pt')
    presence = True             # join/leave events for the group
    presenceTarget = 'online'   # livepage.js keeps <ul id="online">

    choices = CHOICES

    def votes(self):
        """{principal id: (title, choice)}, in the ZODB with the root."""
        annotations = IAnnotations(removeSecurityProxy(self.context))
        return annotations.setdefault('poll.votes', PersistentMapping())

    def results(self):
        """The results as HTML, for the template and for the event."""
        rows = []
        for choice in CHOICES:
            names = sorted(title for title, chosen in self.votes().values()
                           if chosen == choice)
            rows.append('<li>%s: <b>%d</b> %s</li>' % (
                escape(choice), len(names), escape(', '.join(names))))
        return safe('<ul>%s</ul>' % ''.join(rows))  # all text escaped

    @handler
    def vote(self, choice):     # called by LivePage.send('vote', [choice])
        if choice not in CHOICES:
            raise BadRequest('vote for one of %s' % ', '.join(CHOICES))
        principal = self.request.principal
        self.votes()[principal.id] = (principal.title, choice)
        # Every page of the group gets the new results once the vote is
        # committed (nothing is sent if the transaction fails).
        publishOnCommit(Update('results', self.results()), self.getGroupId())
