"""Fixtures of the real-browser tests: headless chromium through Playwright.

One chromium per test module, a new browser context (cookies, cache, auth)
for each page a test opens; every test saves a screenshot of its final page
into <repo>/test-artifacts/ (and of every page still open when it failed).
"""

import os
import re
import warnings

import pytest

from zorg.live.tests.serverfixture import RunningServer

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
WAIT = 20000  # ms: the longest any single condition is waited for


@pytest.fixture(scope='module')
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail('%s is missing: the browser tests need Debian\'s '
                    'chromium; `make test` installs it (apt-get install '
                    'chromium).'
                    % CHROMIUM, pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope='module')
def live_server(tmp_path_factory):
    """One LiveServerHTTP for the tests that do not stop it."""
    server = RunningServer(tmp_path_factory.mktemp('browser-server'),
                           refresh_interval=5, heartbeat_interval=2)
    with server:
        yield server


@pytest.fixture
def artifacts(request):
    directory = request.config.rootpath / 'test-artifacts'
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def new_context(browser, request, artifacts):
    """new_context(**options): a fresh browser context, closed after the
    test. On failure, every page still open is screenshotted first."""
    contexts = []
    failed_before = request.session.testsfailed

    def new(**options):
        context = browser.new_context(**options)
        context.set_default_timeout(WAIT)
        contexts.append(context)
        return context

    yield new
    # The call phase has been reported by now: did it fail?
    failed = request.session.testsfailed > failed_before
    for number, context in enumerate(contexts):
        # Route handlers still waiting (a held long-poll) are let go.
        context.unroute_all(behavior='ignoreErrors')
        for index, page in enumerate(context.pages):
            try:
                if failed or not screenshotTaken(request):
                    page.screenshot(path=str(
                        artifacts / ('%s-context%d-page%d-teardown.png'
                                     % (fileName(request), number, index))))
            except Exception:
                pass  # the page is gone already
        context.close()


def fileName(request):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name).strip('_')


def screenshotTaken(request):
    return getattr(request.node, 'zorg_screenshot_taken', False)


@pytest.fixture
def screenshot(request, artifacts):
    """screenshot(page, label=''): the page as <test name>[-label].png."""
    def take(page, label=''):
        from playwright.sync_api import Error
        name = fileName(request) + ('-' + label if label else '') + '.png'
        path = artifacts / name
        try:
            page.screenshot(path=str(path), full_page=True)
        except Error as e:
            # A picture for people, not a check: Chromium under load may
            # fail to capture one ("Unable to capture screenshot"), which
            # says nothing about the page. Said, not failed.
            warnings.warn('no screenshot %s: %s' % (name, e))
            return None
        request.node.zorg_screenshot_taken = True
        return path
    return take


def credentials(server, login):
    """Context options that log in as `login` (password = login) with
    HTTP basic auth on `server`'s origin."""
    return {'http_credentials': {
        'username': login, 'password': login,
        'origin': server.url().rstrip('/')}}
