"""Upload progress: a request whose ``X-Live-Progress: <page id> <element
id>`` header names an open page gets ``progress`` events published to that
page while its body arrives.

The bytes are counted in the event loop as they come off the socket, and
the body still streams on to the Zope publisher in a worker thread, so the
page's progress bar moves while the upload is being received and handled.
The publishes go through the app's broker executor (`LiveApp.io`): a slow
broker slows the progress events, never the loop; a failing one ends them
(the upload itself goes on).
"""

import logging

from zorg.live.interfaces import LiveError
from zorg.live.page.event import Progress

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
    try:
        await app.step(manager.getClient, uuid)
    except LiveError:
        return receive
    target = target.strip()
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
