"""The gateway: HTTP API, WebSocket endpoint and static web UI (ASGI).

It only translates between transports and the chat services.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
