"""Broker URLs of Redis, and the redis-py clients they make.

Three forms, all of redis-py's world:

* ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS): one
  redis-server, made by redis-py's own ``Redis.from_url``;
* ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service/db``
  (the form of the redis-sentinel-url convention): Redis Sentinel. The
  hosts are sentinels; `service` is the name they monitor
  (``sentinel monitor <service> ...``); db defaults to 0. The client is
  redis-py's ``Sentinel(...).master_for(service)``: every new connection
  asks the sentinels where the master is now, and a connection to a
  master that was demoted (a failover) fails with ConnectionError, so
  the broker's usual reconnection follows the promoted replica. The
  password is the master's (and its replicas'); the sentinels are asked
  without one, unless ``?sentinel_password=...`` gives theirs.

* ``redis+cluster://[[user]:password@]host:port[,host:port...]``: Redis
  Cluster. The hosts are some of its nodes (any one that answers tells
  the client the others); a cluster has only database 0, so the path is
  empty (or ``/0``). The broker is rediscluster.ClusterBroker.

    >>> parse('redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2/live/3')
    ... # doctest: +NORMALIZE_WHITESPACE
    SentinelURL(sentinels=[('10.0.0.1', 26379), ('10.0.0.2', 26379)],
                service='live', db=3, username=None, password='secret',
                sentinel_password=None)
    >>> redactURL('redis+sentinel://:secret@10.0.0.1:26379,h2:1/live')
    'redis+sentinel://:***@10.0.0.1:26379,h2:1/live'
    >>> parse('redis+sentinel://h1:26379')
    Traceback (most recent call last):
    ValueError: a Sentinel broker URL names the monitored service: redis+sentinel://host:port[,host:port...]/service/db
    >>> parseCluster('redis+cluster://u:pw@10.0.0.1:7000,[::1]:7001/')
    ... # doctest: +NORMALIZE_WHITESPACE
    ClusterURL(nodes=[('10.0.0.1', 7000), ('::1', 7001)], username='u',
               password='pw')
    >>> parseCluster('redis+cluster://h1:7000/3')
    Traceback (most recent call last):
    ValueError: a Redis Cluster has only database 0: redis+cluster://host:port[,host:port...]
"""

import collections
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis
from redis.sentinel import Sentinel

SENTINEL = 'redis+sentinel'
SENTINEL_PORT = 26379
FORM = 'redis+sentinel://host:port[,host:port...]/service/db'
CLUSTER = 'redis+cluster'
CLUSTER_FORM = 'redis+cluster://host:port[,host:port...]'
REDIS_PORT = 6379

SentinelURL = collections.namedtuple(
    'SentinelURL',
    'sentinels service db username password sentinel_password')
ClusterURL = collections.namedtuple('ClusterURL', 'nodes username password')


def isRedis(url):
    """Whether `url` names a Redis broker (any form of this module)."""
    return url.split(':', 1)[0] in ('redis', 'rediss', SENTINEL, CLUSTER)


def redactURL(url):
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition('@')
    if not at or ':' not in userinfo:
        return url
    netloc = '%s:***@%s' % (userinfo.split(':', 1)[0], hosts)
    return urlunsplit(parts._replace(netloc=netloc))


def _hosts(netloc, defaultPort, what, form):
    """(username, password, [(host, port), ...]) of a URL's netloc that
    lists several hosts."""
    userinfo, at, hosts = netloc.rpartition('@')
    username = password = None
    if at:
        username, _, password = userinfo.partition(':')
        username, password = unquote(username) or None, unquote(password)
    found = []
    for hostport in hosts.split(','):
        # host, host:port, [v6 address] or [v6 address]:port
        host, port = hostport, ''
        if hostport.startswith('['):
            host, _, port = hostport[1:].partition(']')
            port = port[1:]
        elif ':' in hostport:
            host, _, port = hostport.partition(':')
        if not host or not (port.isdigit() or port == ''):
            raise ValueError('a %s broker URL lists its %s as host:port, '
                             'separated by commas: %s' % (what[0], what[1],
                                                          form))
        found.append((host, int(port) if port else defaultPort))
    return username, password, found


def parse(url):
    """A SentinelURL from a ``redis+sentinel://`` URL (ValueError saying
    what is wrong otherwise)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL:
        raise ValueError('not a Sentinel URL: %s' % FORM)
    username, password, sentinels = _hosts(
        parts.netloc, SENTINEL_PORT, ('Sentinel', 'sentinels'), FORM)
    path = [p for p in parts.path.split('/') if p]
    if not path:
        raise ValueError('a Sentinel broker URL names the monitored '
                         'service: %s' % FORM)
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError('after the hosts a Sentinel broker URL has '
                         '/service/db: %s' % FORM)
    query = parse_qs(parts.query)
    return SentinelURL(
        sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
        username, password, query.get('sentinel_password', [None])[0])


def parseCluster(url):
    """A ClusterURL from a ``redis+cluster://`` URL (ValueError saying
    what is wrong otherwise)."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER:
        raise ValueError('not a Redis Cluster URL: %s' % CLUSTER_FORM)
    username, password, nodes = _hosts(
        parts.netloc, REDIS_PORT, ('Redis Cluster', 'nodes'), CLUSTER_FORM)
    if parts.path.strip('/') not in ('', '0'):
        raise ValueError('a Redis Cluster has only database 0: %s'
                         % CLUSTER_FORM)
    if parts.query:
        raise ValueError('a Redis Cluster broker URL takes no options: %s'
                         % CLUSTER_FORM)
    return ClusterURL(nodes, username, password or None)


def client(url, **options):
    """A redis-py client for `url`; `options` are the connection's
    (socket_timeout, retry, decode_responses...)."""
    if not url.startswith(SENTINEL + ':'):
        return redis.Redis.from_url(url, **options)
    where = parse(url)
    options.pop('single_connection_client', None)
    sentinel = Sentinel(
        where.sentinels,
        sentinel_kwargs={'socket_timeout': options.get(
            'socket_connect_timeout', 2),
            'password': where.sentinel_password},
        **options)
    return sentinel.master_for(where.service, db=where.db,
                               username=where.username,
                               password=where.password or None)
