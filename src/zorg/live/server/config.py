"""zope.conf for zorg.live: zope.app.appsetup's schema plus <server>
sections (the Zope 3 way) and a <zorg-live> section of settings.

    <server>
      type LiveServerHTTP
      address 8088
    </server>
"""

import errno
import io
import logging
import os
import re
import sys

import ZConfig
import ZConfig.loader
import zope.app.appsetup.appsetup
import zope.app.appsetup.product
import zope.app.wsgi
import zope.app.wsgi.interfaces
import zope.component
import zope.configuration.exceptions
import zope.processlifetime
from zope.event import notify

from zorg.live.interfaces import ILivePageManager, IServerType
from zorg.live.server.checkerleak import plugCheckerLeak
from zorg.live.server.settings import Settings, attribute, TABLE

SCHEMA = """\
<schema extends="package:zope.app.appsetup:schema/schema.xml">
  %(imports)s
  <sectiontype name="server">
    <description>One listening server; type names an IServerType
    utility: LiveServerHTTP or WSGI-HTTP.</description>
    <key name="type" required="yes" />
    <key name="address" datatype="inet-binding-address" required="yes" />
    <key name="workers" datatype="integer" required="no">
      <description>Processes serving this address (and every other
      server of zope.conf): a supervising parent binds the sockets once
      and runs this many workers on them (workers.py).</description>
    </key>
  </sectiontype>
  <multisection type="server" name="*" attribute="servers" />
  <key name="threads" datatype="integer" required="no">
    <description>Worker threads of the Zope publisher.</description>
  </key>
  <sectiontype name="zorg-live">
    %(settings)s
  </sectiontype>
  <section type="zorg-live" name="*" attribute="live" required="no" />
</schema>
"""


class ConfigError(Exception):
    """zope.conf cannot be used; the message says why and what to do."""


# Storages of packages that are extras of zorg.live: their ZConfig
# components are imported into the schema when the package is installed,
# so zope.conf can use <relstorage> without `%import relstorage`.
# (<zeoclient> is ZODB's own section type; it imports ZEO when it opens.)
STORAGE_PACKAGES = {'relstorage': 'relstorage'}


def installed(package):
    import importlib.util
    return importlib.util.find_spec(package) is not None


def schema():
    imports = ''.join('<import package="%s" />' % package
                      for package in STORAGE_PACKAGES.values()
                      if installed(package))
    return ZConfig.loadSchemaFile(io.StringIO(SCHEMA % {
        'imports': imports, 'settings': Settings().schemaKeys()}))


class HereLoader(ZConfig.loader.ConfigLoader):
    """ZConfig's loader with ``$here`` predefined as the absolute folder of
    zope.conf (like PasteDeploy's ``%(here)s``), so a site's zope.conf can
    name its files wherever it is started from::

        site-definition $here/site.zcml
    """

    def __init__(self, schema, here):
        super().__init__(schema)
        self.here = here

    def loadResource(self, resource):
        # ConfigLoader.loadResource with one initial define (ZConfig has no
        # public way to pass defines in; %include passes them on).
        matcher = self.createSchemaMatcher()
        self._parse_resource(matcher, resource, {'here': self.here})
        return (matcher.finish(),
                ZConfig.loader.CompositeHandler(matcher.handlers, self.schema))


# What zope.conf needs besides <server>, for the hints of ConfigError.
NEEDED = {
    'zodb.database': 'a <zodb> section, e.g.\n'
                     '  <zodb>\n    <filestorage>\n'
                     '      path $here/var/Data.fs\n'
                     '    </filestorage>\n  </zodb>',
    'eventlog': 'an <eventlog> section, e.g.\n'
                '  <eventlog>\n    <logfile>\n      path STDOUT\n'
                '    </logfile>\n  </eventlog>',
}


def loadOptions(configfile, needServers=True):
    if not os.path.exists(configfile):
        raise ConfigError('%s does not exist; give the path of your '
                          'zope.conf (`zorg-live new DIR` writes one)'
                          % configfile)
    here = os.path.dirname(os.path.abspath(configfile))
    try:
        options, _handlers = HereLoader(schema(), here).loadURL(configfile)
    except ZConfig.ConfigurationError as e:
        hints = [hint for section, hint in NEEDED.items()
                 if "section type '%s'" % section in str(e)]
        folder = re.search(r'The directory named as part of the path '
                           r'(.+?) does not exist', str(e))
        for section, package in STORAGE_PACKAGES.items():
            if "unknown type name: '%s'" % section in str(e):
                hints.append('%s (pip install "zorg.live[%s]")'
                             % (package, package))
        if folder:   # ZConfig's existing-dirpath (the FileStorage path)
            hints.append('the missing folder (mkdir -p %s) or change the '
                         'path' % os.path.dirname(folder.group(1)))
        raise ConfigError('%s: %s%s' % (
            configfile, e, ''.join('\nadd %s' % h for h in hints)))
    if needServers and not options.servers:
        raise ConfigError('%s has no <server> section; add one, e.g.\n'
                          '  <server>\n    type LiveServerHTTP\n'
                          '    address 8080\n  </server>' % configfile)
    return options


