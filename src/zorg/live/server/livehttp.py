"""The LiveServerHTTP server type: LiveApp on zorg.live's own protocol.

The connection is server/liveproto.py's (httptools for HTTP, websockets'
sans-I/O ServerProtocol for the WebSocket), started and drained by
server/liveserve.py. Every request runs as an ASGI cycle of LiveApp: the
live paths in the loop, the rest in the site's worker threads (a2wsgi).
"""

import logging

from zope.interface import implementer, provider

from zorg.live.interfaces import IServer, IServerType
from zorg.live.server import listening
from zorg.live.server.asgi import LiveApp
from zorg.live.server.liveserve import Listener

log = logging.getLogger('zorg.live.server')


@implementer(IServer)
class LiveServer:
    """One LiveServerHTTP listening socket with its LiveApp."""

    typeName = 'LiveServerHTTP'

    def __init__(self, name, application, host, port, settings):
        self.name = name
        self.settings = settings
        self.app = LiveApp(application, settings)
        self.socket = listening.bind(host or '0.0.0.0', port)
        self.host, self.port = self.socket.getsockname()[:2]
        self.listener = Listener(self.app, settings, self.socket)

    async def serve(self):
        log.warning('%s %s listening on http://%s:%d', self.typeName,
                    self.name, self.host, self.port)
        await self.listener.serve()

    def stop(self):
        self.listener.stop()


@provider(IServerType)
def liveServerType(name, application, host, port, settings):
    """LiveServerHTTP: waits in the event loop, pages in worker threads."""
    return LiveServer(name, application, host, port, settings)
