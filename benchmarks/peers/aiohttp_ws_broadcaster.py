"""A minimal WebSocket broadcaster: what a Python developer writes in an
afternoon (the aiohttp documentation's pattern), beside
aiohttp_broadcaster.py (SSE).

    python aiohttp_ws_broadcaster.py PORT

GET /ws       -> WebSocket; every published body arrives as one text frame;
                 a text frame the client sends is published to everyone
                 (the chat: input over the socket), the sender included
POST /publish -> the request body is sent to every socket

One in-memory set of sockets (one group), no history, no ids, no auth,
permessage-deflate off (as the other systems are measured).
"""
from aiohttp import WSMsgType, web

from aiohttp_broadcaster import serve

sockets = set()


async def broadcast(text):
    for ws in list(sockets):
        try:
            await ws.send_str(text)
        except ConnectionResetError:
            pass


async def ws_handler(request):
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await broadcast(msg.data)
    finally:
        sockets.discard(ws)
    return ws


async def publish(request):
    await broadcast(await request.text())
    return web.json_response({'subscribers': len(sockets)})


if __name__ == '__main__':
    serve([web.get('/ws', ws_handler), web.post('/publish', publish)])
