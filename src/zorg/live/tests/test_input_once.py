"""Input exactly once over POST (issue 13, item 4): the X-Live-Input-Id
header. A repeat of an input whose answer was lost gets the recorded answer
and does not run the handler again, on both server types; at once or later.
"""

import asyncio

import pytest

from zorg.live.tests.serverfixture import RunningServer
from zorg.live.tests.test_demo import Page, session

TYPES = ('LiveServerHTTP', 'WSGI-HTTP')


async def post(page, text, inputId=None):
    headers = {} if inputId is None else {'X-Live-Input-Id': inputId}
    async with page.session.post(page.client('input'), headers=headers, json={
            'handler': 'append', 'arguments': ['target', text]}) as r:
        return r.status, await r.text()


def appended(page, text):
    return [e for e in page.events
            if e['event'] == 'append' and e['html'] == text]


@pytest.mark.parametrize('kind', TYPES)
def test_a_repeated_input_id_runs_the_handler_once(tmp_path, kind):
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            first = await post(page, 'once', 'in-1')
            assert first[0] == 200, first
            # The answer was lost; the client sends it again, twice, and
            # two at the same moment.
            assert await post(page, 'once', 'in-1') == first
            again = await asyncio.gather(post(page, 'twice?', 'in-2'),
                                         post(page, 'twice?', 'in-2'))
            assert again[0] == again[1] and again[0][0] == 200, again
            # Without an id, as before: every request runs.
            await post(page, 'plain')
            await post(page, 'plain')
            await page.waitFor('append', 4)
            # Nothing more comes: 'last' is published after all of them.
            await post(page, 'last', 'in-3')
            await page.waitFor('append', 5)
            assert len(appended(page, 'once')) == 1
            assert len(appended(page, 'twice?')) == 1
            assert len(appended(page, 'plain')) == 2
            assert len(appended(page, 'last')) == 1

    with RunningServer(tmp_path, types=(kind,), refresh_interval=2) as server:
        asyncio.run(run(server))


def test_a_bad_input_id_is_refused_and_runs_nothing(tmp_path):
    async def run(server):
        async with session() as s:
            page = await Page(server, s, 'livepage.html').open()
            for bad in ('', 'a b', 'x' * 65, 'é'):
                status, body = await post(page, 'bad', bad)
                assert status == 400, (bad, status, body)
                assert 'input id' in body
            await post(page, 'good', 'ok-1')
            await page.waitFor('append', 1)
            assert [e['html'] for e in page.events
                    if e['event'] == 'append'] == ['good']

    with RunningServer(tmp_path, refresh_interval=2) as server:
        asyncio.run(run(server))
