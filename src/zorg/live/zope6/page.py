"""LivePage on Zope 6: a Five browser view.

Subclass it as on BlueBream (template, ``@handler`` methods, ``presence``)
and register it with ``<browser:page>``; Five's directive mixes in its own
view base, which gives the page Zope's security declarations.
"""

from AccessControl import getSecurityManager
from AccessControl.SpecialUsers import nobody
from Acquisition import aq_inner
from zope.component.hooks import getSite
from zope.interface import implementer

from zorg.live.page import page as core
from zorg.live.zope6.interfaces import IZopeLivePage

ANONYMOUS = 'Anonymous User'


def userInfo(user=None):
    """(id, full name, anonymous) of a Zope user (the current one by
    default). The full name is the user's ``fullname`` property where its
    user folder has one (PluggableAuthService, Plone), else its login."""
    if user is None:
        user = getSecurityManager().getUser()
    if user is None or user is nobody or user.getUserName() == ANONYMOUS:
        return ANONYMOUS, ANONYMOUS, True
    userid = user.getId() or user.getUserName()
    title = None
    getProperty = getattr(user, 'getProperty', None)
    if getProperty is not None:
        title = getProperty('fullname', None)
    return userid, title or user.getUserName(), False


def physicalGroup(obj):
    """The group of the pages showing an OFS object: its physical path."""
    return '/'.join(aq_inner(obj).getPhysicalPath()) or '/'


@implementer(IZopeLivePage)
class LivePage(core.LivePage):
    """Base class of live pages on Zope 6 (a browser view)."""

    def getGroupId(self):
        return physicalGroup(self.context)

    def applicationURL(self):
        # ZPublisher's name for the (virtual-host aware) root URL.
        return self.request['BASE1']

    def principalInfo(self):
        return userInfo()

    def liveURL(self):
        # Where the users are known: the current site (a Plone portal has
        # its own user folder, which the root's @@live would not ask).
        site = getSite()
        url = getattr(aq_inner(site), 'absolute_url', None) if site else None
        return '%s/@@live' % (url() if url is not None
                              else self.applicationURL())

    def online(self):
        """[(user id, full name)] of who has a page of the group open,
        for rendering the presence list with the page."""
        manager, group = self.manager, self.getGroupId()
        found = []
        for principal in manager.whoIsOnline(group):
            clients = manager.getClientsFor(principal, group)
            found.append((principal,
                          clients[0].title if clients else principal))
        return found

    def requestPrincipalId(self):
        # A Zope request has no zope.security principal: reading
        # request.principal would find a form field of that name.
        return self.principalInfo()[0]
