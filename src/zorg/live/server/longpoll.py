"""The long-poll driver of LiveServerHTTP (``.../@@client/<uuid>/output``):
the core's long-poll loop (core/delivery.py's `holdOutput`, which the
threaded driver runs too) in the event loop: reads from memory or the
broker executor, waits on a future. A plain kept-alive poll served from
memory takes the fast path instead (server/polls.py: no task, no ASGI
cycle, one answer made for many pages); this path serves the rest."""

import re
from urllib.parse import parse_qs

from zorg.live.core import delivery as rules
from zorg.live.interfaces import LiveError
from zorg.live.server.answers import respond, respondError
from zorg.live.server.streams import sleep, watchDisconnect


# The query of nearly every output request; any other goes to parse_qs.
PLAIN_QUERY = re.compile(rb'outputNum=([0-9]{1,18})')


def outputQuery(query_string):
    """``(outputNum, lastEventId)`` of an output request's query, as
    given (the manager checks them)."""
    plain = PLAIN_QUERY.fullmatch(query_string)
    if plain is not None:
        return plain.group(1).decode('ascii'), None
    query = parse_qs(query_string.decode('latin-1'))
    return (query.get('outputNum', [''])[0],
            query.get('lastEventId', [None])[0])


async def output(app, scope, receive, send, uuid):
    num, last = outputQuery(scope['query_string'])
    try:
        client, num, body, generation = await app.step(
            app.manager.beginOutput, uuid, num, last)
        if body is None:
            body = await hold(app, scope, client, num, generation, receive)
    except LiveError as e:
        return await respondError(send, e)
    if body is not None:
        await respond(send, 200, body)
    # else the client went away; nothing was recorded


async def hold(app, scope, client, num, generation, receive):
    manager = app.manager
    uuid = client.uuid
    parked = app.park(uuid)
    watcher = watchDisconnect(app, scope, receive, parked)
    clock = app.loop.time
    loop = rules.holdOutput(client, generation,
                            clock() + client.refreshInterval, clock)
    manager.holdStarted(client)
    try:
        step = next(loop)
        while True:
            if step[0] == rules.READ:
                result = await app.step(manager.collect, client, step[1])
            else:
                result = await sleep(app, parked, client.group_id, step[2])
            step = loop.send(result)
    except StopIteration as stop:
        outcome, texts, end = stop.value
    finally:
        manager.holdEnded(client)
        if watcher is not None:
            watcher.cancel()
        app.unparkPage(uuid, parked)
    return manager.endOutput(client, num, generation, outcome, texts, end)