# Storages that several processes can open at once.
SHARED_STORAGES = ('zeoclient', 'clientstorage', 'relstorage')
SHARED_HINT = ('several processes share a site through ZEO (<zeoclient>, '
               'pip install "zorg.live[zeo]") or RelStorage (<relstorage>, '
               'pip install "zorg.live[relstorage]"); see "Running in '
               'production" in README.txt')


def unsharedStorages(options):
    """The section types of the storages of zope.conf that only one
    process can open (a <filestorage> locks its file)."""
    found = []
    for database in options.databases:
        storage = database.config.storage
        kind = storage.config.getSectionType()
        if kind not in SHARED_STORAGES:
            found.append(kind)
    return found


def workersOf(options, configfile):
    """The number of processes that the <server> sections ask for."""
    given = {section.workers for section in options.servers
             if section.workers is not None}
    if len(given) > 1:
        raise ConfigError('%s: the <server> sections ask for different '
                          'numbers of workers (%s); every worker serves '
                          'every server, so give one number'
                          % (configfile, ', '.join(map(str, sorted(given)))))
    workers = given.pop() if given else 1
    if workers < 1:
        raise ConfigError('%s: workers must be at least 1' % configfile)
    return workers


def checkWorkers(options, workers, configfile):
    """Several workers need a database and a broker that they can share."""
    if workers < 2:
        return
    unshared = unsharedStorages(options)
    if unshared:
        raise ConfigError(
            '%s: %d workers cannot share a <%s>, which one process locks: '
            '%s' % (configfile, workers, unshared[0], SHARED_HINT))
    from zorg.live.broker.redisurl import isRedis
    broker = settingsFrom(options).broker
    if not isRedis(broker):
        raise ConfigError(
            '%s: %d workers need the Redis broker, which their pages move '
            'through (broker %s keeps each worker\'s pages to itself): set '
            'broker redis://host:port/db in <zorg-live>'
            % (configfile, workers, broker))


def settingsFrom(options):
    settings = Settings.fromEnviron()
    if options.live is not None:
        settings.update({name: getattr(options.live, attribute(name), None)
                         for name, *_ in TABLE})
    if options.threads is not None:
        settings.update({'threads': options.threads})
    return settings


def defaultSecretFile(options):
    """Where the connection ticket secret is kept unless a setting says:
    beside the site's data (the folder of its first <filestorage>), or ''
    (a secret of each process) when the site has none."""
    from zorg.live.server.tickets import SECRET_FILE
    for database in options.databases:
        storage = database.config.storage
        if storage.config.getSectionType() == 'filestorage':
            return os.path.join(os.path.dirname(os.path.abspath(
                storage.config.path)), SECRET_FILE)
    return ''


def makeBroker(url, settings):
    if url.startswith('memory:'):
        from zorg.live.broker.memory import MemoryBroker
        return MemoryBroker(historySize=settings.history_size,
                            maxIdleGroups=settings.max_idle_groups)
    from zorg.live.broker.redisurl import isRedis
    if isRedis(url):
        from zorg.live.broker.rediscluster import makeRedisBroker
        from zorg.live.interfaces import BrokerUnavailable
        try:
            return makeRedisBroker(url, historySize=settings.history_size,
                               presenceTimeout=settings.presence_timeout,
                               timeout=settings.broker_timeout,
                               commitTimeout=settings.commit_timeout,
                               replicas=settings.broker_replicas)
        except (BrokerUnavailable, ValueError) as e:
            # The message names the URL (without its password).
            raise ConfigError('broker: %s' % e)
    raise ConfigError('unknown broker %r: use memory://, '
                      'redis://host:port/db, redis+sentinel://host:port'
                      '[,host:port...]/service/db or redis+cluster://'
                      'host:port[,host:port...]' % url)


