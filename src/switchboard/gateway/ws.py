"""The WebSocket endpoint: one coroutine per client connection."""

from __future__ import annotations

import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..chat import Hub

__all__ = ["WebSocketTransport", "serve_websocket"]

logger = logging.getLogger("switchboard.gateway")


class WebSocketTransport:
    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        await self._ws.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self._ws.application_state is WebSocketState.CONNECTED:
            await self._ws.close(code, reason)


async def serve_websocket(hub: Hub, ws: WebSocket) -> None:
    await ws.accept()
    conn = hub.accept(WebSocketTransport(ws))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            await hub.receive(conn, data)
    except WebSocketDisconnect:
        pass
    except RuntimeError as exc:
        # Starlette raises RuntimeError when receiving after our own close.
        logger.debug("%s: receive ended: %s", conn.address, exc)
    finally:
        await hub.disconnect(conn)
