"""The backplane of a server that runs alone.

With one process there is no other server to reach: a delivery to our own
server id goes straight to ``on_delivery``, a delivery to any other id is
dropped (as Redis drops a publish nobody subscribes to), and a status event
goes straight to ``on_status``. Handlers are awaited before the publish
returns; as with Redis, their exceptions are logged, never raised to the
publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..errors import BackplaneError
from . import Handler

__all__ = ["MemoryBackplane"]

logger = logging.getLogger("switchboard.backplane")


class MemoryBackplane:
    """In-process backplane; ``max_payload`` mirrors the Redis limit."""

    def __init__(self, *, max_payload: int = 256 * 1024) -> None:
        self.max_payload = max_payload
        self._server_id: str | None = None
        self._on_delivery: Handler | None = None
        self._on_status: Handler | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(
        self,
        server_id: str,
        on_delivery: Handler,
        on_status: Handler,
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._server_id = server_id
        self._on_delivery = on_delivery
        self._on_status = on_status
        # Nothing can have been missed, but the contract promises one resync
        # per subscription, and the server may rely on it to load its state.
        await on_resync()
        self._ready = True

    async def close(self) -> None:
        self._ready = False
        self._on_delivery = self._on_status = None

    async def deliver(self, server_id: str, payload: bytes) -> None:
        self._check(payload)
        if server_id == self._server_id:
            await self._dispatch(self._on_delivery, payload)

    async def publish_status(self, payload: bytes) -> None:
        self._check(payload)
        await self._dispatch(self._on_status, payload)

    def _check(self, payload: bytes) -> None:
        if not self._ready:
            raise BackplaneError("backplane is not running")
        if len(payload) > self.max_payload:
            raise BackplaneError(
                f"payload of {len(payload)} bytes exceeds {self.max_payload} bytes"
            )

    async def _dispatch(self, handler: Handler | None, payload: bytes) -> None:
        if handler is None:  # pragma: no cover - _check refused it already
            return
        try:
            await handler(payload)
        except Exception:
            logger.exception("backplane handler failed")
