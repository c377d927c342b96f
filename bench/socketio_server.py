#!/usr/bin/env python
"""A minimal live chat on python-socketio, the reference for the benchmark.

    python bench/socketio_server.py --port 9001 --redis-url redis://... \\
        --channel bench-chat

One process of a cluster: AsyncServer with AsyncRedisManager (every emit is
published on one Redis channel and every server delivers it to its own
members of the room), served by aiohttp on uvloop. Customer and agent each
join a room per conversation; a message is validated, emitted to the room
(both participants, like Switchboard's delivery to every connection of
both users) and acknowledged.

It does *not* store messages, number them, deduplicate resends or replay
after a reconnect: what it does is only the delivery half of Switchboard's
work, and the comparison says so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import socketio
import uvloop
from aiohttp import web


def build(redis_url: str, channel: str, pool_limit: int | None) -> web.Application:
    # redis-py 8 caps an asyncio pool at 100 connections and raises at once
    # when they are all busy; AsyncRedisManager then drops its client and
    # connects a new one for every failed publish. The limit redis-py 7
    # had (2**31) is what python-socketio is used to; --pool-limit 0 keeps
    # the redis-py default to show the difference.
    options = {"max_connections": pool_limit} if pool_limit else {}
    manager = socketio.AsyncRedisManager(
        redis_url, channel=channel, redis_options=options
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=[],
        logger=False,
        engineio_logger=False,
    )

    # The conversations of each local connection, for the membership check
    # (sio.rooms(sid) scans every room of the namespace).
    joined: dict[str, set[str]] = {}

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        joined[sid] = set()
        return True

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        joined.pop(sid, None)

    @sio.on("join")
    async def join(sid: str, room: Any) -> bool:
        if not isinstance(room, str) or not room:
            return False
        await sio.enter_room(sid, room)
        joined[sid].add(room)
        return True

    @sio.on("message")
    async def message(sid: str, data: Any) -> dict[str, Any]:
        # The checks a chat server cannot skip: a well-formed message, into
        # a conversation the sender takes part in.
        if not isinstance(data, dict):
            return {"error": "bad message"}
        room, body = data.get("conversation"), data.get("body")
        if not isinstance(body, str) or not body.strip() or len(body) > 4000:
            return {"error": "bad body"}
        if room not in joined.get(sid, ()):
            return {"error": "not in conversation"}

        frame = {"conversation": room, "sender": sid, "body": body, "at": time.time()}
        await sio.emit("message", frame, room=room)
        return {"ok": True}

    app = web.Application()
    sio.attach(app)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default="socketio")
    parser.add_argument("--pool-limit", type=int, default=2**31,
                        help="Redis connections per process (0: redis-py's default)")
    args = parser.parse_args()

    # Timestamps, and the Redis error python-socketio passes in "extra".
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s %(redis_exception)s",
        defaults={"redis_exception": ""},
    ))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        build(args.redis_url, args.channel, args.pool_limit),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
