"""Answering an ASGI request with JSON, in the loop (the bytes and headers
come from core/wire.py)."""

from zorg.live.core import wire
from zorg.live.interfaces import TooLarge


async def respond(send, status, body, extra=()):
    if isinstance(body, str):
        body = body.encode('utf-8')
    await send({'type': 'http.response.start', 'status': status,
                'headers': wire.jsonHeaders(len(body), extra)})
    await send({'type': 'http.response.body', 'body': body})


async def respondError(send, error, extra=()):
    await respond(send, error.status, wire.errorBody(error), extra)


def tooLarge(limit):
    return TooLarge('the request body is larger than the limit of %d bytes '
                    '(setting max-body-size)' % limit)
