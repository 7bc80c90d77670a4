"""Events: their JSON encoding, HTML escaping, safe(), the checks made when
an event is created (so that a bad event fails at its publisher, never at
its receivers), and Multi."""

import json
import math

import pytest

from zorg.live.broker.memory import MemoryBroker
from zorg.live.page.client import LivePageClient
from zorg.live.core.events import (
    BUILTIN, AddClass, Append, Close, Custom, Error, Event, Idle, Join, Leave,
    Multi, Prepend, Progress, Reload, Remove, RemoveClass, Replace,
    SetAttribute, Update, encode, escape_html, safe)
from zorg.live.page.manager import LivePageManager


class Markup(str):
    """Stands for markupsafe.Markup: any object with __html__."""

    def __html__(self):
        return str(self)


# -- encoding ----------------------------------------------------------------

def test_encode_is_compact_json_with_event_first():
    assert encode(Remove('x')) == '{"event":"remove","target":"x"}'


def test_encode_puts_the_id_first():
    assert encode(Remove('x'), '42') == '{"id":"42","event":"remove",' \
                                         '"target":"x"}'


def test_encode_keeps_non_ascii_text_as_text():
    assert '"html":"Grüße"' in encode(Append('t', 'Grüße'))


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        encode(Event(value=math.nan))


@pytest.mark.parametrize('event, expected', [
    (Append('t', 'a'), {'event': 'append', 'target': 't', 'html': 'a'}),
    (Prepend('t', 'a'), {'event': 'prepend', 'target': 't', 'html': 'a'}),
    (Update('t', 'a'), {'event': 'update', 'target': 't', 'html': 'a'}),
    (Replace('t', 'a'), {'event': 'replace', 'target': 't', 'html': 'a'}),
    (Remove('t'), {'event': 'remove', 'target': 't'}),
    (SetAttribute('t', 'title', 3),
     {'event': 'attribute', 'target': 't', 'name': 'title', 'value': '3'}),
    (AddClass('t', 'on'), {'event': 'addclass', 'target': 't', 'name': 'on'}),
    (RemoveClass('t', 'on'),
     {'event': 'removeclass', 'target': 't', 'name': 'on'}),
    (Progress('t', 0.5, 'half'),
     {'event': 'progress', 'target': 't', 'value': 0.5, 'text': 'half'}),
    (Reload(), {'event': 'reload'}),
    (Error('oops'), {'event': 'error', 'message': 'oops'}),
    (Idle(), {'event': 'idle'}),
    (Close('bye'), {'event': 'close', 'reason': 'bye'}),
    (Join('uwe', 'Uwe'), {'event': 'join', 'principal': 'uwe',
                          'title': 'Uwe'}),
    (Leave('uwe', 'Uwe'), {'event': 'leave', 'principal': 'uwe',
                           'title': 'Uwe'}),
    (Custom('tick', {'n': [1, 2]}),
     {'event': 'custom', 'name': 'tick', 'data': {'n': [1, 2]}}),
], ids=lambda value: getattr(value, 'name', None) or '')
def test_builtin_event_wire_form(event, expected):
    assert json.loads(encode(event)) == expected


def test_builtin_names_are_the_protocol_event_types():
    assert sorted(BUILTIN) == sorted([
        'append', 'prepend', 'update', 'replace', 'remove', 'attribute',
        'addclass', 'removeclass', 'progress', 'reload', 'error', 'idle',
        'close', 'multi', 'join', 'leave', 'custom'])


def test_fields_returns_a_copy():
    event = Remove('x')
    event.fields()['target'] = 'y'
    assert event.fields() == {'target': 'x'}


# -- escaping ----------------------------------------------------------------

def test_plain_text_html_is_escaped():
    assert Append('t', '<b>&</b>').fields()['html'] == \
        '&lt;b&gt;&amp;&lt;/b&gt;'


def test_safe_html_is_inserted_unchanged():
    assert Append('t', safe('<b>x</b>')).fields()['html'] == '<b>x</b>'


def test_objects_with_dunder_html_are_trusted():
    assert Update('t', Markup('<i>x</i>')).fields()['html'] == '<i>x</i>'


def test_non_text_html_is_converted_and_escaped():
    assert escape_html(3) == '3'


@pytest.mark.parametrize('event_type', [Append, Prepend, Update, Replace])
def test_every_html_event_escapes_plain_text(event_type):
    assert event_type('t', '<script>').fields()['html'] == '&lt;script&gt;'


def test_text_fields_are_not_escaped():
    # The browser sets them with textContent; escaping would show '&lt;'.
    assert Error('<b>').fields()['message'] == '<b>'


# -- checks at creation ------------------------------------------------------

@pytest.mark.parametrize('value', [0, 1, 0.25, '0.5', 1.0])
def test_progress_accepts_values_from_0_to_1(value):
    assert Progress('t', value).fields()['value'] == float(value)


@pytest.mark.parametrize('value', [-0.01, 1.01, 100, math.nan, math.inf])
def test_progress_refuses_values_outside_0_to_1(value):
    with pytest.raises(ValueError, match='between 0 and 1'):
        Progress('t', value)


def test_progress_refuses_non_numbers():
    with pytest.raises(ValueError):
        Progress('t', 'half')


@pytest.mark.parametrize('data', [object(), {1, 2}, b'bytes', math.nan,
                                  {'x': math.inf}])
def test_custom_refuses_data_that_is_not_json(data):
    with pytest.raises((TypeError, ValueError)):
        Custom('tick', data)


def test_custom_with_bad_data_publishes_nothing():
    manager = LivePageManager(MemoryBroker())
    manager.register(LivePageClient('page-a', 'uwe', 'room'))
    before = manager.broker.latest('room')
    with pytest.raises(TypeError):
        manager.publish(Custom('tick', object()), 'room')
    assert manager.broker.latest('room') == before


# -- Multi -------------------------------------------------------------------

def test_multi_carries_its_events_in_order():
    multi = Multi(Remove('a'), Append('b', 'x'), Reload())
    assert json.loads(encode(multi)) == {'event': 'multi', 'events': [
        {'event': 'remove', 'target': 'a'},
        {'event': 'append', 'target': 'b', 'html': 'x'},
        {'event': 'reload'}]}


def test_multi_keeps_the_escaping_of_its_events():
    multi = Multi(Append('t', '<b>'), Append('t', safe('<b>')))
    htmls = [e['html'] for e in json.loads(encode(multi))['events']]
    assert htmls == ['&lt;b&gt;', '<b>']


def test_multi_id_is_on_the_outer_event_only():
    data = json.loads(encode(Multi(Remove('a')), '7'))
    assert (data['id'], 'id' in data['events'][0]) == ('7', False)


def test_empty_multi_has_no_events():
    assert json.loads(encode(Multi())) == {'event': 'multi', 'events': []}


# -- once per publish --------------------------------------------------------

class CountingEvent(Event):
    name = 'counting'
    encoded = 0

    def fields(self):
        CountingEvent.encoded += 1
        return {}


def test_event_is_encoded_once_per_publish_whatever_the_receivers():
    manager = LivePageManager(MemoryBroker())
    for n in range(5):
        manager.register(LivePageClient('page-%d' % n, 'p%d' % n, 'room'))
    CountingEvent.encoded = 0
    manager.publish(CountingEvent(), 'room')
    for n in range(5):
        manager.output('page-%d' % n, 0, timeout=0)
    assert CountingEvent.encoded == 1
