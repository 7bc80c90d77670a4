"""Helpers of the Plone tests: users' HTTP clients (basic auth, as PAS
accepts it), Plone's forms, and pages read over the wire protocol."""

import base64
import json
import re
import time

from zorg.live.plone.tests.instance import PASSWORD
from zorg.live.tests.platforms import Client

WAIT = 20     # seconds: the longest one condition is waited for

# In Chromium: who is under "Here now" ("id=Full Name ..."), and the
# visible text of the notices.
ONLINE = "() => Array.from(document.querySelectorAll('#zorg-live-online " \
         "li'), (li) => li.dataset.principal + '=' + li.title).join(' ')"
NOTICE = "() => (document.querySelector('#zorg-live-notice') || {})" \
         ".innerText || ''"
EDITING = "() => (document.querySelector('#zorg-live-editing') || {})" \
          ".innerText || ''"


def waitOnline(page, expected):
    page.wait_for_function('(expected) => (%s)() === expected' % ONLINE,
                           arg=expected)


def password(login):
    return 'admin' if login == 'admin' else PASSWORD % login


def auth(login):
    token = base64.b64encode(('%s:%s' % (login, password(login))).encode())
    return 'Basic ' + token.decode()


class PloneClient(Client):
    def __init__(self, server, login=None):
        super().__init__(server)
        self.login = login
        if login:
            self.headers['Authorization'] = auth(login)

    def form(self, path, fields):
        from urllib.parse import urlencode
        return self.request('POST', path, urlencode(fields),
                            {'Content-Type':
                             'application/x-www-form-urlencoded'})

    def authenticator(self, path):
        status, html = self.get(path)
        assert status == 200, html[-2000:]
        return re.search(r'name="_authenticator" type="hidden" '
                         r'value="([^"]+)"', html).group(1)

    def save(self, path, title):
        """Save a document through its edit form, as a browser would."""
        token = self.authenticator(path + '/edit')
        status, body = self.form(path + '/edit', [
            ('form.widgets.IDublinCore.title', title),
            ('form.buttons.save', 'Save'), ('_authenticator', token)])
        assert status in (200, 302), body[-2000:]

    def add(self, path, portal_type, title):
        """Add content through Plone's add form."""
        form = '%s/++add++%s' % (path, portal_type)
        token = self.authenticator(form)
        status, body = self.form(form, [
            ('form.widgets.IDublinCore.title', title),
            ('form.buttons.save', 'Save'), ('_authenticator', token)])
        assert status in (200, 302), body[-2000:]

    def settings(self, **values):
        """Save the "Live pages" control panel with these settings on
        (the others off)."""
        path = '/Plone/@@zorg-live-settings'
        token = self.authenticator(path)
        fields = [('form.buttons.save', 'Save'), ('_authenticator', token)]
        for name in ('presence', 'notify_changes', 'refresh_in_place',
                     'show_editing'):
            fields.append(('form.widgets.%s-empty-marker' % name, '1'))
            if values.get(name):
                fields.append(('form.widgets.%s:list' % name, 'selected'))
        status, body = self.form(path, fields)
        assert status in (200, 302), body[-2000:]

    def transition(self, path, action):
        """A workflow transition, as the state menu does it (the token
        from a page of another group: opening the document would join)."""
        token = self.authenticator('/Plone/prefs_install_products_form')
        status, body = self.form(path + '/content_status_modify', [
            ('workflow_action', action), ('_authenticator', token)])
        assert status in (200, 302), body[-2000:]


def addons(plone, action, product='zorg.live.plone'):
    """Install or uninstall through the add-ons control panel's forms."""
    admin = PloneClient(plone, 'admin')
    token = admin.authenticator('/Plone/prefs_install_products_form')
    field = 'install_product' if action == 'install' else 'uninstall_product'
    status, body = admin.form('/Plone/%s_products' % action, [
        (field, product), ('form.submitted', action.title()),
        ('_authenticator', token)])
    assert status in (200, 302), body[-2000:]
    admin.close()


class Page:
    """A document as one user opened it over HTTP: the live page that its
    viewlet registered (None when it registered none), whose events are
    read with long-poll output requests."""

    def __init__(self, plone, login, path):
        self.login = login
        self.client = PloneClient(plone, login)
        self.status, self.html = self.client.get(path)
        match = re.search(r'data-client-url="([^"]+)"', self.html)
        self.path = (re.sub(r'^http://[^/]+', '', match.group(1))
                     if match else None)
        self.outputNum = 0
        self.events = []

    @property
    def live(self):
        return self.path is not None

    def read(self):
        """One output request; returns its events (idle left out)."""
        status, body = self.client.get('%s/output?outputNum=%d'
                                       % (self.path, self.outputNum))
        assert status == 200, (self.login, status, body)
        self.outputNum += 1
        events = [e for e in json.loads(body)['events']
                  if e['event'] != 'idle']
        self.events += events
        return events

    def readUntil(self, condition, what):
        """Read until `condition(events)` holds, WAIT seconds at most."""
        deadline = time.monotonic() + WAIT
        while not condition(self.events):
            assert time.monotonic() < deadline, (
                '%s: no %s in %s' % (self.login, what, self.events))
            self.read()
        return self.events

    def joined(self, principal):
        return self.readUntil(lambda events: any(
            e['event'] == 'join' and e['principal'] == principal
            for e in events) or closed(events), 'join of ' + principal)

    def notices(self):
        return [e['html'] for e in self.events
                if e['event'] == 'update' and e['target'] == 'zorg-live-notice']

    def close(self):
        self.client.close()


def closed(events):
    return any(e['event'] == 'close' for e in events)
