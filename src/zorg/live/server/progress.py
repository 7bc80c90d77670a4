"""Upload progress: a request whose ``X-Live-Progress: <page id> <element
id>`` header names an open page gets ``progress`` events published to that
page while its body arrives.

Only the page's own user may write into it, and only where the page lets
progress be shown: the header is honoured when the request authenticates
(its credentials, checked by the site's global IAuthentication utility --
HTTP basic auth with the principals of ZCML -- off the loop) as the page's
principal, never anonymously, and when the element id is one of the
page's ``progressTargets``. Otherwise it is ignored and the request goes
on as any other.

The bytes are counted in the event loop as they come off the socket, and
the body still streams on to the Zope publisher in a worker thread, so the
page's progress bar moves while the upload is being received and handled.
The publishes go through the app's broker executor (`LiveApp.io`): a slow
broker slows the progress events, never the loop; a failing one ends them
(the upload itself goes on).
"""

import logging

import io

import zope.component
from zope.authentication.interfaces import (
    IAuthentication, IUnauthenticatedPrincipal)
from zope.publisher.browser import BrowserRequest

from zorg.live.interfaces import LiveError
from zorg.live.core.events import Progress

log = logging.getLogger('zorg.live.server')

HEADER = b'x-live-progress'
STEP = 0.02   # publish at most every 2%: 50 events for any size


async def progressReceive(receive, app, headers):
    """`receive` wrapped to publish progress, or `receive` itself when the
    request asks for none (or names no known page). `app` is the LiveApp
    (its manager, and `step` and `io` to reach the broker)."""
    value = total = None
    for name, data in headers:
        if name == HEADER:
            value = data.decode('latin-1')
        elif name == b'content-length' and data.isdigit():
            total = int(data)
    if not value or not total:
        return receive
    uuid, _sep, target = value.strip().partition(' ')
    if not target.strip():
        return receive
    manager = app.manager
    target = target.strip()
    try:
        client = await app.step(manager.getClient, uuid)
    except LiveError:
        return receive
    if (client.anonymous
            or target not in getattr(client, 'progressTargets', ())
            or await app.io(principalOf, headers) != client.principal):
        return receive
    state = {'received': 0, 'published': 0.0, 'failed': False}

    async def counting():
        message = await receive()
        if message['type'] == 'http.request' and not state['failed']:
            state['received'] += len(message.get('body', b''))
            done = min(1.0, state['received'] / total)
            if done - state['published'] >= STEP or (
                    done == 1.0 and state['published'] < 1.0):
                state['published'] = done
                try:
                    await app.io(manager.publishToClient, Progress(
                        target, done, '%d of %d KB received'
                        % (state['received'] // 1024, total // 1024)), uuid)
                except LiveError as e:
                    state['failed'] = True
                    log.warning('no more upload progress: %s', e)
        return message
    return counting


def principalOf(headers):
    """The id of the principal that the request's credentials (its
    headers) authenticate with the global IAuthentication, or None."""
    environ = {'REQUEST_METHOD': 'POST', 'SERVER_NAME': 'localhost',
               'SERVER_PORT': '80'}
    for name, value in headers:
        key = name.decode('latin-1').upper().replace('-', '_')
        if key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            continue
        environ['HTTP_' + key] = value.decode('latin-1')
    auth = zope.component.queryUtility(IAuthentication)
    if auth is None:
        return None
    try:
        principal = auth.authenticate(BrowserRequest(io.BytesIO(), environ))
    except Exception:
        log.warning('upload progress: authenticating the request failed',
                    exc_info=True)
        return None
    if principal is None or IUnauthenticatedPrincipal.providedBy(principal):
        return None
    return principal.id
