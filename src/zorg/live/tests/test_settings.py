"""The settings table: conversion, errors, environment, and its docs."""

import os

import pytest

from zorg.live.server.settings import TABLE, Settings

README = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                      'README.txt')


def test_defaults_are_typed():
    settings = Settings()
    assert settings.refresh_interval == 25.0
    assert settings.threads == 4
    assert settings.max_connections > 0


def test_values_are_converted_from_text():
    settings = Settings(**{'refresh-interval': '0.5', 'max_body_size': '2KB'})
    assert settings.refresh_interval == 0.5
    assert settings.max_body_size == 2048


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(ValueError, match='known settings: .*threads'):
        Settings(refresh_intervall=3)


def test_malformed_value_says_which_setting():
    with pytest.raises(ValueError, match='setting threads'):
        Settings(threads='many')


def test_environment_variables_are_read():
    settings = Settings.fromEnviron({'ZORG_LIVE_HEARTBEAT_INTERVAL': '7'})
    assert settings.heartbeat_interval == 7.0


def test_every_setting_is_documented_in_the_readme():
    with open(README) as f:
        text = f.read()
    missing = [name for name, *_ in TABLE if '\n%s ' % name not in text]
    assert missing == []


# -- checked together --------------------------------------------------------

@pytest.mark.parametrize('name, value, message', [
    ('refresh-interval', '0', 'must be positive'),
    ('heartbeat-interval', '-1', 'must be positive'),
    ('threads', '0', 'must be positive'),
    ('max-idle-groups', '-1', 'must not be negative'),
    ('refresh-interval', '7200', 'use at most 3600'),
    ('heartbeat-interval', '4000', 'use at most 3600'),
    ('max-connections', '100000000', 'raise the open-file limit'),
    ('max-header-count', '0', 'must be positive'),
    ('max-argument-depth', '0', 'must be positive'),
    ('max-anonymous-per-address', '20000', 'lower it'),
    ('trusted-origins', 'example.org', 'is not an origin'),
    ('trusted-origins', 'https://a.example/path', 'is not an origin'),
    ('allow-get-input', 'maybe', 'not a valid on/off'),
])
def test_settings_out_of_range_are_refused_with_what_to_do(name, value,
                                                           message):
    with pytest.raises(ValueError, match=message) as error:
        Settings(**{name: value})
    assert name in str(error.value)


def test_switches_and_sizes_read_as_written():
    settings = Settings(allow_get_input='on', max_header_size='16KB',
                        trusted_origins='https://a.example:8443')
    assert settings.allow_get_input is True
    assert settings.max_header_size == 16384
    assert Settings().allow_get_input is False


def test_settings_from_the_environment_are_checked_too():
    with pytest.raises(ValueError, match='health-timeout'):
        Settings.fromEnviron({'ZORG_LIVE_HEALTH_TIMEOUT': '0'})


def test_the_page_tells_the_script_the_server_timings(monkeypatch):
    from zope.publisher.browser import TestRequest

    from zorg.live import testing
    from zorg.live.page.manager import MARK, TRANSPORTS
    testing.setUp()
    try:
        from zorg.live.interfaces import ILivePageManager
        from zorg.live.page.manager import LivePageManager
        import zope.component
        manager = LivePageManager()
        zope.component.provideUtility(manager, ILivePageManager)
        Settings(refresh_interval='90', heartbeat_interval='70'
                 ).applyToPages()
        request = TestRequest(environ={TRANSPORTS: 'longpoll'})
        html = testing.TestLivePage(None, request).render()
        assert 'data-refresh-interval="90"' in html
        assert 'data-heartbeat-interval="70"' in html
        assert 'data-transports="longpoll"' in html
        # A request marked by the server starts the page's cursor there.
        mark = manager.broker.mark()
        page = testing.TestLivePage(None, TestRequest(environ={MARK: mark}))
        manager.publish(testing.Append('target', 'meanwhile'),
                        page.getGroupId())
        page.render()
        assert page.client.delivery.acked == mark
    finally:
        testing.tearDown()
