"""``@@live-health``: is delivery working here, end to end? For load
balancers and reverse proxies' health checks.

    GET /@@live-health  ->  200 {"status": "ok", "broker": "redis",
                                 "connected": true, "delivering": true,
                                 "pages": 12, "waiting": 9,
                                 "refused": {"socket-over-budget": 1}}
                            503 {"status": "unavailable", ...} while the
                                 broker cannot be reached or does not
                                 deliver

A connection that is up proves little: a Redis that is hung (SIGSTOP),
paused for writes, or losing what is published keeps its sockets open.
So the server *probes*: it publishes a small event to a group of its own
through the broker and waits for its own listener to hear it come back,
once a second (`Probe.interval`). Health is 200 only while the last probe
came back within `health-timeout` seconds and is recent. LiveServerHTTP
runs the probe in its event loop (the publish in its broker executor, so
a hung broker never blocks the loop) and answers from the probe's state;
WSGI-HTTP's view (`HealthView`) probes once per request, in its thread.

The endpoint is public (health checks do not log in), so it says nothing
about where the broker is or why it failed: the server log does.
"""

import asyncio
import json
import logging
import secrets

import zope.component

from zorg.live.interfaces import ILivePageManager
from zorg.live.core import wire
from zorg.live.core.events import Custom, encode


log = logging.getLogger('zorg.live.server')


class Probe:
    """The state of a process's end-to-end probe of its broker."""

    interval = 1.0     # seconds between probes

    def __init__(self, timeout):
        self.timeout = timeout
        # One group per process: a probe wakes only its own process.
        self.group = 'zorg.live:probe:%s' % secrets.token_hex(6)
        self.passedAt = None    # loop time of the last probe that came back
        self.error = None       # why the last one did not
        self.pending = None     # the publish of the probe under way
        self.sent = 0

    def send(self, broker):
        """Publish one probe (in a thread: it may wait on the broker)."""
        if self.sent == 0:
            broker.latest(self.group)    # watch the group (Redis reader)
        self.sent += 1
        return broker.publish(self.group, lambda event_id: encode(
            Custom('probe', self.sent), event_id), None)

    def passed(self, now):
        if self.error is not None:
            log.warning('the broker delivers again')
        self.passedAt, self.error = now, None

    def failed(self, now, error):
        if self.error is None:
            log.warning('the broker does not deliver: the probe did not '
                        'come back within %g s (%s)', self.timeout,
                        type(error).__name__ if not str(error) else error)
        self.error = str(error) or type(error).__name__

    def delivering(self, now):
        """True while the last probe came back recently enough."""
        if self.passedAt is None:
            # Starting: the first probe is under way.
            return self.error is None
        return (self.error is None
                and now - self.passedAt <= self.timeout + self.interval)


def report(manager, delivering=True):
    """``(HTTP status, JSON-able dict)`` for `manager`'s process."""
    broker = manager.broker
    health = getattr(broker, 'health', None)
    # A broker without health() has never said it can fail.
    state = health() if health is not None else {
        'kind': type(broker).__name__, 'connected': True}
    connected = bool(state.get('connected'))
    ok = connected and delivering
    body = {'status': 'ok' if ok else 'unavailable',
            'broker': state.get('kind'), 'connected': connected,
            'delivering': delivering,
            'pages': len(manager), 'waiting': manager.waiting}
    return (200 if ok else 503), body


async def respond(manager, scope, send, probe=None, shared=None,
                  counted=None, socketSteps=None):
    """Answer an ASGI request for @@live-health from `probe`'s state;
    `shared`: the numbers of open WebSockets and shared SSE streams;
    `counted`: connections slowed, closed or refused, by reason;
    `socketSteps`: WebSocket handshakes and attaches received, and how
    they were answered."""
    if scope['method'] not in ('GET', 'HEAD'):
        status, body = 405, {'error': 'bad-request',
                             'message': 'use GET for @@live-health'}
        extra = wire.ALLOW_GET
    else:
        delivering = (probe is None or
                      probe.delivering(asyncio.get_running_loop().time()))
        (status, body), extra = report(manager, delivering), []
        if shared is not None:
            body['websockets'], body['sharedStreams'] = shared
        if counted is not None:
            body['refused'] = counted
        if socketSteps is not None:
            body['websocket'] = socketSteps
    data = json.dumps(body).encode()
    headers = wire.jsonHeaders(len(data), extra)
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body',
                'body': b'' if scope['method'] == 'HEAD' else data})


def probeOnce(broker, probe):
    """One probe in this thread: publish, then wait until the broker's
    own wake-up path (waitFor) sees it. True when it came back in time."""
    try:
        after = broker.latest(probe.group)
        probe.send(broker)
        return bool(broker.waitFor(probe.group, after, probe.timeout))
    except Exception as e:
        log.warning('the health probe failed: %s', e)
        return False


_viewProbe = None


class HealthView:
    """The same answer as a Zope browser view (WSGI-HTTP), probing the
    broker once per request in the worker thread."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        global _viewProbe
        manager = zope.component.getUtility(ILivePageManager)
        if _viewProbe is None:
            from zorg.live.server.settings import Settings
            _viewProbe = Probe(Settings.fromEnviron().health_timeout)
        status, body = report(manager, probeOnce(manager.broker,
                                                 _viewProbe))
        response = self.request.response
        response.setStatus(status)
        wire.setHeaders(response, wire.JSON_HEAD)
        return json.dumps(body)
