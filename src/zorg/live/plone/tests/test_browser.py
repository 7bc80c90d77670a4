"""Two people in Chromium on a themed Plone site: Plone's look of "Here
now", and who is editing, as it happens.

The browsers use http://localhost:<port>/ (127.0.0.1 is one of Plone's
unthemed host names, where pages come without Barceloneta; see
docs/plone.txt), log in through Plone's login form and share their
WebSocket as real browsers do.

The screenshot test keeps the look: the content column's top (Here now
and the title) is compared with docs/plone-here-now.png, the picture the
docs show. ``ZORG_UPDATE_SCREENSHOTS=1 make test-plone`` writes the
pictures anew after a change of the look that is meant.
"""

import os
import pathlib

import pytest

from zorg.live.plone.tests.helpers import (
    EDITING, password, waitOnline)
from zorg.live.plone.tests.instance import ViewInstance
from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    artifacts, browser, new_context)

pytestmark = pytest.mark.browser

DOCS = pathlib.Path(__file__).resolve().parents[5] / 'docs'
UPDATE = os.environ.get('ZORG_UPDATE_SCREENSHOTS') == '1'


@pytest.fixture(scope='module')
def plone(tmp_path_factory):
    instance = ViewInstance(tmp_path_factory.mktemp('plone') / 'instance',
                            threads=3, refresh_interval=5,
                            heartbeat_interval=2)
    with instance:
        yield instance


def themed(plone, path=''):
    return 'http://localhost:%d/%s' % (plone.port, path.lstrip('/'))


def login(new_context, plone, user, path, locale='en-US'):
    context = new_context(locale=locale,
                          viewport={'width': 1280, 'height': 900})
    page = context.new_page()
    page.goto(themed(plone, '/Plone/login'))
    page.fill('input[name="__ac_name"]', user)
    page.fill('input[name="__ac_password"]', password(user))
    with page.expect_navigation():
        page.press('input[name="__ac_password"]', 'Enter')
    page.goto(themed(plone, path))
    page.wait_for_function('() => window.LivePage && LivePage.status === '
                           '"open"')
    return page



def top(page, path):
    """The page from its top to the bottom of the title (the date below
    changes from day to day): a PNG, also kept in the test artifacts."""
    left, bottom = page.evaluate(
        '() => [(document.querySelector("#edit-zone") || document.body)'
        '.getBoundingClientRect().right % 1280, document.querySelector('
        '"#content > header > h1").getBoundingClientRect().bottom + 12]')
    # Without the toolbar on the left: it shows the time.
    return page.screenshot(path=str(path), clip={
        'x': left, 'y': 0, 'width': 1280 - left, 'height': bottom})


def compareWithDocs(shot, name):
    """The screenshot `shot` (PNG bytes) against docs/`name`: same size,
    and on average less than 2% off per channel (anti-aliasing)."""
    from io import BytesIO

    from PIL import Image, ImageChops, ImageStat
    reference = DOCS / name
    if UPDATE or not reference.exists():
        reference.write_bytes(shot)
        assert UPDATE, ('%s was missing and is written now: look at it, '
                        'commit it, and run again' % reference)
        return
    new = Image.open(BytesIO(shot)).convert('RGB')
    old = Image.open(reference).convert('RGB')
    assert new.size == old.size, (new.size, old.size)
    difference = ImageStat.Stat(ImageChops.difference(new, old)).mean
    assert max(difference) < 0.02 * 255, difference


