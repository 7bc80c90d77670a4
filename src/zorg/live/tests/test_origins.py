"""Issue 22, item 4: origins are compared whole -- scheme, host and port,
the default port of the scheme filled in -- for the site's own origin
(its scheme from the request, or a trusted proxy's X-Forwarded-Proto) and
for trusted-origins. ``http://example.org`` (which a network attacker can
write pages for) is not the https site ``example.org``, and the other way
round; directly and behind the README's nginx example."""

import asyncio
import json

import pytest
import websockets

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import (
    ADMIN, ALICE, SITE_ZCML as DEMO_ZCML, Page, session)
from zorg.live.tests.test_nginx import Nginx, readmeExample

FORM = (b'--b\r\nContent-Disposition: form-data; name="file"; '
        b'filename="%s.bin"\r\nContent-Type: application/'
        b'octet-stream\r\n\r\nforged\r\n--b--\r\n')


async def stateChanges(s, base, page, headers, name):
    """Statuses of a chat message (input), @@notify and an upload sent
    with `headers`, each carrying `name`."""
    statuses = []
    async with s.post(page.client('input'), headers=dict(ALICE, **headers),
                      json={'handler': 'say', 'arguments': [name]}) as r:
        statuses.append(r.status)
    async with s.post(base + '@@notify', headers=dict(ADMIN, **headers),
                      json={'group': '/zope', 'text': name}) as r:
        statuses.append(r.status)
    async with s.post(base + 'uploads/@@upload', data=FORM % name.encode(),
                      headers=dict(ALICE, **headers, **{
                          'Content-Type': 'multipart/form-data; '
                                          'boundary=b'})) as r:
        statuses.append(r.status)
        if r.status == 403:
            assert (await r.json())['error'] == 'cross-site'
    return statuses


async def stored(s, base, page, name):
    """Whether `name` reached the chat (its page) or the uploads."""
    await page.poll()
    async with s.get(base + 'uploads') as r:
        uploads = await r.text()
    return name in json.dumps(page.events) or name in uploads


async def socketStatus(url, origin, extra=None):
    try:
        async with websockets.connect(url, additional_headers=dict(
                extra or {}, Origin=origin)):
            return 101
    except websockets.InvalidStatus as e:
        return e.response.status_code


def demoServer(tmp_path, **settings):
    return RunningServer(tmp_path, zcml=DEMO_ZCML, refresh_interval=0.5,
                         **settings)


def test_https_origin_is_refused_by_the_http_site_and_the_reverse(tmp_path):
    async def run(server):
        port = server.port
        base = server.url()
        ws = server.url('@@live').replace('http', 'ws', 1)
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            # The plain-http site: an https page of its host and port is
            # another origin.
            https = {'Origin': 'https://127.0.0.1:%d' % port}
            assert await stateChanges(s, base, page, https, 'forged1') == [
                403, 403, 403]
            assert await socketStatus(ws, https['Origin']) == 403
            async with s.post(page.client('close'), headers=https) as r:
                assert r.status == 403
            # Its own origin, http: accepted.
            http = {'Origin': 'http://127.0.0.1:%d' % port}
            assert await stateChanges(s, base, page, http, 'own1') == [
                200, 200, 200]
            assert await socketStatus(ws, http['Origin']) == 101
            # The site as a TLS-terminating trusted proxy (127.0.0.1)
            # serves it: https. Now the http page is the other origin.
            proxied = {'X-Forwarded-Proto': 'https'}
            assert await stateChanges(s, base, page, dict(
                proxied, **http), 'forged2') == [403, 403, 403]
            assert await socketStatus(ws, http['Origin'], proxied) == 403
            assert await stateChanges(s, base, page, dict(
                proxied, **https), 'own2') == [200, 200, 200]
            assert await socketStatus(ws, https['Origin'], proxied) == 101
            # The default port is filled in: Host without a port is 443
            # for https, and so is an Origin that names 443.
            bare = dict(proxied, Host='127.0.0.1',
                        Origin='https://127.0.0.1:443')
            async with s.post(base + '@@notify', headers=dict(ADMIN, **bare),
                              json={'group': '/zope', 'text': 'own3'}) as r:
                assert r.status == 200, await r.text()
            bare['Origin'] = 'http://127.0.0.1'
            async with s.post(base + '@@notify', headers=dict(ADMIN, **bare),
                              json={'group': '/zope', 'text': 'x'}) as r:
                assert r.status == 403
            assert not await stored(s, base, page, 'forged1')
            assert not await stored(s, base, page, 'forged2')
            await page.waitFor('append', 4)
            for name in ('own1', 'own2', 'own3'):
                assert await stored(s, base, page, name), name

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_trusted_origins_are_compared_whole(tmp_path):
    async def run(server):
        base = server.url()
        async with session() as s:
            page = await Page(server, s, 'zope/chat.html', ALICE).open()
            for origin, status in (('https://other.test', 200),
                                   ('https://other.test:443', 200),
                                   ('http://other.test', 403),
                                   ('https://other.test:8443', 403),
                                   ('http://peer.test', 200),
                                   ('http://peer.test:80', 200),
                                   ('https://peer.test', 403)):
                async with s.post(base + '@@notify', headers=dict(
                        ADMIN, Origin=origin), json={
                            'group': '/zope', 'text': origin}) as r:
                    assert r.status == status, (origin, await r.text())
            await page.poll()

    with demoServer(tmp_path, trusted_origins='https://other.test:443 '
                    'http://peer.test') as server:
        asyncio.run(run(server))


def test_the_wsgi_server_takes_the_scheme_from_its_trusted_proxy(tmp_path):
    """WSGI-HTTP (waitress): the same rule; X-Forwarded-Proto counts from
    the trusted proxy (127.0.0.1) only."""
    async def run(server):
        base = server.url()
        async with session() as s:
            for proto, scheme, status in ((None, 'http', 200),
                                          (None, 'https', 403),
                                          ('https', 'https', 200),
                                          ('https', 'http', 403)):
                headers = dict(ADMIN, Origin='%s://127.0.0.1:%d'
                               % (scheme, server.port))
                if proto:
                    headers['X-Forwarded-Proto'] = proto
                async with s.post(base + '@@notify', headers=headers, json={
                        'group': '/zope', 'text': scheme}) as r:
                    assert r.status == status, (proto, scheme,
                                                await r.text())

    with demoServer(tmp_path, types=('WSGI-HTTP',)) as server:
        asyncio.run(run(server))


@pytest.mark.parametrize('proto', ['http', 'https'])
def test_behind_nginx_the_proxy_scheme_decides(tmp_path, proto):
    """The README's nginx example (X-Forwarded-Proto $scheme: http here),
    and the same as a TLS-terminating proxy would send it (https): only
    an Origin of that scheme is the site's."""
    example = readmeExample()
    if proto == 'https':
        example = example.replace('X-Forwarded-Proto $scheme',
                                  'X-Forwarded-Proto https')

    async def run(proxy):
        other = 'https' if proto == 'http' else 'http'
        async with session() as s:
            base = proxy.url()
            for scheme, status in ((other, 403), (proto, 200)):
                async with s.post(base + '@@notify', headers=dict(
                        ADMIN, Origin='%s://127.0.0.1:%d'
                        % (scheme, proxy.port)), json={
                            'group': '/zope', 'text': scheme}) as r:
                    assert r.status == status, (scheme, await r.text())

    with demoServer(tmp_path / 'server') as server, \
            Nginx(tmp_path / 'nginx', server.port, example) as proxy:
        asyncio.run(run(proxy))
