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
  <sectiontype name="server">
    <description>One listening server; type names an IServerType
    utility: LiveServerHTTP or WSGI-HTTP.</description>
    <key name="type" required="yes" />
    <key name="address" datatype="inet-binding-address" required="yes" />
  </sectiontype>
  <multisection type="server" name="*" attribute="servers" />
  <key name="threads" datatype="integer" required="no">
    <description>Worker threads of the Zope publisher.</description>
  </key>
  <sectiontype name="zorg-live">
    %s
  </sectiontype>
  <section type="zorg-live" name="*" attribute="live" required="no" />
</schema>
"""


class ConfigError(Exception):
    """zope.conf cannot be used; the message says why and what to do."""


def schema():
    return ZConfig.loadSchemaFile(io.StringIO(SCHEMA % Settings().schemaKeys()))


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


def settingsFrom(options):
    settings = Settings.fromEnviron()
    if options.live is not None:
        settings.update({name: getattr(options.live, attribute(name), None)
                         for name, *_ in TABLE})
    if options.threads is not None:
        settings.update({'threads': options.threads})
    return settings


def makeBroker(url, settings):
    if url.startswith('memory:'):
        from zorg.live.broker.memory import MemoryBroker
        return MemoryBroker(historySize=settings.history_size,
                            maxIdleGroups=settings.max_idle_groups)
    if url.startswith('redis:') or url.startswith('rediss:'):
        from zorg.live.broker.redis import RedisBroker
        from zorg.live.interfaces import BrokerUnavailable
        try:
            return RedisBroker(url, historySize=settings.history_size,
                               presenceTimeout=settings.presence_timeout,
                               timeout=settings.broker_timeout)
        except (BrokerUnavailable, ValueError) as e:
            # The message names the URL (without its password).
            raise ConfigError('broker: %s' % e)
    raise ConfigError('unknown broker %r: use memory:// or '
                      'redis://host:port/db' % url)


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
                          'is the site running already? Stop it, or give '
                          'this one its own <zodb>' % e)
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


def createServers(configfile):
    """Load zope.conf, open the database and the site, and create (bind)
    every configured server. Returns (servers, settings)."""
    options = loadOptions(configfile)
    settings = settingsFrom(options)
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