def addImportPath(configfile):
    """The folder of zope.conf goes first on the import path, so the
    site's own modules next to it (``class=".poll.PollPage"`` in its
    site.zcml) are found without PYTHONPATH."""
    here = os.path.dirname(os.path.abspath(configfile))
    if here not in sys.path:
        sys.path.insert(0, here)


def executeZCML(path, features=()):
    if not os.path.exists(path):
        raise ConfigError(
            'site-definition %s does not exist: write it, or name your '
            'site.zcml in zope.conf (site-definition $here/site.zcml)'
            % path)
    try:
        zope.app.appsetup.appsetup.config(path, features=features)
    except zope.configuration.exceptions.ConfigurationError as e:
        raise ConfigError('%s cannot be executed: %s' % (path, e))


def openDatabase(options):
    import zc.lockfile
    try:
        return zope.app.appsetup.appsetup.multi_database(
            options.databases)[0][0]
    except zc.lockfile.LockError as e:
        raise ConfigError('the database is in use by another process (%s): '
                          'is the site running already? Stop it; a '
                          '<filestorage> serves one process only: %s'
                          % (e, SHARED_HINT))
    except ImportError as e:   # <zeoclient> without ZEO
        raise ConfigError('the database cannot be opened: %s (pip install '
                          '"zorg.live[zeo]" for <zeoclient>)' % e)
    except OSError as e:
        raise ConfigError('the database cannot be opened: %s' % e)


def openApplication(configfile, options=None):
    """zope.app.wsgi.getWSGIApplication for zope.conf, with ``$here``,
    the import path of addImportPath, and a ConfigError saying what to do
    instead of a traceback or sys.exit."""
    if options is None:   # PasteDeploy: the servers are the ini file's
        options = loadOptions(configfile, needServers=False)
    addImportPath(configfile)
    if options.path:
        sys.path[:0] = [os.path.abspath(p) for p in options.path]
    zope.app.appsetup.product.setProductConfigurations(
        options.product_config)
    options.eventlog()
    for logger in options.loggers:
        logger()
    features = ()
    if options.devmode:
        features += ('devmode',)
        logging.warning('Developer mode is enabled: do not use it on '
                        'production servers (devmode off in zope.conf).')
    executeZCML(options.site_definition, features)
    plugCheckerLeak()
    db = openDatabase(options)
    notify(zope.processlifetime.DatabaseOpened(db))
    application = zope.app.wsgi.WSGIPublisherApplication(db)
    notify(zope.app.wsgi.interfaces.WSGIPublisherApplicationCreated(
        application))
    return application


def closeDatabases():
    """Close every database of the site (a FileStorage writes its index,
    so the next start has nothing to rebuild)."""
    from ZODB.interfaces import IDatabase
    for _name, db in list(zope.component.getUtilitiesFor(IDatabase)):
        db.close()


def bindServer(factory, name, application, host, port, settings, where):
    try:
        return factory(name, application, host, port, settings)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError('%s:%d is in use: choose another address in '
                              '%s' % (host or '0.0.0.0', port, where))
        if e.errno in (errno.EACCES, errno.EADDRNOTAVAIL):
            raise ConfigError('%s:%d cannot be used (%s): choose another '
                              'address in %s'
                              % (host or '0.0.0.0', port, e.strerror, where))
        raise


def overridePort(options, port):
    """--port: the first <server> listens on `port` (same host)."""
    if port is not None:
        section = options.servers[0]
        section.address = (section.address[0], port)


def createServers(configfile, options=None):
    """Load zope.conf (unless given its `options`), open the database and
    the site, and create (bind) every configured server. Returns
    (servers, settings)."""
    if options is None:
        options = loadOptions(configfile)
    settings = settingsFrom(options)
    if not settings.ticket_secret and not settings.ticket_secret_file:
        settings.ticket_secret_file = defaultSecretFile(options)
    application = openApplication(configfile, options)
    settings.applyToPages()
    manager = zope.component.getUtility(ILivePageManager)
    manager.broker = makeBroker(settings.broker, settings)
    servers = []
    for section in options.servers:
        factory = zope.component.queryUtility(IServerType, section.type)
        if factory is None:
            known = sorted(name for name, _ in
                           zope.component.getUtilitiesFor(IServerType))
            raise ConfigError('unknown server type %r; known types: %s '
                              '(is zorg.live included in site.zcml?)'
                              % (section.type, ', '.join(known)))
        host, port = section.address
        servers.append(bindServer(
            factory, section.getSectionName() or section.type, application,
            host, port, settings, os.path.basename(configfile)))
    return servers, settings
