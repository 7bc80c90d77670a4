"""Requests to the site made from the loop: the shared connections' input
and the question who a connection belongs to.

A request made here goes through everything a browser's request passes
(proxy headers, the cross-site guard, the mark) to the site's publisher in
a worker thread: `siteRequest` builds the ASGI request, and the site's
answer comes back whole.
"""

import json

from zorg.live.core import wire
from zorg.live.interfaces import LiveError

# The handshake's headers that input requests carry on (credentials, the
# origin already checked, the language, a trusted proxy's).
KEEP = frozenset([b'cookie', b'authorization', b'host', b'origin',
                  b'accept-language', b'user-agent', b'x-forwarded-for',
                  b'x-forwarded-proto', b'x-forwarded-host'])


async def siteRequest(app, method, path, headers, body=b'', client=None,
                      server=None, scheme='http', extra=None):
    """``(status, body)`` of a request to the site (`app` is the ASGI
    application of the site's WSGI side); `extra`: more scope keys."""
    scope = {'type': 'http', 'asgi': {'version': '3.0'},
             'http_version': '1.1', 'method': method, 'scheme': scheme,
             'path': path, 'raw_path': path.encode('utf-8'),
             'query_string': b'', 'root_path': '',
             'headers': list(headers) + [wire.contentLength(len(body))],
             'client': client, 'server': server}
    if extra:
        scope.update(extra)
    first = [{'type': 'http.request', 'body': body, 'more_body': False}]
    answer = {'status': 500, 'body': []}

    async def receive():
        if first:
            return first.pop()
        return {'type': 'http.disconnect'}

    async def send(message):
        if message['type'] == 'http.response.start':
            answer['status'] = message['status']
        elif message['type'] == 'http.response.body':
            answer['body'].append(message.get('body', b''))
    await app(scope, receive, send)
    return answer['status'], b''.join(answer['body'])


async def principalOf(app, path, headers, client=None, server=None,
                      scheme='http'):
    """``(principal, kept headers)``: whom the credentials in the request
    `headers` belong to, as the site's ``@@live`` view at `path` says
    (LiveError: the site's refusal, e.g. 401), and the headers that the
    connection's input requests carry on (KEEP)."""
    headers = [(name, value) for name, value in headers if name in KEEP]
    status, body = await siteRequest(app, 'GET', path, headers,
                                     client=client, server=server,
                                     scheme=scheme)
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status == 200 and isinstance(answer, dict) and isinstance(
            answer.get('principal'), str):
        return answer['principal'], headers
    error = LiveError(answer.get('message') if isinstance(answer, dict)
                      and answer.get('message') else
                      'the site did not say who you are (%d from %s): '
                      'is zorg.live configured for it?' % (status, path))
    error.status = status if status >= 400 else 500
    error.code = (answer.get('error') if isinstance(answer, dict)
                  and answer.get('error') else 'not-authenticated')
    raise error
