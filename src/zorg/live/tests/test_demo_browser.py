"""The demo in headless chromium: livepage.js applies the events, Enter
sends, who-is-online follows join and leave, the counter is shared, the
upload page's bar follows the server's progress events, and the status
page draws its chart from live samples.

Each test saves PNG screenshots of its pages into <repo>/test-artifacts/
(git-ignored) and checks that they are PNG files.
"""

import os
from urllib.parse import urljoin

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context, screenshot)
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import SITE_ZCML

pytestmark = pytest.mark.browser

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """One demo site for this module's tests (each uses its own pages)."""
    server = RunningServer(tmp_path_factory.mktemp('demo-browser'),
                           threads=2, zcml=SITE_ZCML, refresh_interval=5)
    with server:
        yield server


def openPage(new_context, url, user=None):
    """A page in a new browser context, logged in as `user` (through
    @@login.html and the Basic auth challenge), live."""
    options = {}
    if user:
        options['http_credentials'] = {'username': user, 'password': user}
    page = new_context(**options).new_page()
    if user:
        page.goto(urljoin(url, '/@@login.html'))
    page.goto(url)
    page.wait_for_function("window.LivePage && LivePage.status === 'open'",
                           timeout=WAIT)
    return page


def saved(path):
    """`path` is a non-empty PNG file; returns it."""
    with path.open('rb') as f:
        head = f.read(8)
    assert head == PNG, '%s is not a PNG' % path
    assert path.stat().st_size > 1000, '%s is (nearly) empty' % path
    return path


def test_chat_and_counter_in_a_browser(demo, new_context, screenshot):
    room = demo.url('random/chat.html')
    alice = openPage(new_context, room, 'alice')
    anonymous = openPage(new_context, room)
    assert alice.inner_text('#online').split() == ['Alice']
    assert anonymous.is_disabled('#say-text')

    bob = openPage(new_context, room, 'bob')
    alice.wait_for_selector('#online li[data-principal="demo.bob"]',
                            timeout=WAIT)

    bob.fill('#say-text', 'hello <i>from</i> bob')
    bob.press('#say-text', 'Enter')
    for page in (alice, anonymous, bob):
        page.wait_for_function(
            "document.getElementById('messages').textContent"
            ".includes('hello <i>from</i> bob')", timeout=WAIT)
    assert alice.query_selector('#messages i') is None   # escaped
    bob.wait_for_function(
        "document.getElementById('say-text').value === ''", timeout=WAIT)
    saved(screenshot(alice, 'chat'))

    bob.close()   # pagehide: livepage.js closes the page; bob leaves
    alice.wait_for_function(
        "!document.querySelector('#online li[data-principal=\"demo.bob\"]')",
        timeout=WAIT)

    counter = demo.url('counter/counter.html')
    watcher = openPage(new_context, counter)
    assert watcher.is_disabled('#increment')   # anonymous only watches
    one = openPage(new_context, counter, 'bob')
    two = openPage(new_context, counter, 'alice')
    start = int(one.inner_text('#counter'))
    one.click('#increment')
    two.click('#increment')
    for page in (one, two, watcher):
        page.wait_for_function(
            "document.getElementById('counter').textContent.trim() "
            "=== '%d'" % (start + 2), timeout=WAIT)
    saved(screenshot(two, 'counter'))


def test_upload_progress_bar_in_a_browser(demo, new_context, screenshot):
    url = demo.url('uploads/upload.html')
    alice = openPage(new_context, url, 'alice')
    watcher = openPage(new_context, url)
    assert watcher.is_disabled('#file')
    # The front page links here.
    index = new_context().new_page()
    index.goto(demo.url(''))
    assert index.get_attribute('#upload-link', 'href') == url

    data = os.urandom(4 * 1024 * 1024)
    alice.set_input_files('#file', files=[{
        'name': 'holiday <1>.bin', 'mimeType': 'application/octet-stream',
        'buffer': data}])
    alice.click('#upload-button')
    alice.wait_for_function(
        "document.getElementById('upload-progress').style.width === '100%'",
        timeout=WAIT)
    alice.wait_for_function(
        "document.getElementById('result').textContent.includes("
        "'Stored holiday <1>.bin (%d bytes)')" % len(data), timeout=WAIT)
    assert alice.inner_text('#notice') == ''
    # The bar moved while the body arrived: several growing values.
    values = alice.evaluate('window.uploadProgress')
    assert len(values) > 3 and values == sorted(values) and values[-1] == 1
    assert 'KB received' in alice.inner_text('#upload-progress')
    # The stored upload is listed on every open page, name escaped.
    for page in (alice, watcher):
        page.wait_for_function(
            "document.querySelector('#uploads li .name') && "
            "document.querySelector('#uploads li .name').textContent === "
            "'holiday <1>.bin'", timeout=WAIT)
    assert alice.query_selector('#uploads li .size').inner_text() == '4.0 MB'
    assert watcher.evaluate('window.uploadProgress') == []
    saved(screenshot(alice, 'upload'))


def test_live_status_chart_in_a_browser(demo, new_context, screenshot):
    status = openPage(new_context, demo.url('@@live-status'), 'admin')
    status.wait_for_function('window.liveStatus.samples.length >= 2',
                             timeout=WAIT)
    # Another page and some clicks: the chart sees the pages and events.
    counter = openPage(new_context, demo.url('counter/counter.html'), 'bob')
    for _ in range(3):
        counter.click('#increment')
    status.wait_for_function(
        "window.liveStatus.samples.some((s) => s.events > 0) && "
        "window.liveStatus.samples.some((s) => s.pages >= 2)", timeout=WAIT)
    status.wait_for_function(
        "document.getElementById('stats').textContent.includes('/counter')",
        timeout=WAIT)
    # One point per sample in each chart, inside the drawing.
    points = status.evaluate(
        "() => ['events', 'pages'].map((key) => document.querySelector("
        "'#chart-' + key + ' polyline').getAttribute('points').split(' ')"
        ".map((p) => p.split(',').map(Number)))")
    samples = status.evaluate('window.liveStatus.samples.length')
    for chart in points:
        assert len(chart) == samples
        assert all(0 <= x <= 600 and 0 <= y <= 100 for x, y in chart)
    assert int(status.inner_text('#max-pages')) >= 2
    saved(screenshot(status, 'status'))
