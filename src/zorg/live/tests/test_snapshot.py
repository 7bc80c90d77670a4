"""Render and subscribe agree with the ZODB snapshot (delivery.py, rule 10).

A page is rendered from the snapshot of its request's database connection.
An event committed and published by another thread between the moment
that connection opened and the moment the page registered is not in the
HTML: the page must get it over its stream, once. An event committed
before the snapshot but published after the request came in is in the
HTML and comes over the stream too: it carries a key that the HTML shows,
so livepage.js adds it once (the browser test proves that).
"""

import asyncio
import re
import urllib.request

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context)
from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_redis_servers import session

UUID = re.compile(r'data-uuid="([^"]+)"')
LAST = re.compile(r'data-last-event-id="([^"]+)"')
LINE = re.compile(r'data-live-key="([^"]+)">([^<]*)<')


async def renderAndRead(s, server, params):
    """(lines in the HTML, appends that came over the stream after it)."""
    async with s.get(server.url('snapshot.html'), params=params) as r:
        assert r.status == 200
        html = await r.text()
    uuid = UUID.search(html).group(1)
    url = server.url('@@snapshot.html/@@client/%s/output' % uuid)
    async with s.get(url, params={'outputNum': '0'}) as r:
        assert r.status == 200
        events = (await r.json())['events']
    shown = [(key, text) for key, text in LINE.findall(html)]
    streamed = [(e['key'], e['html']) for e in events
                if e['event'] == 'append']
    return shown, streamed


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    with RunningServer(tmp_path_factory.mktemp('snapshot'),
                       refresh_interval=1) as server:
        yield server


def test_an_event_committed_after_the_snapshot_comes_over_the_stream(
        server):
    async def run():
        async with session() as s:
            shown, streamed = await renderAndRead(
                s, server, {'race': 'commit', 'text': 'after'})
            # Not in the HTML (the snapshot predates it), so it must come
            # over the stream: once, never zero times.
            assert ('line-after', 'after') not in shown
            assert [key for key, _html in streamed] == ['line-after']
    asyncio.run(run())


def test_an_event_committed_before_the_snapshot_carries_the_key_shown(
        server):
    async def run():
        async with session() as s:
            async with s.get(server.url('@@snapshot-commit'),
                             params={'text': 'before'}) as r:
                assert r.status == 200
            shown, streamed = await renderAndRead(
                s, server, {'race': 'publish'})
            # In the HTML and after the cursor: the key is what lets the
            # client add it once.
            assert ('line-before', 'before') in shown
            assert [key for key, _html in streamed] == ['line-before']
    asyncio.run(run())


@pytest.mark.browser
def test_the_browser_shows_each_line_once(server, new_context):
    def get(path):
        with urllib.request.urlopen(server.url(path), timeout=30) as r:
            assert r.status == 200
    # Committed now, published only while the page below renders: in its
    # HTML and, after its cursor, on its stream.
    get('@@snapshot-commit?text=twice')
    page = new_context().new_page()
    page.goto(server.url('snapshot.html?race=publish'))
    page.wait_for_function('() => window.LivePage && '
                           'LivePage.status === "open"', timeout=WAIT)
    # A later line: once it shows, the stream delivered what came before.
    get('snapshot.html?race=commit&text=later')
    page.wait_for_function(
        '() => Array.from(document.querySelectorAll("#log .msg"))'
        '.some((p) => p.textContent === "later")', timeout=WAIT)
    texts = page.evaluate(
        '() => Array.from(document.querySelectorAll("#log .msg"), '
        '(p) => p.textContent)')
    assert texts.count('twice') == 1, texts
    assert texts.count('later') == 1, texts
