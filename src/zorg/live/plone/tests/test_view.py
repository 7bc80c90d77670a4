"""Who is told: exactly those whom Plone would show the document.

A real Plone 6 site (ViewInstance) with one user for each way Plone grants
View: a global role (Site Administrator) directly and through a group, a
local role from the sharing tab directly and through a group, and the
workflow state (a plain member, and anonymous visitors, see a published
document but not a private one). Pages are opened and read over HTTP
(the wire protocol's long-poll), so every user's page is a real page of
the running site; the save is Plone's edit form, the state change its
workflow menu.

Each page reads until a sentinel that every page of the group gets (the
site manager's join, published after the save): whatever the page was
told about the save came before it.
"""

import json

import pytest

from zorg.live.plone.tests.helpers import Page, PloneClient, closed
from zorg.live.plone.tests.instance import ViewInstance

pytestmark = pytest.mark.browser

LOGINS = ('ann', 'ben', 'cal', 'dan', 'eve', 'fay', None)
# Who may view each document (None: anonymous visitors).
MAY_VIEW = {
    'private': {'ann', 'ben', 'cal', 'dan', 'eve'},
    'published': {'ann', 'ben', 'cal', 'dan', 'eve', 'fay', None},
}


@pytest.fixture(scope='module')
def plone(tmp_path_factory):
    instance = ViewInstance(tmp_path_factory.mktemp('plone') / 'instance',
                            threads=2, refresh_interval=2,
                            heartbeat_interval=2)
    with instance:
        yield instance


def openAll(plone, path, logins=LOGINS):
    return {login: Page(plone, login, path) for login in logins}


def sentinel(plone, pages, path):
    """The site manager opens the document: every page still open hears
    him join, after anything published before."""
    admin = Page(plone, 'admin', path)
    assert admin.live
    for page in pages:
        page.joined('admin')
    return admin


def registerStatus(client, path):
    status, body = client.request(
        'POST', path + '/@@live-presence/@@client/register', '')
    return status, json.loads(body).get('error') if status != 200 else None


@pytest.mark.parametrize('state', ['private', 'published'])
def test_a_save_reaches_exactly_the_viewers_plone_shows_the_document(
        plone, state):
    path = '/Plone/' + state
    pages = openAll(plone, path)
    # Plone shows the document to these, and only to these: their pages
    # are live; the others register no page and may not register one.
    assert {l for l, p in pages.items() if p.live} == MAY_VIEW[state]
    for login, page in pages.items():
        if not page.live:
            assert registerStatus(page.client, path) == (403, 'forbidden')
    live = [p for p in pages.values() if p.live]

    PloneClient(plone, 'ann').save(path, 'Saved by Ann')
    sentinel(plone, live, path)
    told = {p.login for p in live
            if any('changed by' in n and 'Ann Arbor' in n
                   for n in p.notices())}
    assert told == MAY_VIEW[state]
    for page in pages.values():
        page.close()


def test_a_state_change_while_open_closes_the_pages_of_who_lost_view(plone):
    """Published, then retracted while open: the member and the anonymous
    visitor lose View. Their pages are told and closed at once, and hear
    nothing more: no presence, no notice."""
    path = '/Plone/retracted'
    pages = openAll(plone, path, ('dan', 'fay', None))
    assert all(p.live for p in pages.values())
    admin = PloneClient(plone, 'admin')
    admin.transition(path, 'retract')
    for login in ('fay', None):
        events = pages[login].readUntil(closed, 'close')
        assert events[-1]['event'] == 'close', events
        assert 'may no longer view' in pages[login].notices()[-1]
        count = len(events)
        # Polling on regardless, the page hears nothing more.
        PloneClient(plone, 'ann').save(path, 'Saved after the retract')
        pages['dan'].readUntil(lambda events: any(
            'changed by' in n for n in pages['dan'].notices()), 'notice')
        pages[login].read()
        assert len(pages[login].events) == count, pages[login].events
    # Dan (Reader) keeps View: he hears the others go and the manager come.
    sentinel(plone, [pages['dan']], path)
    assert not closed(pages['dan'].events)
    for page in pages.values():
        page.close()
    admin.close()


