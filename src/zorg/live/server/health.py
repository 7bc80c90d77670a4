"""``@@live-health``: is delivery working here? For load balancers and
reverse proxies' health checks.

    GET /@@live-health  ->  200 {"status": "ok", "broker": "redis",
                                 "connected": true, "pages": 12,
                                 "waiting": 9}
                            503 {"status": "unavailable", ...} while the
                                 broker cannot be reached

LiveServerHTTP answers it in the event loop (no worker thread, so it
answers while the threads are busy); WSGI-HTTP through the Zope view
`HealthView` (registered in configure.zcml for every object). It is public
(health checks do not log in), so it says nothing about where the broker
is or why it failed: the server log does.
"""

import json

import zope.component

from zorg.live.interfaces import ILivePageManager

HEADERS = [(b'content-type', b'application/json'),
           (b'cache-control', b'no-cache, no-store')]


def report(manager):
    """``(HTTP status, JSON-able dict)`` for `manager`'s process."""
    broker = manager.broker
    health = getattr(broker, 'health', None)
    # A broker without health() has never said it can fail.
    state = health() if health is not None else {
        'kind': type(broker).__name__, 'connected': True}
    connected = bool(state.get('connected'))
    body = {'status': 'ok' if connected else 'unavailable',
            'broker': state.get('kind'), 'connected': connected,
            'pages': len(manager), 'waiting': manager.waiting}
    return (200 if connected else 503), body


async def respond(manager, scope, send):
    """Answer an ASGI request for @@live-health."""
    if scope['method'] not in ('GET', 'HEAD'):
        status, body = 405, {'error': 'bad-request',
                             'message': 'use GET for @@live-health'}
        extra = [(b'allow', b'GET, HEAD')]
    else:
        (status, body), extra = report(manager), []
    data = json.dumps(body).encode()
    headers = HEADERS + [(b'content-length', b'%d' % len(data))] + extra
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body',
                'body': b'' if scope['method'] == 'HEAD' else data})


class HealthView:
    """The same answer as a Zope browser view (WSGI-HTTP)."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        status, body = report(zope.component.getUtility(ILivePageManager))
        response = self.request.response
        response.setStatus(status)
        response.setHeader('Content-Type', 'application/json')
        response.setHeader('Cache-Control', 'no-cache, no-store')
        return json.dumps(body)
