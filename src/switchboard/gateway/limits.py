"""A bound on HTTP request bodies, before anything reads them.

The API's largest body is a left message of 4,000 characters; without a
bound, a client could make the server buffer any amount before validation
refused it. A declared ``Content-Length`` over the bound is refused at
once; a chunked body is counted as it arrives and refused when it passes
the bound.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]

_TOO_LARGE = json.dumps(
    {"error": {"code": "too_large", "message": "request body too large"}}
).encode()


class BodyLimit:
    """ASGI middleware: answer 413 to HTTP requests with a body over ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _refuse(send)
            return

        # Past the bound, this answers 413 itself and tells the app the
        # client went away; whatever the app then sends is dropped.
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await _refuse(send)
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TOO_LARGE)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TOO_LARGE})
