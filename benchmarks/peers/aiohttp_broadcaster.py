"""A minimal SSE broadcaster: what a Python developer writes in an afternoon.

    python aiohttp_broadcaster.py PORT

GET /sub      -> text/event-stream; every published body arrives as one event
POST /publish -> the request body is sent to every subscriber ("data: <body>")

One in-memory list of asyncio.Queues, no history, no ids, no auth.
"""
import asyncio
import resource
import sys

from aiohttp import web

subscribers = []


async def sub(request):
    resp = web.StreamResponse(headers={
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
    })
    await resp.prepare(request)
    queue = asyncio.Queue()
    subscribers.append(queue)
    try:
        while True:
            data = await queue.get()
            await resp.write(b'data: ' + data + b'\n\n')
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        subscribers.remove(queue)
    return resp


async def publish(request):
    data = await request.read()
    for queue in subscribers:
        queue.put_nowait(data)
    return web.json_response({'subscribers': len(subscribers)})


def serve(routes):
    """Serve the routes on 127.0.0.1:<argv[1]> (uvloop when installed,
    the open-file limit raised to the hard limit)."""
    port = int(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app.router.add_routes(routes)
    web.run_app(app, host='127.0.0.1', port=port, backlog=4096,
                access_log=None, print=None)


if __name__ == '__main__':
    serve([web.get('/sub', sub), web.post('/publish', publish)])
