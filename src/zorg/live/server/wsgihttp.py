"""The WSGI-HTTP server type: waitress, the plain threaded server.

LivePages work through it, but each waiting page holds one of its threads
for up to refreshInterval (and SSE is not offered, so pages long-poll):
with ``threads 4`` four pages can wait at a time. It is here for sites that
cannot run LiveServerHTTP, and to show the difference.
"""

import asyncio
import logging

import zope.component
from waitress.server import create_server
from zope.interface import implementer, provider

from zorg.live.interfaces import ILivePageManager, IServer, IServerType
from zorg.live.page.guard import siteApplication
from zorg.live.server import listening
from zorg.live.server.clients import trustedProxySpec

log = logging.getLogger('zorg.live.server')


def waitressProxy(spec):
    """waitress trusts one proxy address (or '*'): FORWARDED_ALLOW_IPS
    when it names one, else none."""
    hosts = [h.strip() for h in spec.split(',') if h.strip()]
    if len(hosts) == 1 and '/' not in hosts[0]:
        return hosts[0]
    return None


@implementer(IServer)
class WSGIServer:
    typeName = 'WSGI-HTTP'

    def __init__(self, name, application, host, port, settings):
        self.name = name
        # Marked like LiveServerHTTP's requests (delivery.py, rule 10); the
        # pages learn that this server offers long-poll only.
        application = siteApplication(
            application, lambda: zope.component.getUtility(ILivePageManager),
            settings, transports=('longpoll',))
        host = host or '0.0.0.0'
        # A worker of a supervising parent serves the parent's socket.
        where = (dict(sockets=[listening.bind(host, port)])
                 if listening.inherited(host, port)
                 else dict(host=host, port=port))
        self.server = create_server(
            application, **where,
            threads=settings.threads,
            max_request_body_size=settings.max_body_size,
            max_request_header_size=settings.max_header_size,
            channel_timeout=max(120, int(settings.refresh_interval) * 2),
            connection_limit=settings.max_connections,
            # The scheme a trusted proxy says the browser used: origins
            # are compared with it (page/guard.py).
            trusted_proxy=waitressProxy(trustedProxySpec()),
            trusted_proxy_headers={'x-forwarded-proto'},
            clear_untrusted_proxy_headers=True)
        self.host, self.port = self.server.socket.getsockname()[:2]
        self._stopped = None

    async def serve(self):
        log.warning('%s %s listening on http://%s:%d', self.typeName,
                    self.name, self.host, self.port)
        loop = asyncio.get_running_loop()
        # waitress runs its own select loop; give it a thread of its own.
        await loop.run_in_executor(None, self._run)

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):
            pass  # its sockets were closed by stop()

    def stop(self):
        server = self.server
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown(timeout=5)


@provider(IServerType)
def wsgiServerType(name, application, host, port, settings):
    """WSGI-HTTP: waitress; every waiting page holds a worker thread."""
    return WSGIServer(name, application, host, port, settings)
