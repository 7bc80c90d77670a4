"""A real Plone 6 site in a Zope instance made by ``mkwsgiinstance``.

The site (classic UI), its users and documents are created through
Plone's API before the instance serves.

- `PloneInstance`: the add-on is *not* installed; the test installs it
  through the add-ons control panel, as a site administrator would.
- `ViewInstance`: the add-on installed, and one user for each way Plone
  grants View (see VIEWERS), on a private and a published document.
"""

import textwrap

from zorg.live.zope6.tests.instance import ZopeInstance

USERS = (('ann', 'Ann Arbor'), ('bob', 'Bob Dylan'), ('carol', 'Carol King'))
PASSWORD = 'secret-%s-pw'

OPEN = textwrap.dedent("""\
    import sys, transaction
    from Zope2.Startup.run import configure_wsgi
    configure_wsgi(sys.argv[1])
    import Zope2
    app = Zope2.app()
    # Imported after the database opened: importing Testing makes Zope
    # open a DemoStorage (Testing/custom_zodb.py) instead.
    from Testing.makerequest import makerequest
    from zope.component.hooks import setSite
    from zope.globalrequest import setRequest
    from AccessControl.SecurityManagement import newSecurityManager
    from AccessControl.users import system
    app = makerequest(app)
    setRequest(app.REQUEST)
    newSecurityManager(None, system)
    from Products.CMFPlone.factory import addPloneSite
    site = addPloneSite(app, 'Plone', setup_content=False, extension_ids=[
        'plone.app.contenttypes:default', 'plonetheme.barceloneta:default'])
    setSite(site)
    from plone import api
    def users(pairs):
        for login, fullname in pairs:
            api.user.create(email=login + '@example.org', username=login,
                            password=%(password)r %% login,
                            properties={'fullname': fullname})
    """) % {'password': PASSWORD}

CLOSE = textwrap.dedent("""\
    app._p_jar.transaction_manager.commit()
    app._p_jar.close()
    Zope2.DB.close()
    """)

SETUP = OPEN + textwrap.dedent("""\
    users(%(users)r)
    doc = api.content.create(container=site, type='Document', id='doc',
                             title='The document')
    # Private (the default workflow's initial state): Ann and Carol may
    # read it (the test takes Carol's role away), Bob may edit it.
    api.user.grant_roles(username='ann', obj=doc, roles=['Reader'])
    api.user.grant_roles(username='carol', obj=doc, roles=['Reader'])
    api.user.grant_roles(username='bob', obj=doc, roles=['Editor', 'Reader'])
    """) % {'users': USERS} + CLOSE


# Who may view the documents of ViewInstance, and why. Ann edits both.
VIEWERS = (
    ('ann', 'Ann Arbor'),      # Editor on both documents (sharing tab)
    ('ben', 'Ben Hur'),        # Site Administrator through a group
    ('cal', 'Cal Ripken'),     # Site Administrator, directly
    ('dan', 'Dan Brown'),      # Reader of both documents (sharing tab)
    ('eve', 'Eve Arden'),      # in a group that is Reader (sharing tab)
    ('fay', 'Fay Wray'),       # a member: the workflow state decides
)

VIEW_SETUP = OPEN + textwrap.dedent("""\
    users(%(users)r)
    from plone.base.utils import get_installer
    get_installer(site, app.REQUEST).install_product('zorg.live.plone')
    # plone.restapi's JWT login, as a site that Volto serves has it.
    get_installer(site, app.REQUEST).install_product('plone.restapi')
    # Each browser's language where the site has it (the German test).
    api.portal.set_registry_record('plone.use_request_negotiation', True)
    api.portal.set_registry_record('plone.available_languages',
                                   ['en', 'de'])
    api.group.create(groupname='siteadmins', roles=['Site Administrator'])
    api.group.add_user(groupname='siteadmins', username='ben')
    api.user.grant_roles(username='cal', roles=['Site Administrator'])
    api.group.create(groupname='readers')
    api.group.add_user(groupname='readers', username='eve')
    for id in ('private', 'published', 'retracted', 'later'):
        doc = api.content.create(container=site, type='Document', id=id,
                                 title='The %%s document' %% id)
        api.user.grant_roles(username='ann', obj=doc, roles=['Editor'])
        api.user.grant_roles(username='dan', obj=doc, roles=['Reader'])
        api.group.grant_roles(groupname='readers', obj=doc,
                              roles=['Reader'])
        if id in ('published', 'retracted'):
            api.content.transition(obj=doc, transition='publish')
    # A folder listing with a private item, for per-viewer fragments.
    folder = api.content.create(container=site, type='Folder', id='folder',
                                title='The folder')
    api.content.transition(obj=folder, transition='publish')
    """) % {'users': VIEWERS} + CLOSE


class PloneInstance(ZopeInstance):
    # No ZCML of ours in the instance: Plone includes the add-on's
    # (plone.autoinclude, through zorg.live's entry point), as it does
    # for any add-on that is installed with pip.
    packages = ()
    setupScript = SETUP


class ViewInstance(PloneInstance):
    setupScript = VIEW_SETUP
