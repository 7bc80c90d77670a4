"""Who is asking, and how much of the server one of them may hold.

The client address is the one the trusted proxy gives: a connection from
an address of ``FORWARDED_ALLOW_IPS`` (uvicorn's variable, 127.0.0.1 by
default) is a proxy's, and the client is the rightmost address of its
``X-Forwarded-For`` that is not itself a trusted proxy (uvicorn's rule,
which the site's requests follow too); its scheme is ``X-Forwarded-Proto``.

Addresses are grouped by network prefix (IPv4 /24, IPv6 /64 by default:
settings ipv4-prefix, ipv6-prefix), since whoever has one address of a
prefix usually has them all. `Clients` counts the open connections of each
address and each prefix and refuses one over either cap (503 with
Retry-After): one prefix never holds more than max-prefix-share of
max-connections, so the others always find room. A trusted proxy's
connections are not counted: they are everyone's (the proxy limits its
clients itself, e.g. nginx's ``limit_conn``).

    >>> proxies = TrustedProxies('127.0.0.1, 10.0.0.0/8')
    >>> '10.1.2.3' in proxies, '192.0.2.1' in proxies
    (True, False)
    >>> proxies.client(('10.1.2.3', 5000), [
    ...     (b'x-forwarded-for', b'198.51.100.7, 10.0.0.5'),
    ...     (b'x-forwarded-proto', b'https')], 'http')
    ('198.51.100.7', 'https')
    >>> proxies.client(('192.0.2.1', 5000), [
    ...     (b'x-forwarded-for', b'198.51.100.7'),
    ...     (b'x-forwarded-proto', b'https')], 'http')
    ('192.0.2.1', 'http')

    >>> clients = Clients(perAddress=2, perPrefix=3, v4=24, v6=64,
    ...                   proxies=proxies)
    >>> [clients.admit(n, '192.0.2.%d' % (n // 2)) for n in range(3)]
    [None, None, None]
    >>> clients.admit(3, '192.0.2.0')
    'address'
    >>> clients.admit(4, '192.0.2.9')
    'prefix'
    >>> clients.admit(6, '198.51.100.1'), clients.admit(7, '127.0.0.1')
    (None, None)
    >>> clients.release(0); clients.admit(8, '192.0.2.9')
"""

import ipaddress
import os

from zorg.live.page.strangers import prefixOf

FORWARDED_ALLOW_IPS = '127.0.0.1'


def trustedProxySpec():
    """The trusted proxies' addresses, as uvicorn reads them."""
    return os.environ.get('FORWARDED_ALLOW_IPS', FORWARDED_ALLOW_IPS)


class TrustedProxies:
    """The addresses (and networks) whose X-Forwarded-* are believed."""

    def __init__(self, spec):
        hosts = [h.strip() for h in spec.split(',') if h.strip()]
        self.everyone = '*' in hosts
        self.literals = set()
        self.networks = []
        for host in hosts:
            try:
                self.networks.append(ipaddress.ip_network(host,
                                                          strict=False))
            except ValueError:
                self.literals.add(host)
        self.cache = {}

    def __contains__(self, host):
        if self.everyone:
            return True
        if not host:
            return False
        found = self.cache.get(host)
        if found is None:
            try:
                ip = ipaddress.ip_address(host)
                found = any(ip in net for net in self.networks)
            except ValueError:
                found = host in self.literals
            if len(self.cache) < 4096:
                self.cache[host] = found
        return found

    def client(self, peer, headers, scheme):
        """``(client address, scheme)`` of a request from `peer` (host,
        port) with ASGI `headers`, served over `scheme`."""
        host = peer[0] if peer else None
        if host not in self:
            return host, scheme
        forwarded = []
        proto = None
        for name, value in headers:
            if name == b'x-forwarded-for':
                forwarded.append(value.decode('latin-1'))
            elif name == b'x-forwarded-proto':
                proto = value.decode('latin-1').strip().lower()
        if proto in ('http', 'https'):
            scheme = proto
        hosts = [h.strip() for h in ','.join(forwarded).split(',')
                 if h.strip()]
        for address in reversed(hosts):
            if address not in self:
                return address, scheme
        return (hosts[0] if hosts else host), scheme


class Clients:
    """Open connections per client address and per prefix, and their
    caps. `admit(key, address)` is None (admitted, counted under `key`)
    or why not ('address', 'prefix'); `release(key)` forgets it."""

    def __init__(self, perAddress, perPrefix, v4, v6, proxies):
        self.perAddress, self.perPrefix = perAddress, perPrefix
        self.v4, self.v6 = v4, v6
        self.proxies = proxies
        self.byAddress = {}
        self.byPrefix = {}
        self.held = {}        # key -> (address, prefix)

    @classmethod
    def fromSettings(cls, settings, proxies):
        perPrefix = max(1, int(settings.max_connections *
                               settings.max_prefix_share))
        return cls(min(settings.max_connections_per_address, perPrefix),
                   perPrefix, settings.ipv4_prefix, settings.ipv6_prefix,
                   proxies)

    def admit(self, key, address):
        if address is None or address in self.proxies:
            return None
        prefix = prefixOf(address, self.v4, self.v6)
        if self.byAddress.get(address, 0) >= self.perAddress:
            return 'address'
        if self.byPrefix.get(prefix, 0) >= self.perPrefix:
            return 'prefix'
        self.byAddress[address] = self.byAddress.get(address, 0) + 1
        self.byPrefix[prefix] = self.byPrefix.get(prefix, 0) + 1
        self.held[key] = (address, prefix)
        return None

    def release(self, key):
        held = self.held.pop(key, None)
        if held is None:
            return
        for table, name in zip((self.byAddress, self.byPrefix), held):
            left = table[name] - 1
            if left:
                table[name] = left
            else:
                del table[name]