def test_here_now_looks_like_plone(plone, new_context, artifacts):
    """Avatars (initials on each person's colour, the full name on hover),
    compact, above the title, in Barceloneta; the docs' picture."""
    ann = login(new_context, plone, 'ann', '/Plone/published')
    dan = login(new_context, plone, 'dan', '/Plone/published')
    eve = login(new_context, plone, 'eve', '/Plone/published')
    waitOnline(ann, 'ann=Ann Arbor dan=Dan Brown eve=Eve Arden')
    # Themed: Barceloneta's CSS is there, and the list sits in the
    # content column, just above the title.
    assert ann.evaluate('() => !!document.querySelector('
                        '"link[href*=barceloneta]")')
    assert ann.evaluate('() => document.querySelector("#content #zorg-live")'
                        '.compareDocumentPosition(document.querySelector('
                        '"#content h1")) & Node.DOCUMENT_POSITION_FOLLOWING')
    avatars = ann.evaluate('''() => Array.from(document.querySelectorAll(
        '#zorg-live-online .zorg-live-avatar'), (a) => {
          const s = getComputedStyle(a);
          return [a.textContent, s.width, s.height, s.borderRadius,
                  a.closest('li').title];
        })''')
    assert avatars == [['AA', '32px', '32px', '50%', 'Ann Arbor'],
                       ['DB', '32px', '32px', '50%', 'Dan Brown'],
                       ['EA', '32px', '32px', '50%', 'Eve Arden']]
    # The names are there for screen readers, not on the screen.
    assert ann.evaluate('() => document.querySelector("#zorg-live-online '
                        '.visually-hidden").getBoundingClientRect().width'
                        ) <= 1
    # Who joins later is drawn the same way by the add-on's script.
    eve.close()
    waitOnline(ann, 'ann=Ann Arbor dan=Dan Brown')
    eve = login(new_context, plone, 'eve', '/Plone/published')
    waitOnline(ann, 'ann=Ann Arbor dan=Dan Brown eve=Eve Arden')
    assert ann.evaluate('() => document.querySelector("#zorg-live-online '
                        'li[data-principal=eve] .zorg-live-avatar")'
                        '.textContent') == 'EA'
    ann.mouse.move(0, 0)
    shot = top(ann, artifacts / 'plone-here-now.png')
    compareWithDocs(shot, 'plone-here-now.png')
    # German, as a German browser asks for it.
    dan.close()
    de = login(new_context, plone, 'dan', '/Plone/published',
               locale='de-DE')
    assert de.inner_text('.zorg-live-label') == 'Jetzt hier'


def test_who_is_editing_is_shown_at_once_and_goes_with_the_lock(
        plone, new_context, artifacts):
    """Ann opens the edit form (plone.locking takes its lock): Dan, who
    is viewing, sees it at once; Cal, who may edit too, is warned before
    he starts (Plone sends him from the edit form back to the page).
    Cancel, save and unlock each take it away."""
    dan = login(new_context, plone, 'dan', '/Plone/private')
    ann = login(new_context, plone, 'ann', '/Plone/private')
    assert dan.evaluate(EDITING) == ''
    ann.goto(themed(plone, '/Plone/private/edit'))
    dan.wait_for_function('() => (%s)().includes("Ann Arbor is editing '
                          'this page")' % EDITING)
    # Ann is not told about her own lock; Dan, who may not edit, is not
    # warned.
    assert ann.evaluate(EDITING) == ''
    assert 'overwrites' not in dan.evaluate(EDITING)
    shot = top(dan, artifacts / 'plone-editing.png')
    compareWithDocs(shot, 'plone-editing.png')
    cal = login(new_context, plone, 'cal', '/Plone/private/edit')
    warning = cal.evaluate(EDITING)
    assert 'Ann Arbor is editing this page' in warning
    assert 'overwrites' in warning
    cal.close()

    # Cancel: the lock goes, and the notice with it.
    with ann.expect_navigation():
        ann.click('#form-buttons-cancel')
    dan.wait_for_function('() => (%s)() === ""' % EDITING)

    # Again, then save: gone again, and Dan is told of the change.
    ann.goto(themed(plone, '/Plone/private/edit'))
    dan.wait_for_function('() => (%s)().includes("is editing")' % EDITING)
    ann.fill('#form-widgets-IDublinCore-title', 'Edited by Ann')
    with ann.expect_navigation():
        ann.click('#form-buttons-save')
    dan.wait_for_function('() => (%s)() === ""' % EDITING)
    dan.wait_for_function('() => document.querySelector("#zorg-live-notice")'
                          '.textContent.includes("changed by Ann Arbor")')

    # Again, then the site manager unlocks it (the Unlock button of
    # Plone's lock message).
    ann.goto(themed(plone, '/Plone/private/edit'))
    dan.wait_for_function('() => (%s)().includes("is editing")' % EDITING)
    admin = login(new_context, plone, 'admin', '/Plone/private')
    with admin.expect_navigation():
        admin.click('form[action$="force_unlock"] input[type=submit]')
    dan.wait_for_function('() => (%s)() === ""' % EDITING)
