"""The floor of our stack: an aiohttp WebSocket relay that checks nothing.

It uses what the room server uses (aiohttp, orjson, uvloop when installed), so the
gap between this and the room server is the cost of our own code: validation,
authorisation, rate limits, bookkeeping. Nothing here is fit for production.

Protocol: the first text frame ``{"type": "join", "id": ...}`` registers the socket
under ``id`` and is answered ``{"type": "welcome"}``; every later frame
``{"type": "signal", "to": X, ...}`` is forwarded to X verbatim.

    python floor_relay.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import WSMsgType, web

PEERS: web.AppKey[dict[str, web.WebSocketResponse]] = web.AppKey("peers", dict)
WELCOME = '{"type":"welcome"}'


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    """Register on the first frame, then forward by ``to`` without looking further."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    peers = request.app[PEERS]
    first = await ws.receive()
    if first.type is not WSMsgType.TEXT:
        await ws.close()
        return ws
    peer_id = orjson.loads(first.data)["id"]
    peers[peer_id] = ws
    try:
        await ws.send_str(WELCOME)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                dst = peers.get(orjson.loads(msg.data)["to"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if dst is not None:
                await dst.send_str(msg.data)
    finally:
        if peers.get(peer_id) is ws:
            del peers[peer_id]
    return ws


async def health(_: web.Request) -> web.Response:
    """Readiness probe for run.py."""
    return web.Response(text="ok")


def make_app() -> web.Application:
    """The whole relay: one route, one dict."""
    app = web.Application()
    app[PEERS] = {}
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/health", health)
    return app


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, like the room server; the stock loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # A large backlog so a burst of simultaneous joins measures the server, not SYN retries.
    web.run_app(
        make_app(),
        host=args.host,
        port=args.port,
        backlog=1024,
        access_log=None,
        print=None,
        shutdown_timeout=1.0,
        loop=new_loop(),
    )


if __name__ == "__main__":
    main()
