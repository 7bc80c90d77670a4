"""Runs the doctest specifications (the package's *.txt files).

pytest runs each file as one test; zope.testrunner (buildout's bin/test)
finds the same suites through test_suite().
"""

import doctest
import os
import unittest

import pytest

from zorg.live import testing

HERE = os.path.dirname(os.path.dirname(__file__))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

DOCFILES = sorted(name for name in os.listdir(HERE) if name.endswith('.txt'))


def suite_for(name):
    return doctest.DocFileSuite(
        os.path.join(HERE, name), module_relative=False,
        setUp=testing.setUp, tearDown=testing.tearDown, optionflags=FLAGS)


def test_suite():
    return unittest.TestSuite(suite_for(name) for name in DOCFILES)


@pytest.mark.parametrize('name', DOCFILES)
def test_doctest_file(name):
    result = unittest.TextTestRunner(verbosity=0).run(suite_for(name))
    assert result.wasSuccessful(), '%s failed, see the output above' % name
test_suite.__test__ = False  # for zope.testrunner, not a pytest test


# Modules whose docstrings tell their rule with examples.
DOCMODULES = ['zorg.live.page.inputonce', 'zorg.live.core.connection',
              'zorg.live.core.inputs',
              'zorg.live.page.strangers', 'zorg.live.server.budget',
              'zorg.live.server.clients', 'zorg.live.broker.redisurl',
              'zorg.live.core.ticket', 'zorg.live.page.redactlog']


@pytest.mark.parametrize('name', DOCMODULES)
def test_doctest_module(name):
    import importlib
    suite = doctest.DocTestSuite(importlib.import_module(name),
                                 optionflags=FLAGS)
    assert suite.countTestCases(), name
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    assert result.wasSuccessful(), '%s failed, see the output above' % name
