"""volto-zorg-live in Chromium: a Volto frontend built here (frontend.sh)
in front of a real Plone backend (LiveServerHTTP, the add-on installed,
plone.restapi's JWT login).

Ann and Dan log in through Volto's login form and open the same
document: each sees the other under "Here now". Ann starts editing it in
Volto (which takes plone.restapi's ``@lock``): Dan sees "Ann Arbor is
editing this page"; she cancels (Volto unlocks): it goes.
Ann saves it: Dan is told.

`make test-volto` runs this; the ports are fixed, since the frontend is
built with the backend's WebSocket URL and the backend trusts the
frontend's origin.
"""

import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

from zorg.live.plone.tests.helpers import PloneClient, password
from zorg.live.plone.tests.instance import ViewInstance
from zorg.live.tests.browserfixture import (  # noqa: F401 (fixtures)
    WAIT, artifacts, browser, new_context)

HERE = pathlib.Path(__file__).resolve().parent.parent
APP = HERE / '.app' / 'volto'
BACKEND, FRONTEND = 55180, 55130
LIVE_URL = 'ws://localhost:%d/Plone/@@live' % BACKEND
ONLINE = "() => Array.from(document.querySelectorAll('#zorg-live-online " \
         "li'), (li) => li.dataset.principal + '=' + li.title).join(' ')"
EDITING = "() => (document.querySelector('#zorg-live-editing') || {})" \
          ".innerText || ''"
NOTICE = "() => (document.querySelector('#zorg-live-notice') || {})" \
         ".innerText || ''"


def front(path=''):
    return 'http://localhost:%d/%s' % (FRONTEND, path.lstrip('/'))


@pytest.fixture(scope='module')
def plone(tmp_path_factory):
    instance = ViewInstance(
        tmp_path_factory.mktemp('plone') / 'instance', threads=3,
        port=BACKEND, refresh_interval=5, heartbeat_interval=2,
        trusted_origins='http://localhost:%d' % FRONTEND)
    with instance:
        yield instance


@pytest.fixture(scope='module')
def volto(plone):
    subprocess.run([str(HERE / 'frontend.sh'), LIVE_URL], check=True)
    env = dict(os.environ, PORT=str(FRONTEND), HOST='127.0.0.1',
               RAZZLE_API_PATH=front().rstrip('/'),
               RAZZLE_INTERNAL_API_PATH='http://127.0.0.1:%d/Plone'
               % BACKEND, NODE_ENV='production')
    log = open(APP / 'volto.log', 'wb')
    process = subprocess.Popen(['node', 'build/server.js'], cwd=APP,
                               env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (APP / 'volto.log').read_text()
        try:
            socket.create_connection(('127.0.0.1', FRONTEND), 1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, 'Volto did not listen'
            time.sleep(0.2)
    yield process
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    log.close()


def login(new_context, user, path):
    context = new_context(viewport={'width': 1280, 'height': 800})
    page = context.new_page()
    page.goto(front('/login'))
    page.fill('#login', user)
    page.fill('#password', password(user))
    with page.expect_navigation():
        page.click('#login-form-submit')
    page.goto(front(path))
    page.wait_for_selector('#zorg-live')
    return page


def waitOnline(page, expected):
    page.wait_for_function('(expected) => (%s)() === expected' % ONLINE,
                           arg=expected)


def test_here_now_editing_and_the_notice_in_volto(plone, volto, new_context,
                                                  artifacts):
    dan = login(new_context, 'dan', '/published')
    ann = login(new_context, 'ann', '/published')
    waitOnline(dan, 'ann=Ann Arbor dan=Dan Brown')
    waitOnline(ann, 'ann=Ann Arbor dan=Dan Brown')

    # Ann edits in Volto: Volto locks the document (plone.restapi's @lock).
    ann.goto(front('/published/edit'))
    dan.wait_for_function('() => (%s)().includes("Ann Arbor is editing")'
                          % EDITING)
    dan.screenshot(path=str(artifacts / 'volto-editing.png'))
    if os.environ.get('ZORG_UPDATE_SCREENSHOTS') == '1':
        dan.screenshot(path=str(HERE.parent / 'docs' / 'volto-editing.png'))
    # She cancels: Volto unlocks (DELETE @lock), the notice goes.
    ann.click('#toolbar button.cancel')
    dan.wait_for_function('() => (%s)() === ""' % EDITING)

    # Ann saves (here through Plone's own form): Dan is told.
    PloneClient(plone, 'ann').save('/Plone/published', 'Saved while in Volto')
    dan.wait_for_function('() => (%s)().includes("changed by Ann Arbor")'
                          % NOTICE)
    dan.screenshot(path=str(artifacts / 'volto-notice.png'))
