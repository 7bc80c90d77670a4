"""The ``@@client`` view (ClientView) answering bad input: the HTTP status,
the JSON error body, and that no page's state changed.

The view is used as the publisher would use it: traversed with
publishTraverse, called, its context a security-proxied LivePage made for
the same request.
"""

import io
import json

import pytest
import zope.component
from zope.publisher import browser
from zope.security.checker import NamesChecker, ProxyFactory

from zorg.live import testing
from zorg.live.interfaces import ILivePageManager
from zorg.live.core.events import Append
from zorg.live.page.manager import LivePageManager
from zorg.live.page.views import ClientView

MAX_BODY = ClientView.maxInputSize


class Principal:
    def __init__(self, id):
        self.id = self.title = id


@pytest.fixture
def manager():
    testing.setUp()
    manager = LivePageManager()
    zope.component.provideUtility(manager, ILivePageManager)
    yield manager
    testing.tearDown()


@pytest.fixture
def pages(manager):
    """Uwe's page uuid1 and Dominik's uuid2, with an answer pending each
    and one event waiting after it."""
    for principal in ('uwe', 'dominik'):
        testing.TestLivePage(None, make_request(principal)).render()
    group = manager.getClient('uuid1').group_id
    manager.publish(Append('target', 'first'), group)
    for uuid in ('uuid1', 'uuid2'):
        manager.output(uuid, 0, timeout=0)
    manager.publish(Append('target', 'second'), group)
    return manager


def make_request(principal='uwe', body=None, content_type=None,
                 content_length=None, form=None, method='POST'):
    # POST, as livepage.js sends every step that changes state.
    environ = {'REQUEST_METHOD': method}
    if content_type is not None:
        environ['CONTENT_TYPE'] = content_type
    if body is not None:
        environ['CONTENT_LENGTH'] = str(len(body))
    if content_length is not None:
        environ['CONTENT_LENGTH'] = content_length
    request = browser.TestRequest(body_instream=io.BytesIO(body or b''),
                          environ=environ, form=form or {})
    request.setPrincipal(Principal(principal))
    return request


def call(*steps, principal='uwe', **request_args):
    """Traverse ``@@client/<steps>`` and call it: (status, JSON body)."""
    request = make_request(principal, **request_args)
    page = ProxyFactory(testing.TestLivePage(None, request),
                        NamesChecker(['__call__']))
    view = ClientView(page, request)
    for step in steps:
        view = view.publishTraverse(request, step)
    body = view()
    return request.response.getStatus(), json.loads(body)


def json_input(handler='append', arguments=('target', 'x'), **extra):
    data = {'handler': handler, 'arguments': list(arguments)}
    data.update(extra)
    return json.dumps(data).encode('utf-8')


def state(manager):
    """Everything a bad request must leave alone."""
    clients = {}
    for client in manager:
        d = client.delivery
        clients[client.uuid] = (
            client.principal, client.group_id, d.acked, d.nextNum,
            None if d.pending is None else (d.pending.num, d.pending.body))
    groups = {group: manager.broker.latest(group)
              for group in manager.groups()}
    return clients, groups, manager.published


def assert_error(result, status, code):
    assert result[0] == status
    assert result[1]['error'] == code
    assert result[1]['message']


# -- unknown page (404) -------------------------------------------------------

def test_output_for_unknown_page_is_404_unknown_page(pages):
    result = call('uuid99', 'output', form={'outputNum': '0'})
    assert_error(result, 404, 'unknown-page')


def test_unknown_page_message_says_register_again(pages):
    _status, body = call('uuid99', 'output', form={'outputNum': '0'})
    assert 'register the page again' in body['message']


def test_unknown_page_message_does_not_repeat_the_page_id(pages):
    _status, body = call('secret-page-id', 'output',
                         form={'outputNum': '0'})
    assert 'secret-page-id' not in body['message']


def test_input_for_unknown_page_is_404(pages):
    result = call('uuid99', 'input', body=json_input(),
                  content_type='application/json')
    assert_error(result, 404, 'unknown-page')


