"""A workaround for a memory leak of zope.security's C checker.

zope.security's C ``Checker`` (``_zope_security_checker.c``, every
version up to 8.4 at least) tests whether an attribute name starts with
``__`` through ``PyUnicode_AsUTF8String(name)`` and never releases the
bytes object it makes: each check of a double-underscore name that the
checker does not list leaks two small objects. Traversal and the publisher
read ``__class__``, ``__providedBy__``, ``__parent__``, ``__name__`` of
security-proxied objects dozens of times per request, so a site leaks a
few KB per request: the demo grew from 68 to 345 MB over 8,600 messages
and stayed there (issue 19). PURE_PYTHON=1 (no C checker) stops the
growth, at the price of pure-Python security proxies everywhere.

The leaking branch runs only for names missing from the checker's table
of permissions. The names that zope.security makes available on every
object (its ``_available_by_default``) are therefore entered into the
table of every checker, as public: the same answer, given before the
leaking branch. Checkers made later (an ad-hoc NamesChecker) still take
the old path; CombinedChecker shares the table of its first checker.
tests/test_memory.py measures RSS after a churn of requests.

No public API lists the checkers or the names available by default, so
this reads three internals of zope.security (setup.py bounds its version
for that); without them it does nothing.
"""

import zope.security.checker as _checker


def plugCheckerLeak():
    """Enter the names available by default into every registered
    checker's table (and the default checker's); returns how many
    tables were changed. Run after the site's ZCML."""
    try:
        # Internals of zope.security; without them, nothing to do.
        names = list(_checker._available_by_default)
        checkers = list(_checker._checkers.values())
        checkers.append(_checker._defaultChecker)
    except AttributeError:
        return 0
    changed = 0
    for checker in checkers:
        table = getattr(checker, 'get_permissions', None)
        if not isinstance(table, dict):
            continue
        missing = [name for name in names if name not in table]
        for name in missing:
            table[name] = _checker.CheckerPublic
        changed += bool(missing)
    return changed
