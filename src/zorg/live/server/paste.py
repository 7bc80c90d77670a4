"""PasteDeploy entry points, for ini-based deployments::

    [app:main]
    use = egg:zorg.live#main
    config = %(here)s/zope.conf

    [server:main]
    use = egg:zorg.live#main
    type = LiveServerHTTP
    host = 127.0.0.1
    port = 8080
    threads = 4
    refresh-interval = 25
    broker = memory://

Every zorg.live setting (see zorg.live.server.settings) may be given in the
server section; zope.conf's <server> sections are not used here.
``zorg-live serve site.ini`` runs such a file.
"""

import zope.component

from zorg.live.interfaces import ILivePageManager, IServerType
from zorg.live.server import config as _config
from zorg.live.server.runner import raiseFileLimit, runLoop, serveAll
from zorg.live.server.settings import Settings


def app_factory(global_conf, config, **local_conf):
    """The Zope publisher of the site that zope.conf describes (with
    ``$here`` and its folder on the import path, as ``zorg-live serve``)."""
    return _config.openApplication(config)


def serve(app, global_conf, host='127.0.0.1', port='8080',
          type='LiveServerHTTP', **local_conf):
    """Serve `app` with a zorg.live server type until SIGINT/SIGTERM."""
    settings = Settings.fromEnviron(**local_conf)
    settings.applyToPages()
    manager = zope.component.getUtility(ILivePageManager)
    manager.broker = _config.makeBroker(settings.broker, settings)
    factory = zope.component.queryUtility(IServerType, type)
    if factory is None:
        raise _config.ConfigError(
            'unknown server type %r: use LiveServerHTTP or WSGI-HTTP, and '
            'include zorg.live in site.zcml' % type)
    raiseFileLimit()
    try:
        server = _config.bindServer(factory, 'main', app, host, int(port),
                                    settings, 'the ini file\'s [server:main]')
        runLoop(serveAll([server]))
    finally:
        _config.closeDatabases()   # the FileStorage saves its index
