"""Issue 12 over plain HTTP against real servers: items 2 (cross-site
requests refused; POST-only steps), 3 (capabilities bound to what they
grant) and 4 (limits on everything a stranger can send)."""

import asyncio
import json
import logging
import os
import re
import socket
import time

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import (
    ADMIN, ALICE, BOB, Page, SITE_ZCML as DEMO_ZCML, session, uploadForm)


# -- 2. cross-site requests, POST only ---------------------------------------

def demoServer(tmp_path):
    return RunningServer(tmp_path, zcml=DEMO_ZCML, refresh_interval=5)


def test_notify_and_upload_refuse_a_browser_origin_not_a_script(tmp_path):
    """The demo's @@notify and upload as a script sends them (credentials,
    no Origin) work; with the Origin of another site they are refused and
    nothing is stored."""
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html').open()
            evil = {'Origin': 'http://127.0.0.1:1', 'Sec-Fetch-Site':
                    'same-site'}
            message = {'group': '/zope', 'text': 'forged'}
            async with s.post(server.url('@@notify'), json=message,
                              headers=dict(ADMIN, **evil)) as r:
                assert r.status == 403
                assert (await r.json())['error'] == 'cross-site'
            form = (b'--b\r\nContent-Disposition: form-data; name="file"; '
                    b'filename="forged.bin"\r\nContent-Type: application/'
                    b'octet-stream\r\n\r\nforged\r\n--b--\r\n')
            async with s.post(server.url('uploads/@@upload'), data=form,
                              headers=dict(ALICE, **evil, **{
                                  'Content-Type': 'multipart/form-data; '
                                                  'boundary=b'})) as r:
                assert r.status == 403
                assert (await r.json())['error'] == 'cross-site'
            async with s.get(server.url('uploads')) as r:
                assert 'forged.bin' not in await r.text()
            # A script: no Origin, credentials.
            message['text'] = 'from a script'
            async with s.post(server.url('@@notify'), json=message,
                              headers=ADMIN) as r:
                assert r.status == 200, await r.text()
            [append] = await page.waitFor('append')
            assert 'from a script' in append['html']
            assert 'forged' not in json.dumps(page.events)

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_register_input_and_close_accept_post_only(tmp_path):
    """GET would let any link or image change state: 405 (input as GET only
    with the unsafe setting allow-get-input)."""
    async def run(server, getInput):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            base = server.url('livepage.html/@@client/')
            async with s.get(base + 'register') as r:
                assert r.status == 405
                assert r.headers['Allow'] == 'POST'
            async with s.get(base + page.uuid + '/close') as r:
                assert r.status == 405
            async with s.get(base + page.uuid + '/input', params={
                    'handler-name': 'append',
                    'arguments': 'target,by get'}) as r:
                assert r.status == (200 if getInput else 405), \
                    await r.text()
            # Still open: a POST input works.
            async with s.post(base + page.uuid + '/input', json={
                    'handler': 'append',
                    'arguments': ['target', 'by post']}) as r:
                assert r.status == 200, await r.text()
            events = await page.waitFor('append', 2 if getInput else 1)
            assert [e['html'] for e in events] == (
                ['by get', 'by post'] if getInput else ['by post'])

    with RunningServer(tmp_path / 'default', refresh_interval=5) as server:
        asyncio.run(run(server, False))
    with RunningServer(tmp_path / 'unsafe', refresh_interval=5,
                       allow_get_input='on') as server:
        asyncio.run(run(server, True))