def test_unknown_page_changes_nothing(pages):
    before = state(pages)
    call('uuid99', 'output', form={'outputNum': '0'})
    call('uuid99', 'input', body=json_input(),
         content_type='application/json')
    assert state(pages) == before


# -- output: bad numbers (400) -----------------------------------------------

@pytest.mark.parametrize('num', ['', '-1', 'abc', '1.5', '7', '0x1'])
def test_bad_outputnum_is_400_bad_request(pages, num):
    result = call('uuid1', 'output', form={'outputNum': num})
    assert_error(result, 400, 'bad-request')


@pytest.mark.parametrize('num', ['', '-1', 'abc', '7'])
def test_bad_outputnum_changes_nothing(pages, num):
    before = state(pages)
    call('uuid1', 'output', form={'outputNum': num})
    assert state(pages) == before


@pytest.mark.parametrize('last', ['abc', '-3', '99999999999999999999'])
def test_bad_last_event_id_is_400_and_changes_nothing(pages, last):
    before = state(pages)
    result = call('uuid1', 'output',
                  form={'outputNum': '1', 'lastEventId': last})
    assert_error(result, 400, 'bad-request')
    assert state(pages) == before


def test_repeated_outputnum_through_the_view_is_the_pending_answer(pages):
    pending = pages.getClient('uuid1').delivery.pending.body
    request = make_request(form={'outputNum': '0'})
    view = ClientView(ProxyFactory(testing.TestLivePage(None, request),
                                   NamesChecker(['__call__'])), request)
    view.publishTraverse(request, 'uuid1').publishTraverse(request, 'output')
    assert view() == pending


# -- input: handlers and bodies ----------------------------------------------

def test_undeclared_handler_is_400(pages):
    result = call('uuid1', 'input', body=json_input('render', ()),
                  content_type='application/json')
    assert_error(result, 400, 'bad-request')


def test_undeclared_handler_message_lists_declared_ones(pages):
    _status, body = call('uuid1', 'input', body=json_input('__init__', ()),
                         content_type='application/json')
    assert body['message'] == \
        "Undeclared handler '__init__': this page declares append"


def test_undeclared_handler_in_form_is_400(pages):
    result = call('uuid1', 'input',
                  form={'handler-name': 'renderBody', 'arguments': ''})
    assert_error(result, 400, 'bad-request')


def test_handler_name_that_is_not_text_is_400(pages):
    body = json.dumps({'handler': ['append'], 'arguments': []}).encode()
    result = call('uuid1', 'input', body=body,
                  content_type='application/json')
    assert_error(result, 400, 'bad-request')


def test_wrong_arity_is_400_naming_the_handler(pages):
    status, body = call('uuid1', 'input', body=json_input('append', ['x']),
                        content_type='application/json')
    assert (status, body['message'].startswith("handler 'append'")) == \
        (400, True)


def test_body_over_max_body_is_413(pages):
    body = json_input(arguments=['target', 'x' * MAX_BODY])
    result = call('uuid1', 'input', body=body,
                  content_type='application/json')
    assert_error(result, 413, 'too-large')


def test_body_over_max_body_with_small_content_length_is_413(pages):
    body = json_input(arguments=['target', 'x' * MAX_BODY])
    result = call('uuid1', 'input', body=body, content_length='10',
                  content_type='application/json')
    assert_error(result, 413, 'too-large')


def test_arguments_over_page_limit_are_413(pages):
    body = json_input(arguments=['target',
                                 'x' * testing.TestLivePage.maxArgumentsSize])
    result = call('uuid1', 'input', body=body,
                  content_type='application/json')
    assert_error(result, 413, 'too-large')


@pytest.mark.parametrize('body', [
    b'{"handler": "append", ', b'not json', b'\xff\xfe', b'[1, 2]',
    b'"append"', b'{"arguments": []}', b''])
