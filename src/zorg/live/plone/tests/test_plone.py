"""The Plone 6 add-on on a real Plone site, in headless chromium.

`make test-plone` runs this (in its own virtualenv with Plone); the site
is made by the test (PloneInstance: mkwsgiinstance, then Plone's API), the
add-on is installed and uninstalled through the add-ons control panel, and
the instance is served by LiveServerHTTP (``use = egg:zorg.live#main``).
"""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from zorg.live.plone.tests.helpers import (
    NOTICE, ONLINE, PloneClient, addons, password, waitOnline)
from zorg.live.plone.tests.instance import PloneInstance
from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    artifacts, browser, new_context, screenshot)

pytestmark = pytest.mark.browser



@pytest.fixture(scope='module')
def plone(tmp_path_factory):
    instance = PloneInstance(tmp_path_factory.mktemp('plone') / 'instance',
                             threads=2, refresh_interval=5,
                             heartbeat_interval=2)
    with instance:
        yield instance


def openPage(new_context, plone, login, path):
    """A browser logged in through Plone's login form (its cookie goes
    with every request, the shared connection's handshake included)."""
    context = new_context()
    page = context.new_page()
    page.goto(plone.url('/Plone/login'))
    page.fill('input[name="__ac_name"]', login)
    page.fill('input[name="__ac_password"]', password(login))
    page.press('input[name="__ac_password"]', 'Enter')
    page.wait_for_function('() => document.cookie.includes("__ac") || '
                           '!document.querySelector(\'input[name="__ac_password"]\')')
    page.goto(plone.url(path))
    page.wait_for_function('() => window.LivePage && LivePage.status === '
                           '"open"')
    return page



def test_presence_notices_and_permissions_from_install_to_uninstall(
        plone, new_context, screenshot):
    # Before the add-on is installed, pages are not live.
    ann = PloneClient(plone, 'ann')
    status, html = ann.get('/Plone/doc')
    assert status == 200 and 'zorg-live' not in html
    addons(plone, 'install')
    status, html = ann.get('/Plone/doc')
    assert 'id="zorg-live"' in html

    # Ann sees Bob, then Carol, appear on the document, by full name.
    a = openPage(new_context, plone, 'ann', '/Plone/doc')
    b = openPage(new_context, plone, 'bob', '/Plone/doc')
    waitOnline(a, 'ann=Ann Arbor bob=Bob Dylan')
    # Each browser's pages share its WebSocket (@@live knows the PAS user).
    for page in (a, b):
        assert page.evaluate('() => [LivePage.connection, '
                             'LivePage.transport]') == ['shared', 'ws']
    c = openPage(new_context, plone, 'carol', '/Plone/doc')
    waitOnline(a, 'ann=Ann Arbor bob=Bob Dylan carol=Carol King')

    # The site manager takes Carol's Reader role away (sharing form).
    admin = PloneClient(plone, 'admin')
    token = admin.authenticator('/Plone/doc/@@sharing')
    status, body = admin.form('/Plone/doc/@@sharing', [
        ('entries.id:records', 'carol'), ('entries.type:records', 'user'),
        ('inherit', 'on'), ('form.submitted', '1'),
        ('form.button.Save', 'Save'), ('_authenticator', token)])
    assert status in (200, 302), body[-2000:]
    carol = PloneClient(plone, 'carol')
    status, body = carol.request(
        'POST', '/Plone/doc/@@live-presence/@@client/register', '')
    assert (status, json.loads(body)['error']) == (403, 'forbidden')
    # Her open page is told at once, and closed: it hears nothing more,
    # and she leaves the others' "Here now".
    c.wait_for_function('() => LivePage.status === "closed"')
    assert 'may no longer view' in c.evaluate(NOTICE)
    waitOnline(a, 'ann=Ann Arbor bob=Bob Dylan')

    # Bob saves the document in his browser: Ann's page says so within a
    # second of his save; Carol's page, open since before, gets nothing.
    edit = b.context.new_page()
    edit.goto(plone.url('/Plone/doc/edit'))
    edit.fill('#form-widgets-IDublinCore-title', 'The document, revised')
    with edit.expect_navigation(wait_until='commit'):
        edit.click('#form-buttons-save')
    saved = time.monotonic()
    a.wait_for_function('() => (%s)().includes("changed by Bob Dylan")'
                        % NOTICE, timeout=1000)
    assert time.monotonic() - saved < 1.0
    screenshot(a, 'notice')
    # Carol's page, closed, shows neither the notice nor who left since.
    edit.close()
    b.close()
    waitOnline(a, 'ann=Ann Arbor')
    assert 'changed by' not in c.evaluate(NOTICE)
    assert 'bob=' in c.evaluate(ONLINE)
    assert 'revised' not in c.content()

    # Uninstalling removes every trace.
    for page in (a, c):
        page.close()
    for client in (ann, admin, carol):
        client.close()
    addons(plone, 'uninstall')
    ann, admin = PloneClient(plone, 'ann'), PloneClient(plone, 'admin')
    status, html = ann.get('/Plone/doc')
    assert status == 200 and 'zorg-live' not in html
    assert admin.get('/Plone/@@zorg-live-settings')[0] == 404
    ann.close()
    admin.close()
    plone.stop()
    traces = subprocess.run(
        [sys.executable, '-c', TRACES, plone.zopeConf], cwd=plone.dir,
        capture_output=True, text=True, check=True).stdout
    assert traces.splitlines()[-1] == '[]', traces


# Run offline on the stopped instance: anything of the add-on left in the
# site (registry records, browser layer, control panel, installed profile).
TRACES = textwrap.dedent("""\
    import sys
    from Zope2.Startup.run import configure_wsgi
    configure_wsgi(sys.argv[1])
    import Zope2
    from zope.component.hooks import setSite
    app = Zope2.app()
    site = app.Plone
    setSite(site)
    from plone.browserlayer.utils import registered_layers
    from zorg.live.plone.interfaces import IZorgLiveLayer
    traces = []
    traces += [k for k in site.portal_registry.records.keys()
               if k.startswith('zorg.live')]
    traces += ['layer' for l in registered_layers() if l is IZorgLiveLayer]
    traces += [a.getId() for a in site.portal_controlpanel.listActions()
               if a.getId() == 'zorg-live']
    if site.portal_setup.getLastVersionForProfile(
            'zorg.live.plone:default') != 'unknown':
        traces.append('profile')
    print(sorted(traces))
    """)
