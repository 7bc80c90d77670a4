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