def test_malformed_json_body_is_400(pages, body):
    result = call('uuid1', 'input', body=body,
                  content_type='application/json; charset=utf-8')
    assert_error(result, 400, 'bad-request')


def test_malformed_arguments_text_is_400(pages):
    result = call('uuid1', 'input',
                  form={'handler-name': 'append', 'arguments': '[1,'})
    assert_error(result, 400, 'bad-request')


def test_missing_handler_name_is_400(pages):
    result = call('uuid1', 'input', form={'arguments': 'a,b'})
    assert_error(result, 400, 'bad-request')


def test_input_of_another_principal_is_403(pages):
    result = call('uuid1', 'input', principal='dominik', body=json_input(),
                  content_type='application/json')
    assert_error(result, 403, 'forbidden')


def test_bad_input_changes_nothing(pages):
    before = state(pages)
    for body in (json_input('render', ()), b'not json',
                 json_input(arguments=['target', 'x' * MAX_BODY])):
        call('uuid1', 'input', body=body, content_type='application/json')
    call('uuid1', 'input', principal='dominik', body=json_input(),
         content_type='application/json')
    assert state(pages) == before


def test_good_input_answers_the_reply_events(pages):
    _status, body = call('uuid1', 'input', body=json_input(),
                         content_type='application/json')
    assert body == {'events': []}


def test_good_input_publishes(pages):
    before = pages.published
    call('uuid1', 'input', body=json_input(),
         content_type='application/json')
    assert pages.published == before + 1


# -- steps -------------------------------------------------------------------

def test_missing_step_is_400(pages):
    result = call('uuid1')
    assert_error(result, 400, 'bad-request')


def test_sse_step_on_threaded_view_is_501_no_sse(pages):
    result = call('uuid1', 'events')
    assert_error(result, 501, 'no-sse')


def test_unknown_step_is_not_found(pages):
    from zope.publisher.interfaces import NotFound
    request = make_request()
    view = ClientView(testing.TestLivePage(None, request), request)
    view.publishTraverse(request, 'uuid1')
    with pytest.raises(NotFound):
        view.publishTraverse(request, 'delete')


def test_error_answers_are_json(pages):
    request = make_request(form={'outputNum': 'x'})
    view = ClientView(ProxyFactory(testing.TestLivePage(None, request),
                                   NamesChecker(['__call__'])), request)
    view.publishTraverse(request, 'uuid1').publishTraverse(request, 'output')
    view()
    assert request.response.getHeader('Content-Type') == 'application/json'


def test_close_unregisters_the_page(pages):
    call('uuid2', 'close')
    assert pages.queryClient('uuid2') is None


def test_close_of_unknown_page_changes_nothing(pages):
    before = state(pages)
    call('uuid99', 'close')
    assert state(pages) == before


def test_a_livepage_takes_its_template_from_zcml(tmp_path):
    """``<browser:page class="MyLivePage" template="x.pt">`` makes a
    subclass whose template is `index` (zope.browserpage): the page
    renders it (it raised NotImplementedError)."""
    from zope.browserpage.simpleviewclass import SimpleViewClass
    from zope.publisher.browser import TestRequest
    from zorg.live.page.page import LivePage
    template = tmp_path / 'x.pt'
    template.write_text('<html><body><p tal:content="string:from '
                        'zcml">x</p></body></html>')
    view = SimpleViewClass(str(template), bases=(LivePage,))(
        object(), TestRequest())
    assert '<p>from zcml</p>' in view.renderBody()


def test_a_rendered_live_page_is_never_cached(tmp_path):
    """Its HTML holds the page id (a capability) and the connection
    ticket: Cache-Control private, no-store."""
    from zorg.live.tests.serverfixture import RunningServer
    import urllib.request
    with RunningServer(tmp_path, threads=2) as server:
        with urllib.request.urlopen(server.url('snapshot.html')) as r:
            assert r.status == 200
            assert r.headers['Cache-Control'] == 'private, no-store'
            assert b'data-uuid' in r.read()
