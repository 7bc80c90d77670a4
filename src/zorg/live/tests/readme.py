"""README.txt's configuration examples, as the tests run them.

`block(lead)` is the literal block (``::``) that follows the paragraph
ending in `lead`, dedented; `settings(text)` reads a ``<zorg-live>``
block into RunningServer's keyword settings. The tests put in their own
ports and folders and otherwise run the examples as written.
"""

import os
import re
import textwrap

README = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                      'README.txt')


def block(lead):
    with open(README) as f:
        text = f.read()
    at = text.find(lead)
    assert at >= 0, 'README.txt has no %r' % lead
    match = re.compile(r'::\n\n((?:    .*\n|\n)+)').search(text, at)
    assert match, 'README.txt has no example after %r' % lead
    return textwrap.dedent(match.group(1)).strip() + '\n'


def settings(text):
    """{'broker': ..., 'broker_replicas': ...} of a <zorg-live> block."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('<'):
            key, value = line.split(None, 1)
            found[key.replace('-', '_')] = value
    return found


def port(text, old, new):
    """`text` with port `old` (after a colon, a space or a quote) made
    `new`."""
    changed = re.sub(r"(?<=[: '])%d\b" % old, str(new), text)
    assert changed != text, 'port %d not in %r' % (old, text)
    return changed


# The leads of the examples of "Running in production".
ZEO = 'ZEO (``pip install "zorg.live[zeo]"``'
RELSTORAGE = 'RelStorage on PostgreSQL (``pip install'
WORKERS = '``workers`` in ``<server>`` (or ``zorg-live serve --workers N``)'
REDIS = 'Redis 7 or newer. In each zope.conf'
SENTINEL = 'over. Name the sentinels and the service they monitor'
SENTINEL_CONF = "sentinel's configuration, beside a master on port 6379"
CLUSTER = 'Name some of its nodes (any one that answers tells the'
CLUSTER_CONF = "Each master's configuration (redis-server 7.0 or"
NGINX = 'nginx in front of three processes, round robin'
