"""Pages of anonymous visitors: nobody can lock the others out.

Anonymous pages cost memory and are free to make, so a process keeps at
most max-anonymous-pages of them, at most max-anonymous-per-address from
one client address, and at most max-prefix-share of the cap from the
addresses of one network prefix (IPv4 /24, IPv6 /64: settings
ipv4-prefix, ipv6-prefix). Each refusal is 503 with Retry-After.

Caps alone would still let a few prefixes fill the whole cap and refuse
everybody else until their pages time out (and a shared stream keeps
them from timing out). So when the cap is full, a visitor whose prefix
holds fewer pages than the fullest prefix *takes the place* of the least
recently seen page of the fullest prefix: that page is told to close
(``close`` event, reason ``evicted``) and unregistered. A visitor of the
fullest prefix itself is refused, so an attacker cannot churn through
others' pages: an attacker's pages are the ones evicted, and a visitor is
evicted only when its prefix holds as many pages as the attacker's
fullest one -- which, for an attacker with N prefixes, means more than
max-anonymous-pages / N pages.

Why this rather than a fixed share per prefix alone: with a share of
1/k, k prefixes fill the cap; eviction of the fullest holds for any
number of attacker prefixes up to max-anonymous-pages (an attacker with
that many prefixes and one page each is indistinguishable from as many
visitors). A signed cookie or proof of work would not help against an
attacker with a browser.

The counts per prefix come from a census of the manager's pages, taken
at most once a second (`Census.interval`) plus the pages admitted since:
a page closed meanwhile is still counted, so the caps err on the side of
refusing, never of admitting more.

    >>> class Page:
    ...     def __init__(self, uuid, address, seen):
    ...         self.uuid, self.address, self.lastSeen = uuid, address, seen
    ...         self.anonymous, self.refused = True, False
    >>> pages = [Page('a%d' % n, '192.0.2.%d' % n, n) for n in range(6)]
    >>> pages += [Page('b%d' % n, '198.51.100.1', n) for n in range(3)]
    >>> census = Census(24, 64)
    >>> census.take(pages, now=0.0)
    >>> census.counts['192.0.2.0/24'], census.counts['198.51.100.0/24']
    (6, 3)
    >>> census.victim(pages, '203.0.113.0/24').uuid   # the fullest's oldest
    'a0'
    >>> census.victim(pages, '198.51.100.0/24').uuid  # 3 + 1 < 6
    'a0'
    >>> print(census.victim(pages, '192.0.2.0/24'))   # the fullest: no
    None
"""

import ipaddress
import threading
import time
import weakref

from zorg.live.interfaces import Busy
from zorg.live.core.events import Close

# Settings (configure); the defaults are the settings' defaults.
maxPages = 10000
perAddress = 1000
share = 0.1
v4, v6 = 24, 64
retryAfter = 5

# What happened, for @@live-health (this process).
counted = {'anonymous-evicted': 0, 'anonymous-refused': 0}


def configure(settings):
    global maxPages, perAddress, share, v4, v6, retryAfter
    maxPages = settings.max_anonymous_pages
    perAddress = settings.max_anonymous_per_address
    share = settings.max_prefix_share
    v4, v6 = settings.ipv4_prefix, settings.ipv6_prefix
    retryAfter = settings.retry_after


def prefixOf(address, v4, v6):
    """The network prefix (text) `address` belongs to; the address
    itself when it is not an IP address.

    >>> prefixOf('192.0.2.77', 24, 64), prefixOf('2001:db8:1:2:3::9', 24, 64)
    ('192.0.2.0/24', '2001:db8:1:2::/64')
    >>> prefixOf('::ffff:192.0.2.77', 24, 64)
    '192.0.2.0/24'
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = v4 if ip.version == 4 else v6
    return str(ipaddress.ip_network('%s/%d' % (ip, bits), strict=False))


def perPrefix():
    return max(1, int(maxPages * share))


class Census:
    """Anonymous pages per prefix, of one manager."""

    interval = 1.0

    def __init__(self, v4bits, v6bits):
        self.v4, self.v6 = v4bits, v6bits
        self.counts = {}
        self.takenAt = None
        self.lock = threading.Lock()

    def prefix(self, address):
        return prefixOf(address, self.v4, self.v6) if address else None

    def take(self, pages, now):
        counts = {}
        for page in pages:
            if page.anonymous and not page.refused:
                prefix = self.prefix(getattr(page, 'address', None))
                counts[prefix] = counts.get(prefix, 0) + 1
        self.counts, self.takenAt = counts, now

    def fresh(self, pages, now):
        if self.takenAt is None or now - self.takenAt >= self.interval:
            self.take(pages, now)
        return self.counts

    def victim(self, pages, prefix):
        """The page to evict for a newcomer of `prefix`: the least
        recently seen of the fullest prefix, if that holds at least two
        more than `prefix` (else None: the newcomer is refused)."""
        self.take(pages, self.takenAt)
        if not self.counts:
            return None
        fullest = max(self.counts, key=self.counts.get)
        if self.counts[fullest] < self.counts.get(prefix, 0) + 2:
            return None
        found = None
        for page in pages:
            if (page.anonymous and not page.refused and self.prefix(
                    getattr(page, 'address', None)) == fullest and (
                    found is None or page.lastSeen < found.lastSeen)):
                found = page
        return found


_censuses = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def censusOf(manager):
    with _lock:
        census = _censuses.get(manager)
        if census is None or (census.v4, census.v6) != (v4, v6):
            census = _censuses[manager] = Census(v4, v6)
        return census


def refuse(message):
    counted['anonymous-refused'] += 1
    raise Busy(message + ' Try again in %d seconds, or log in.'
               % retryAfter, retryAfter)


def admit(manager, client, now=None):
    """Check (and make room for) a new anonymous page `client`; Busy when
    it may not have one. Called before it registers (LivePage)."""
    if not client.anonymous:
        return
    address = getattr(client, 'address', None)
    total, fromAddress = manager.anonymousPages(address)
    if fromAddress >= perAddress:
        refuse('Your address has its maximum of %d open pages of anonymous '
               'visitors; close some.' % perAddress)
    census = censusOf(manager)
    prefix = census.prefix(address)
    now = time.monotonic() if now is None else now
    with census.lock:
        counts = census.fresh(manager, now)
        if counts.get(prefix, 0) >= perPrefix():
            refuse('Your network has its maximum of %d open pages of '
                   'anonymous visitors (setting max-prefix-share).'
                   % perPrefix())
        victim = None
        if total >= maxPages:
            fullest = max(counts.values()) if counts else 0
            if fullest >= counts.get(prefix, 0) + 2:
                victim = census.victim(list(manager), prefix)
            if victim is None:
                refuse('This server holds its maximum of %d pages of '
                       'anonymous visitors, and your network holds as '
                       'many as any.' % maxPages)
            census.counts[census.prefix(victim.address)] -= 1
        census.counts[prefix] = census.counts.get(prefix, 0) + 1
    if victim is not None:
        evict(manager, victim)


def evict(manager, page):
    counted['anonymous-evicted'] += 1
    try:
        manager.publishToClient(Close('evicted'), page.uuid)
    finally:
        manager.unregister(page.uuid)
