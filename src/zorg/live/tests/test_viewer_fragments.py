"""Model-driven fragments reach each viewer as rendered for that viewer
(issue 12, item 5): alice may edit and gets the "edit" link; bob and an
anonymous visitor, watching the same object, never receive it."""

import asyncio
import re

import aiohttp

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_redis_servers import session

UUID = re.compile(r'data-uuid="([^"]+)"')


async def openPage(s, server, auth):
    async with s.get(server.url('livepage.html'), headers=auth) as r:
        assert r.status == 200
        return UUID.search(await r.text()).group(1)


async def fragments(s, server, uuid, auth):
    """The fragment updates of a page's next answer."""
    url = server.url('@@livepage.html/@@client/%s/output' % uuid)
    async with s.get(url, params={'outputNum': '0'},
                     headers=auth) as r:
        assert r.status == 200
        events = (await r.json())['events']
    return [e['html'] for e in events
            if e['event'] == 'update' and e['target'] == 'fragment']


def test_each_viewer_gets_the_fragment_as_rendered_for_them(tmp_path):
    alice = {'Authorization': aiohttp.encode_basic_auth('alice', 'alice')}
    bob = {'Authorization': aiohttp.encode_basic_auth('bob', 'bob')}

    async def run(server):
        async with session() as s:
            pages = {name: await openPage(s, server, auth) for name, auth in
                     (('alice', alice), ('bob', bob), ('anonymous', None))}
            async with s.get(server.url('@@test-touch'), headers=alice) as r:
                assert r.status == 200
            got = {name: await fragments(s, server, uuid, auth)
                   for (name, uuid), auth in zip(pages.items(),
                                                 (alice, bob, None))}
            assert len(got['alice']) == 1 and 'edit' in got['alice'][0]
            assert 'test.alice' in got['alice'][0]
            assert len(got['bob']) == 1 and 'edit' not in got['bob'][0]
            assert 'test.bob' in got['bob'][0]
            assert len(got['anonymous']) == 1
            assert 'edit' not in got['anonymous'][0]

    with RunningServer(tmp_path, refresh_interval=2) as server:
        asyncio.run(run(server))
