"""Upload progress: the page named in X-Live-Progress sees its upload
arrive, in progress events, while the body streams to a worker thread --
when the upload is its own user's and the element is one of the page's
progress targets (issue 12)."""

import asyncio
import re

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import ALICE, BOB
from zorg.live.tests.test_server_proof import output, session

UUID = re.compile(r'data-uuid="([^"]+)"')


async def openPage(s, server):
    """Alice's progress.html (its progress target: 'bar')."""
    async with s.get(server.url('progress.html'), headers=ALICE) as r:
        assert r.status == 200
        return UUID.search(await r.text()).group(1)

SIZE = 4 * 1024 * 1024


async def chunks():
    # Sent in pieces, so the server receives the body over time.
    for _ in range(SIZE // 65536):
        yield b'x' * 65536
        await asyncio.sleep(0)


def collectProgress(server, s, uuid):
    async def collect():
        values, num = [], 0
        while not values or values[-1] < 1.0:
            status, body = await output(s, server, uuid, num)
            assert status == 200
            values += [e['value'] for e in body['events']
                       if e['event'] == 'progress']
            num += 1
        return values
    return asyncio.ensure_future(collect())


def test_an_upload_reports_growing_progress_to_its_page(tmp_path):
    async def run(server):
        async with session() as s:
            uuid = await openPage(s, server)
            progress = collectProgress(server, s, uuid)
            async with s.post(
                    server.url('@@test-upload'), data=chunks(),
                    headers=dict(ALICE, **{
                        'X-Live-Progress': '%s bar' % uuid,
                        'Content-Length': str(SIZE),
                        'Content-Type': 'application/octet-stream'})
            ) as r:
                assert r.status == 200
                assert await r.json() == {'size': SIZE}
            values = await asyncio.wait_for(progress, 30)
        assert values == sorted(values)
        assert values[-1] == 1.0
        assert len(values) > 10   # it moved while the body arrived

    with RunningServer(tmp_path, refresh_interval=5) as server:
        asyncio.run(run(server))


def test_an_unknown_page_in_the_header_changes_nothing(tmp_path):
    async def run(server):
        async with session() as s:
            async with s.post(server.url('@@test-upload'), data=b'abc',
                              headers={'X-Live-Progress': 'nosuchpage bar'}
                              ) as r:
                assert r.status == 200
                assert await r.json() == {'size': 3}

    with RunningServer(tmp_path) as server:
        asyncio.run(run(server))


@pytest.mark.parametrize('who, target, path', [
    ('anonymous', 'bar', '@@test-upload'),
    ('anonymous', 'bar', 'no-such-page'),
    ('bob', 'bar', '@@test-upload'),
    ('alice', 'log', '@@test-upload'),       # not a progress target
])
def test_progress_only_for_the_pages_own_user_and_targets(
        tmp_path, who, target, path):
    """Whoever holds the page id, anonymously, as another user, or for an
    element the page does not declare, writes nothing into the page."""
    auth = {'anonymous': {}, 'bob': BOB, 'alice': ALICE}[who]

    async def run(server):
        async with session() as s:
            uuid = await openPage(s, server)
            async with s.post(
                    server.url(path), data=b'f=' + b'x' * 300000,
                    headers=dict(auth, **{
                        'X-Live-Progress': '%s %s' % (uuid, target),
                        # A form: the publisher reads it before it finds
                        # out that the URL is not found.
                        'Content-Type': 'application/x-www-form-urlencoded'
                    })) as r:
                await r.read()
            # Then an event of the page's own: everything published before
            # it has arrived with it.
            async with s.post(
                    server.url('progress.html/@@client/%s/input' % uuid),
                    json={'handler': 'append', 'arguments': ['log', 'end']},
                    headers=ALICE) as r:
                assert r.status == 200, await r.text()
            events, num = [], 0
            while not any(e.get('html') == 'end' for e in events):
                status, body = await output(s, server, uuid, num)
                assert status == 200
                events += body['events']
                num += 1
            assert [e for e in events if e['event'] == 'progress'] == []

    with RunningServer(tmp_path, refresh_interval=5) as server:
        asyncio.run(run(server))
