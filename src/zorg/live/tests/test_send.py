"""``@@notify`` and ``zorg-live send``: pushes from outside the web into a
running site (the demo site on the real LiveServerHTTP serves them)."""

import asyncio
import os
import subprocess
import sys

import pytest

from zorg.live.server.send import SendError, credentials, siteURL
from zorg.live.tests.test_demo import (
    ADMIN, ALICE, Page, demoServer, session)

SCRIPT = os.path.join(os.path.dirname(sys.executable), 'zorg-live')


async def zorgLive(*args, env=None):
    """Run the console script; (exit status, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith('ZORG_LIVE_')}
    environ.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        SCRIPT, *args, env=environ, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def test_zorg_live_send_reaches_a_page_of_a_running_server(tmp_path):
    assert os.path.exists(SCRIPT), 'the console script is not installed'

    async def run(server):
        config = server.config   # its real port, written after the start
        async with session() as s:
            room = await Page(server, s, 'random/chat.html').open()
            counter = await Page(server, s, 'counter/counter.html').open()

            # A room: the demo's subscriber stores it and appends it.
            code, out, err = await zorgLive(
                'send', '--config', config, '--user', 'admin',
                '--group', '/random', 'hello <from> the shell',
                env={'ZORG_LIVE_PASSWORD': 'admin'})
            assert code == 0, err
            assert out.strip() == 'sent to /random (the site took it, stored)'
            [append] = await room.waitFor('append')
            assert 'hello &lt;from&gt; the shell' in append['html']

            # Any other group: a custom event with the text, or the data.
            code, out, err = await zorgLive(
                'send', '--config', config, '--group', '/counter', 'ping',
                env={'ZORG_LIVE_USER': 'admin:admin'})
            assert code == 0, err
            assert out.strip() == 'sent to /counter (1 open page here)'
            code, out, err = await zorgLive(
                'send', '--config', config, '--group', '/counter',
                '--event', 'new-bid', '--data', '{"price": 42}',
                env={'ZORG_LIVE_USER': 'admin:admin'})
            assert code == 0, err
            events = await counter.waitFor('custom', 2)
            assert [(e['name'], e['data']) for e in events] == [
                ('notify', {'text': 'ping'}), ('new-bid', {'price': 42})]
            # Nothing reached the other group.
            assert [e['event'] for e in room.events] == ['append']

    with demoServer(tmp_path, refresh_interval=5) as server:
        asyncio.run(run(server))


def test_zorg_live_send_says_what_to_do(tmp_path):
    async def run(server):
        config = server.config
        message = ('--group', '/lobby', 'hi')
        results = await asyncio.gather(
            zorgLive('send', '--config', config, *message),
            zorgLive('send', '--config', config, '--user', 'admin:wrong',
                     *message),
            zorgLive('send', '--config', config, '--user', 'alice',
                     *message, env={'ZORG_LIVE_PASSWORD': 'alice'}),
            zorgLive('send', '--config', config, '--user', 'admin',
                     *message),   # no password, no terminal to ask in
            zorgLive('send', '--config', config, '--user', 'admin:admin',
                     '--group', '/nowhere', 'hi'),
            zorgLive('send', '--config', str(tmp_path / 'nope.conf'),
                     *message),
        )
        (anonymous, wrong, alice, nopassword, unknown, noconfig) = results
        assert anonymous[0] == 1
        assert 'asks for a login: pass --user LOGIN' in anonymous[2]
        assert 'ZORG_LIVE_USER' in anonymous[2]
        assert wrong[0] == 1 and "refused the login 'admin'" in wrong[2]
        assert alice[0] == 1
        assert "'alice' may not push" in alice[2]
        assert 'zorg.live.Notify' in alice[2]
        assert nopassword[0] == 1
        assert 'set ZORG_LIVE_PASSWORD' in nopassword[2]
        assert unknown[0] == 1
        assert "unknown group: no page of group '/nowhere' is open" \
            in unknown[2]
        assert noconfig[0] == 2 and 'nope.conf does not exist' in noconfig[2]
        for result in results:
            assert 'Traceback' not in result[2], result[2]

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))
        port = server.port
    # The server is gone: say which address was tried.
    code, _out, err = asyncio.run(zorgLive(
        'send', '--config', server.config, '--user', 'admin:admin',
        '--group', '/lobby', 'hi'))
    assert code == 1
    assert 'nothing answers at http://127.0.0.1:%d/@@notify' % port in err
    assert 'is the site running?' in err


def test_the_notify_view_refuses_bad_requests(tmp_path):
    async def run(server):
        url = server.url('@@notify')
        async with session() as s:
            await Page(server, s, 'counter/counter.html').open()
            async with s.get(url, headers=ADMIN) as r:
                assert r.status == 405 and r.headers['Allow'] == 'POST'
            # A plain HTML form cannot send application/json: refused.
            async with s.post(url, data='{"group": "/counter", "text": "x"}',
                              headers=dict(ADMIN, **{
                                  'Content-Type': 'text/plain'})) as r:
                assert r.status == 415
            for body, why in [
                    ('{"group": "/counter"', 'not valid JSON'),
                    ('[1]', 'JSON object'),
                    ('{"text": "x"}', '"group"'),
                    ('{"group": "/counter"}', 'give "text"'),
                    ('{"group": "/counter", "text": 3}', '"text"'),
                    ('{"group": "/counter", "text": "x", "event": "a b"}',
                     '"event"'),
                    ('{"group": "/counter", "data": NaN}', 'NaN')]:
                async with s.post(url, data=body, headers=dict(ADMIN, **{
                        'Content-Type': 'application/json'})) as r:
                    answer = await r.json()
                    assert r.status == 400, body
                    assert why in answer['message'], (body, answer)
            async with s.post(url, json={'group': '/counter',
                                         'text': 'x' * 70000},
                              headers=ADMIN) as r:
                assert r.status == 413
            async with s.post(url, json={'group': 'nobody', 'text': 'x'},
                              headers=ADMIN) as r:
                assert r.status == 404
                answer = await r.json()
                assert answer['error'] == 'unknown-group'
                assert "group 'nobody'" in answer['message']
                assert '/counter' in answer['message']   # the open ones
            # Not even the right body gets through without the permission.
            async with s.post(url, json={'group': '/counter', 'text': 'x'},
                              headers=ALICE) as r:
                assert r.status == 403

    with demoServer(tmp_path) as server:
        asyncio.run(run(server))


def test_credentials_come_from_option_environment_or_prompt():
    assert credentials(None, {}) is None
    assert credentials('bob:secret:x', {}) == ('bob', 'secret:x')
    assert credentials(None, {'ZORG_LIVE_USER': 'ann',
                              'ZORG_LIVE_PASSWORD': 'pw'}) == ('ann', 'pw')
    asked = []
    assert credentials('ann', {}, ask=lambda p: asked.append(p) or 'typed') \
        == ('ann', 'typed')
    assert asked == ['password for ann: ']


def test_the_address_is_the_live_server_of_zope_conf(tmp_path):
    conf = tmp_path / 'zope.conf'
    conf.write_text(
        'site-definition site.zcml\n'
        '<server a>\n  type WSGI-HTTP\n  address 127.0.0.1:8081\n</server>\n'
        '<server b>\n  type LiveServerHTTP\n  address 0.0.0.0:8080\n'
        '</server>\n<zodb>\n  <mappingstorage />\n</zodb>\n'
        '<eventlog>\n  <logfile>\n    path STDOUT\n  </logfile>\n'
        '</eventlog>\n')
    assert siteURL(str(conf)) == ('http://127.0.0.1:8080/', 'LiveServerHTTP')
    conf.write_text(conf.read_text().replace('0.0.0.0:8080', '127.0.0.1:0'))
    with pytest.raises(SendError, match='port 0 .* --url'):
        siteURL(str(conf))

