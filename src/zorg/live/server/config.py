"""zope.conf for zorg.live: zope.app.appsetup's schema plus <server>
sections (the Zope 3 way) and a <zorg-live> section of settings.

    <server>
      type LiveServerHTTP
      address 8088
    </server>
"""

import io
import os

import ZConfig
import zope.component
import zope.app.wsgi

from zorg.live.interfaces import ILivePageManager, IServerType
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


def loadOptions(configfile):
    if not os.path.exists(configfile):
        raise ConfigError('%s does not exist; give the path of your '
                          'zope.conf (see etc/zope.conf)' % configfile)
    try:
        options, _handlers = ZConfig.loadConfig(schema(), configfile)
    except ZConfig.ConfigurationError as e:
        raise ConfigError('%s: %s' % (configfile, e))
    if not options.servers:
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
                               presenceTimeout=settings.presence_timeout)
        except (BrokerUnavailable, ValueError) as e:
            # The message names the URL (without its password).
            raise ConfigError('broker: %s' % e)
    raise ConfigError('unknown broker %r: use memory:// or '
                      'redis://host:port/db' % url)


def createServers(configfile):
    """Load zope.conf, open the database and the site, and create (bind)
    every configured server. Returns (servers, settings)."""
    options = loadOptions(configfile)
    settings = settingsFrom(options)
    application = zope.app.wsgi.getWSGIApplication(
        configfile, schemafile=io.StringIO(
            SCHEMA % settings.schemaKeys()))
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
        servers.append(factory(section.getSectionName() or section.type,
                               application, host, port, settings))
    return servers, settings
