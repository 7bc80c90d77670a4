"""Upload progress: the page named in X-Live-Progress sees its upload
arrive, in progress events, while the body streams to a worker thread."""

import asyncio

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_server_proof import openPage, output, session

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
                    headers={'X-Live-Progress': '%s bar' % uuid,
                             'Content-Length': str(SIZE),
                             'Content-Type': 'application/octet-stream'}
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
