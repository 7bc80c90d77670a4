"""A real Plone 6 site in a Zope instance made by ``mkwsgiinstance``.

The site (classic UI), its users and a private document shared with
them are created through Plone's API before the instance serves; the
add-on is *not* installed: the test installs it through the add-ons
control panel, as a site administrator would.
"""

import textwrap

from zorg.live.zope6.tests.instance import ZopeInstance

USERS = (('ann', 'Ann Arbor'), ('bob', 'Bob Dylan'), ('carol', 'Carol King'))
PASSWORD = 'secret-%s-pw'

SETUP = textwrap.dedent("""\
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
    for login, fullname in %(users)r:
        api.user.create(email=login + '@example.org', username=login,
                        password=%(password)r %% login,
                        properties={'fullname': fullname})
    doc = api.content.create(container=site, type='Document', id='doc',
                             title='The document')
    # Private (the default workflow's initial state): Ann and Carol may
    # read it (the test takes Carol's role away), Bob may edit it.
    api.user.grant_roles(username='ann', obj=doc, roles=['Reader'])
    api.user.grant_roles(username='carol', obj=doc, roles=['Reader'])
    api.user.grant_roles(username='bob', obj=doc, roles=['Editor', 'Reader'])
    app._p_jar.transaction_manager.commit()
    app._p_jar.close()
    Zope2.DB.close()
    """) % {'users': USERS, 'password': PASSWORD}


class PloneInstance(ZopeInstance):
    # No ZCML of ours in the instance: Plone includes the add-on's
    # (plone.autoinclude, through zorg.live's entry point), as it does
    # for any add-on that is installed with pip.
    packages = ()
    setupScript = SETUP
