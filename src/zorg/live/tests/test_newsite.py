"""A site of one's own: the example site that README.txt shows, written by
``zorg-live new`` and served by ``zorg-live serve`` (zope.conf or
PasteDeploy ini), with clear errors and a clean stop."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from zorg.live.server.runner import EXAMPLE, EXAMPLE_FILES
from zorg.live.tests.newsite import Served, environ, newSite, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
README = os.path.join(ROOT, 'README.txt')


def get(url, login=None, data=None):
    """(status, body) of a GET (a POST of JSON `data`), with HTTP basic
    auth for `login`."""
    request = urllib.request.Request(url)
    if data is not None:
        request.data = json.dumps(data).encode()
        request.add_header('Content-Type', 'application/json')
    if login:
        token = base64.b64encode(('%s:%s' % (login, login)).encode())
        request.add_header('Authorization', 'Basic ' + token.decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def example(name):
    with open(os.path.join(EXAMPLE, name)) as f:
        return f.read()


# -- README.txt shows the example as it is --------------------------------

@pytest.mark.parametrize('name', EXAMPLE_FILES)
def test_readme_shows_each_example_file_whole(name):
    with open(README) as f:
        readme = f.read()
    block = textwrap.indent(example(name), '    ')
    assert block in readme, (
        'README.txt must show %s exactly as src/zorg/live/example/%s is '
        '(a literal block, indented by 4 spaces)' % (name, name))


def test_new_writes_the_example_and_overwrites_nothing(tmp_path):
    site = newSite(tmp_path, 'first')
    # --port 0 changes the address lines only.
    for name in EXAMPLE_FILES:
        written = (site / name).read_text()
        assert written == example(name).replace(
            '127.0.0.1:8080', '127.0.0.1:0').replace(
            'port = 8080', 'port = 0'), name
    assert (site / 'var').is_dir()
    done = run(['new', 'default'], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in EXAMPLE_FILES:
        assert (tmp_path / 'default' / name).read_text() == example(name)
    (tmp_path / 'empty').mkdir()
    done = run(['new', 'empty'], cwd=tmp_path)    # an empty folder is fine
    assert done.returncode == 0, done.stderr
    assert (tmp_path / 'empty' / 'zope.conf').read_text() == \
        example('zope.conf')
    (site / 'poll.py').write_text('# mine\n')
    again = run(['new', 'first'], cwd=tmp_path)
    assert again.returncode == 2
    assert 'exists and is not an empty folder' in again.stderr
    assert 'Traceback' not in again.stderr
    assert (site / 'poll.py').read_text() == '# mine\n'


def test_readme_complete_zope_conf_loads(tmp_path):
    """"Serving a site" shows a complete zope.conf: it loads as it is."""
    from zorg.live.server.config import loadOptions
    with open(README) as f:
        readme = f.read()
    start = readme.index('A complete one::\n\n') + len('A complete one::\n\n')
    end = readme.index('\n\n``$here``', start)
    conf = tmp_path / 'zope.conf'
    conf.write_text(textwrap.dedent(readme[start:end]) + '\n')
    (tmp_path / 'var').mkdir()
    options = loadOptions(str(conf))
    assert options.site_definition == str(tmp_path / 'site.zcml')
    assert [s.type for s in options.servers] == ['LiveServerHTTP',
                                                 'WSGI-HTTP']
    assert len(options.databases) == 1 and options.eventlog is not None


# -- bluebream.zcml is all a site needs ------------------------------------

BLUEBREAM_ALONE = r'''
import base64, sys
from zorg.live.server.config import openApplication
app = openApplication(sys.argv[1])
for name in ('zope.component.testing', 'zorg.live.testing'):
    assert name not in sys.modules, name + ' was imported'
answer = {}
def start_response(status, headers, exc_info=None):
    answer['status'] = status
auth = 'Basic ' + base64.b64encode(b'alice:alice').decode()
body = b''.join(app({
    'REQUEST_METHOD': 'GET', 'PATH_INFO': '/poll.html', 'SCRIPT_NAME': '',
    'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '8080',
    'SERVER_PROTOCOL': 'HTTP/1.1', 'wsgi.url_scheme': 'http',
    'wsgi.input': __import__('io').BytesIO(), 'HTTP_AUTHORIZATION': auth,
}, start_response))
print(answer['status'])
print(body.decode())
'''


def test_bluebream_zcml_alone_makes_a_working_site(tmp_path):
    """Nothing from zorg.live.testing (which imports zope.component.testing
    and with it the object-event dispatch): the site's own ZCML, the
    root folder created, the page rendered."""
    site = newSite(tmp_path)
    done = subprocess.run(
        [sys.executable, '-c', BLUEBREAM_ALONE, str(site / 'zope.conf')],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
        env=environ())
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.split('\n', 1)
    assert status == '200 Ok', body
    assert '<title>Lunch poll</title>' in body
    assert '<li data-principal="poll.alice">Alice</li>' in body


# -- serving it ----------------------------------------------------------

def test_serve_from_another_folder_with_logins_and_favicon(tmp_path):
    site = newSite(tmp_path)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    with Served(site / 'zope.conf', cwd=elsewhere) as served:
        status, body = get(served.url('poll.html'))
        assert status == 401          # the browser asks for a login
        status, body = get(served.url('poll.html'), 'bob')
        assert status == 200 and 'You are <b>Bob</b>' in body
        status, body = get(served.url(''), 'alice')   # the default view
        assert status == 200 and 'You are <b>Alice</b>' in body
        # A vote for something else is refused, and nothing is stored.
        client = re.search(r'data-client-url="([^"]+)"', body).group(1)
        status, answer = get(client + '/input', 'alice', {
            'handler': 'vote', 'arguments': ['<b>Pizza</b>']})
        assert status == 400
        assert json.loads(answer)['message'] == \
            'vote for one of Pizza, Sushi, Tacos'
        status, answer = get(client + '/input', 'alice', {
            'handler': 'vote', 'arguments': ['Tacos']})
        assert status == 200, answer
        status, body = get(served.url(''), 'bob')
        assert '<li>Tacos: <b>1</b> Alice</li>' in body
        assert 'Pizza: <b>0</b>' in body
        # Bob cannot vote through Alice's page.
        status, answer = get(client + '/input', 'bob', {
            'handler': 'vote', 'arguments': ['Sushi']})
        assert status == 403
        status, body = get(served.url('favicon.ico'))
        assert status == 404
        status, body = get(served.url('no-such-page'), 'alice')
        assert status == 404
        served.stop()
    log = served.log()
    assert 'favicon' not in log
    assert (site / 'var' / 'Data.fs').exists()   # $here, not the cwd
    assert not (elsewhere / 'var').exists()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_stop_saves_the_index(tmp_path, signum):
    """SIGTERM and Ctrl-C close the database: FileStorage writes its
    index, and the next start does not warn "Ignoring index"."""
    site = newSite(tmp_path)
    served = Served(site / 'zope.conf', cwd=tmp_path).start()
    try:
        assert get(served.url('poll.html'), 'alice')[0] == 200
        assert served.stop(signum) == 0
    finally:
        served.kill()
    index = site / 'var' / 'Data.fs.index'
    assert index.stat().st_mtime >= (site / 'var' / 'Data.fs').stat().st_mtime
    with Served(site / 'zope.conf', cwd=tmp_path) as again:
        assert get(again.url('poll.html'), 'bob')[0] == 200
        again.stop()
    assert 'Ignoring index' not in again.log()
    assert 'Traceback' not in again.log()


def test_paste_ini(tmp_path):
    """`zorg-live serve site.ini`: [app:main] and [server:main]."""
    site = newSite(tmp_path)
    with Served(site / 'site.ini', cwd=tmp_path) as served:
        status, body = get(served.url('poll.html'), 'alice')
        assert status == 200 and 'You are <b>Alice</b>' in body
        assert served.stop() == 0
    assert 'Traceback' not in served.log()


# -- clear errors ---------------------------------------------------------

def failure(site, config='zope.conf'):
    """Serve the site, which must fail at once; its stderr."""
    done = run(['serve', str(site / config)], cwd=site.parent, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert 'Traceback' not in done.stderr + done.stdout, done.stderr
    return done.stderr


@pytest.mark.parametrize('config, where', [
    ('zope.conf', 'zope.conf'),
    ('site.ini', "the ini file's [server:main]")])
def test_port_in_use(tmp_path, config, where):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = tmp_path / 'site'
        done = run(['new', 'site', '--port', str(port)], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        message = failure(site, config)
    assert ('127.0.0.1:%d is in use: choose another address in %s'
            % (port, where)) in message
    # The database was opened (and its root created) before the address
    # was tried: it was closed properly all the same.
    done = run(['new', 'other', '--port', '0'], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shutil.copy(tmp_path / 'other' / config, site / config)
    with Served(site / config, cwd=tmp_path) as served:
        assert get(served.url('poll.html'), 'alice')[0] == 200
        served.stop()
    assert 'Ignoring index' not in served.log()


def test_broken_ini(tmp_path):
    site = newSite(tmp_path)
    ini = site / 'site.ini'
    ini.write_text(ini.read_text().replace('[server:main]', '[server:other]'))
    message = failure(site, 'site.ini')
    assert 'it needs [app:main] and [server:main]' in message
    # The application was loaded, and its database closed properly.
    assert 'Ignoring index' not in run(
        ['serve', str(site / 'site.ini')], cwd=tmp_path).stdout
    ini.write_text('[app:main\nuse = egg:zorg.live#main\n')
    message = failure(site, 'site.ini')
    assert 'site.ini' in message


def test_missing_site_zcml(tmp_path):
    site = newSite(tmp_path)
    (site / 'site.zcml').unlink()
    message = failure(site)
    assert 'site-definition %s does not exist' % (site / 'site.zcml') \
        in message


def test_broken_site_zcml(tmp_path):
    site = newSite(tmp_path)
    zcml = site / 'site.zcml'
    zcml.write_text(zcml.read_text().replace('permission="poll.Vote"',
                                             'permission="poll.Typo"'))
    message = failure(site)
    assert 'cannot be executed' in message
    assert 'poll.Typo' in message


def test_missing_module(tmp_path):
    site = newSite(tmp_path)
    (site / 'poll.py').unlink()
    message = failure(site)
    assert 'cannot be executed' in message and 'poll' in message


@pytest.mark.parametrize('section, hint', [
    ('zodb', 'add a <zodb> section'),
    ('eventlog', 'add an <eventlog> section')])
def test_zope_conf_without_a_needed_section(tmp_path, section, hint):
    site = newSite(tmp_path)
    conf = site / 'zope.conf'
    text = conf.read_text()
    start = text.index('<%s>' % section)
    end = text.index('</%s>' % section) + len('</%s>' % section)
    conf.write_text(text[:start] + text[end:])
    message = failure(site)
    assert hint in message


def test_bad_zope_conf(tmp_path):
    site = newSite(tmp_path)
    conf = site / 'zope.conf'
    conf.write_text(conf.read_text().replace('threads 4', 'threads four'))
    message = failure(site)
    assert 'zope.conf' in message and 'four' in message


def test_missing_database_folder(tmp_path):
    site = newSite(tmp_path)
    shutil.rmtree(site / 'var')
    message = failure(site)
    assert 'mkdir -p %s' % (site / 'var') in message


def test_site_running_already(tmp_path):
    site = newSite(tmp_path)
    with Served(site / 'zope.conf', cwd=tmp_path):
        message = failure(site)
    assert 'is the site running already?' in message
