"""The Plone tests run in `make test-plone` (its own virtualenv with
Plone 6); where Plone is not installed (`make test`) they are not
collected."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec('Products.CMFPlone') is None:
    collect_ignore.append('test_plone.py')
