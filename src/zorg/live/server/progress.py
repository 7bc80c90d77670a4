"""Upload progress: a request whose ``X-Live-Progress: <page id> <element
id>`` header names an open page gets ``progress`` events published to that
page while its body arrives.

The bytes are counted in the event loop as they come off the socket, and
the body still streams on to the Zope publisher in a worker thread, so the
page's progress bar moves while the upload is being received and handled.
"""

from zorg.live.page.event import Progress

HEADER = b'x-live-progress'
STEP = 0.02   # publish at most every 2%: 50 events for any size


def progressReceive(receive, manager, headers):
    """`receive` wrapped to publish progress, or `receive` itself when the
    request asks for none (or names no known page)."""
    value = total = None
    for name, data in headers:
        if name == HEADER:
            value = data.decode('latin-1')
        elif name == b'content-length' and data.isdigit():
            total = int(data)
    if not value or not total:
        return receive
    uuid, _sep, target = value.strip().partition(' ')
    if manager.queryClient(uuid) is None or not target.strip():
        return receive
    target = target.strip()
    state = {'received': 0, 'published': 0.0}

    async def counting():
        message = await receive()
        if message['type'] == 'http.request':
            state['received'] += len(message.get('body', b''))
            done = min(1.0, state['received'] / total)
            if done - state['published'] >= STEP or (
                    done == 1.0 and state['published'] < 1.0):
                state['published'] = done
                manager.publishToClient(Progress(
                    target, done, '%d of %d KB received'
                    % (state['received'] // 1024, total // 1024)), uuid)
        return message
    return counting
