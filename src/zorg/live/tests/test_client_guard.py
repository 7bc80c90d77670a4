"""Issue 12, item 6: the attribute event of livepage.js sets attributes
of allow-lists only, and URLs of the schemes http, https and relative ones;
a page declares more on its script tag (LivePage.allowAttributes,
allowSchemes). In headless Chromium, on pages of the real server."""

import pytest

from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, live_server, new_context, screenshot)
from zorg.live.tests.test_browser import openPage, waitOpen

pytestmark = pytest.mark.browser

# Each case: (attribute, value, set?) on the element <a id="g">.
CASES = [
    ('href', '/relative/path', True),
    ('href', 'other.html?x=1', True),
    ('href', 'https://example.org/', True),
    ('href', 'http://example.org/', True),
    ('title', 'plain text', True),
    ('data-n', '3', True),
    ('aria-label', 'label', True),
    ('class', 'a b', True),
    ('href', 'data:text/html,<script>alert(1)</script>', False),
    ('href', 'javascript:alert(1)', False),
    ('href', ' java\tscript:alert(1)', False),
    ('href', 'mailto:someone@example.org', False),
    ('src', 'data:image/svg+xml,<svg onload=alert(1)>', False),
    ('style', 'background: url(https://evil.example/)', False),
    ('formaction', 'https://example.org/', False),
    ('onclick', 'alert(1)', False),
    ('srcdoc', '<script>alert(1)</script>', False),
    ('xyz-unknown', '1', False),
]

APPLY = """([cases, extra]) => {
  document.body.insertAdjacentHTML('beforeend',
    '<div id="box"></div><base id="b"><iframe id="f"></iframe>');
  const errors = [];
  LivePage.onerror = (error) => errors.push(error.message);
  const results = [];
  for (const [name, value] of cases) {
    const box = document.getElementById('box');
    box.innerHTML = '<a id="g">link</a>';
    LivePage._applyOne({event: 'attribute', target: 'g', name, value});
    results.push(document.getElementById('g').getAttribute(name) === value);
  }
  for (const [target, name, value] of extra) {
    LivePage._applyOne({event: 'attribute', target, name, value});
    results.push(document.getElementById(target).getAttribute(name) === value);
  }
  return {results, errors};
}"""


def test_attribute_events_follow_the_allow_lists(
        live_server, new_context, screenshot):
    page = openPage(new_context(), live_server.url('livepage.html'))
    waitOpen(page)
    extra = [('b', 'href', 'https://evil.example/'),   # <base href>
             ('f', 'src', 'https://example.org/')]     # <iframe>
    found = page.evaluate(APPLY, [[c[:2] for c in CASES], extra])
    assert found['results'] == [c[2] for c in CASES] + [False, False]
    refused = [c for c in CASES if not c[2]]
    assert len(found['errors']) == len(refused) + len(extra)
    assert all(e.startswith('LivePage refused attribute')
               for e in found['errors'])
    # The page's own links were not changed under it: no base URL moved.
    assert page.evaluate('() => document.baseURI') == \
        live_server.url('livepage.html')
    screenshot(page)


def test_a_page_declares_more(live_server, new_context):
    """allowing.html declares style and mailto: both are set; data: URLs
    and other undeclared ones are still refused."""
    page = openPage(new_context(), live_server.url('allowing.html'))
    waitOpen(page)
    cases = [('style', 'color: red', True),
             ('href', 'mailto:someone@example.org', True),
             ('href', 'data:text/html,x', False),
             ('formaction', '/x', False)]
    found = page.evaluate(APPLY, [[c[:2] for c in cases], []])
    assert found['results'] == [c[2] for c in cases]
    assert len(found['errors']) == 2
