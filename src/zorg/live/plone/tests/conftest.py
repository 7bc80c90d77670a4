"""The Plone tests run in `make test-plone` (its own virtualenv with
Plone 6; CI runs it after `make test`); where Plone is not installed
(`make test`) they are not collected."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec('Products.CMFPlone') is None:
    collect_ignore_glob.append('test_*.py')
    collect_ignore_glob.append('helpers.py')
    collect_ignore_glob.append('instance.py')