def test_who_gains_view_by_a_state_change_starts_hearing(plone):
    path = '/Plone/later'
    fay = Page(plone, 'fay', path)
    assert not fay.live
    assert registerStatus(fay.client, path) == (403, 'forbidden')
    PloneClient(plone, 'admin').transition(path, 'publish')
    fay = Page(plone, 'fay', path)
    visitor = Page(plone, None, path)
    assert fay.live and visitor.live
    PloneClient(plone, 'ann').save(path, 'Saved once published')
    sentinel(plone, [fay, visitor], path)
    for page in (fay, visitor):
        assert any('changed by' in n for n in page.notices()), page.events
        page.close()


def parts(page, target):
    """The HTML of `target` in the page's in-place refreshes, in order."""
    return [u['html'] for e in page.events if e['event'] == 'multi'
            for u in e['events'] if u['target'] == target]


def test_in_place_refresh_shows_each_viewer_the_listing_they_may_see(plone):
    """With "Refresh the content in place" (the control panel), a change
    of a folder sends each viewer its listing as rendered for them: the
    private item that the manager adds reaches the Site Administrator's
    page, not the member's or the anonymous visitor's; nobody gets the
    "Reload" notice."""
    admin = PloneClient(plone, 'admin')
    admin.settings(presence=True, notify_changes=True, show_editing=True,
                   refresh_in_place=True)
    try:
        path = '/Plone/folder'
        pages = openAll(plone, path, ('cal', 'fay', None))
        assert all(p.live for p in pages.values())
        admin.add(path, 'Document', 'For managers only')
        for page in pages.values():
            page.readUntil(lambda events: any(
                e['event'] == 'multi' for e in events), 'refresh')
        cal, fay, visitor = (parts(pages[l], 'content-core')[-1]
                             for l in ('cal', 'fay', None))
        assert 'For managers only' in cal
        assert 'For managers only' not in fay
        assert 'For managers only' not in visitor
        assert 'The folder' in parts(pages['fay'], 'zorg-live-title')[-1]
        for page in pages.values():
            assert not any('changed by' in n for n in page.notices())
            page.close()
    finally:
        admin.settings(presence=True, notify_changes=True,
                       show_editing=True)
        admin.close()


def test_leaving_the_group_that_gave_view_closes_the_page(plone):
    """Ben is a Site Administrator through a group: taken out of it (the
    group's membership form), his open page of the private document is
    told and closed; Dan, a Reader there, hears on."""
    path = '/Plone/private'
    ben, dan = Page(plone, 'ben', path), Page(plone, 'dan', path)
    assert ben.live and dan.live
    admin = PloneClient(plone, 'admin')
    token = admin.authenticator('/Plone/prefs_install_products_form')
    status, body = admin.form('/Plone/@@usergroup-groupmembership', [
        ('groupname', 'siteadmins'), ('form.submitted', '1'),
        ('delete:list', 'ben'), ('form.button.Edit', 'Remove selected'),
        ('_authenticator', token)])
    assert status in (200, 302), body[-2000:]
    ben.readUntil(closed, 'close')
    assert 'may no longer view' in ben.notices()[-1]
    count = len(ben.events)
    PloneClient(plone, 'ann').save(path, 'Saved after Ben left')
    dan.readUntil(lambda events: any('changed by' in n
                                     for n in dan.notices()), 'notice')
    assert not closed(dan.events)
    ben.read()
    assert len(ben.events) == count, ben.events
    for page in (ben, dan):
        page.close()
    admin.close()


def test_losing_a_global_role_closes_the_page(plone):
    """Cal is a Site Administrator: the users control panel takes the
    role away while his page of the private document is open; it is
    told and closed."""
    path = '/Plone/private'
    cal = Page(plone, 'cal', path)
    assert cal.live
    admin = PloneClient(plone, 'admin')
    token = admin.authenticator('/Plone/prefs_install_products_form')
    status, body = admin.form('/Plone/@@usergroup-userprefs', [
        ('users.id:records', 'cal'), ('users.roles:list:records', 'Member'),
        ('form.submitted', '1'), ('form.button.Modify', 'Apply changes'),
        ('_authenticator', token)])
    assert status in (200, 302), body[-2000:]
    cal.readUntil(closed, 'close')
    assert 'may no longer view' in cal.notices()[-1]
    cal.close()
    admin.close()
