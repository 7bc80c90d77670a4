"""The page under test: a chat whose messages are stored in the ZODB (on
the root folder, in commit order) and published in the same transaction.

Every message is a text that names it (the driver makes it unique and
uses it as its input id too): the HTML shows the stored messages as
``<p class="msg" data-live-key="TEXT">``, and each post publishes one
``append`` with the same key, so that a page that renders a message and
then receives it again applies it once (livepage.js; rule 10 of
delivery.py).

``post(text, slow)`` with ``slow`` > 0 makes its commit slow between the
vote and the finish (`SlowFinish`): the events are published and the
storage has voted, but the commit is not visible to other connections
for `slow` seconds -- the window of the render/subscribe race.
"""

import re
import time
from html import escape

import transaction
from transaction.interfaces import IDataManager
from zope.interface import implementer
from zope.security.proxy import removeSecurityProxy

from zorg.live.core.events import Append, safe
from zorg.live.page.page import LivePage, handler

ATTRIBUTE = 'zorg_live_fault_chat'
GROUP = 'fault-chat'
TEXT = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')
MAX_SLOW = 5.0

PAGE_HTML = """\
<!DOCTYPE html>
<html>
  <head><meta charset="utf-8"><title>fault chat</title></head>
  <body><div id="log">%s</div></body>
</html>"""


def messageHTML(text):
    return safe('<p class="msg" data-live-key="%s">%s</p>'
                % (escape(text, quote=True), escape(text)))


def storedMessages(root):
    """The stored messages, in commit order."""
    return tuple(getattr(removeSecurityProxy(root), ATTRIBUTE, ()))


# Sorts before any storage's sort key (a ZEO address, a path): its
# finish runs before the storage's, whose finish makes the commit visible.
SLOW_SORT_KEY = '!zorg.live.tests.faults.slow-finish'


@implementer(IDataManager)
class SlowFinish:
    """Sleeps `seconds` in tpc_finish, after every vote (the events are
    published) and before the storage finishes (the data are not yet
    visible to other connections)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.transaction_manager = transaction.manager

    def sortKey(self):
        return SLOW_SORT_KEY

    def tpc_finish(self, txn):
        time.sleep(self.seconds)

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_vote = tpc_abort = abort


class FaultChatPage(LivePage):
    """The chat of the fault schedules: one group, messages stored."""

    connection = 'tab'

    def getGroupId(self):
        return GROUP

    def render(self):
        self.messages = storedMessages(self.context)
        return super().render()

    def renderBody(self):
        return PAGE_HTML % ''.join(str(messageHTML(text))
                                   for text in self.messages)

    @handler
    def post(self, text, slow=0):
        text, slow = str(text), float(slow)
        if not TEXT.match(text) or not 0 <= slow <= MAX_SLOW:
            from zorg.live.interfaces import BadRequest
            raise BadRequest('post(text, slow): text is 1 to 64 letters, '
                             'digits, "-" or "_", slow 0 to %s seconds'
                             % MAX_SLOW)
        root = removeSecurityProxy(self.context)
        setattr(root, ATTRIBUTE, storedMessages(root) + (text,))
        self.publish(Append('log', messageHTML(text), key=text))
        if slow:
            transaction.get().join(SlowFinish(slow))
