"""A Grok application with a live chat (``@@chat``) showing who is online.

The application is created in the root folder when the database opens
(a Grok site would do it in its admin UI).
"""

from html import escape

import grok
import transaction
from zope.app.appsetup.bootstrap import getInformationFromEvent
from zope.processlifetime import IDatabaseOpenedWithRoot

from zorg.live import grok as live


class ChatApp(grok.Application, grok.Container):
    """The chat application."""


class Chat(live.LivePage):
    """Everyone on the page sees who else is there and what they say."""

    grok.context(ChatApp)
    grok.require('zope.View')
    presence = True
    presenceTarget = 'online'

    def update(self):
        self.title = self.request.principal.title

    def online(self):
        manager, group = self.manager, self.getGroupId()
        found = []
        for principal in manager.whoIsOnline(group):
            clients = manager.getClientsFor(principal, group)
            found.append({'id': principal, 'title':
                          clients[0].title if clients else principal})
        return found

    @live.handler
    def say(self, text):
        self.publish(live.Append('log', live.safe(
            '<p class="msg"><b>%s</b>: <span>%s</span></p>'
            % (escape(self.principalInfo()[1]), escape(str(text))))))


@grok.subscribe(IDatabaseOpenedWithRoot)
def createApp(event):
    db, connection, root, root_folder = getInformationFromEvent(event)
    if 'chat' not in root_folder:
        root_folder['chat'] = ChatApp()
        transaction.commit()
    connection.close()
