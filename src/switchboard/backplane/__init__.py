"""The backplane: how one app server hands work to the others.

Two kinds of traffic cross it:

* *deliveries*: frames for users with addresses on one particular server,
  published on that server's own channel, once per server and never once
  per address;
* *status*: one event per status-board change, published on one shared
  channel that every server listens to.

Payloads are opaque bytes (already-encoded JSON) so that a frame is encoded
once, whatever the number of servers and connections it reaches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Backplane", "Handler"]

Handler = Callable[[bytes], Awaitable[None]]


class Backplane(Protocol):
    """Publish to one server or to all; receive what others publish."""

    async def start(
        self,
        server_id: str,
        on_delivery: Handler,
        on_status: Handler,
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        """Subscribe to this server's delivery channel and the status channel.

        ``on_delivery`` receives payloads published to this server;
        ``on_status`` receives every status event, including this server's
        own (so the local board is updated in one place). ``on_resync`` is
        awaited after every (re)subscription, before :attr:`ready` turns
        true, so the server can reload state it may have missed meanwhile.
        """

    async def close(self) -> None:
        """Unsubscribe and release resources."""

    async def deliver(self, server_id: str, payload: bytes) -> None:
        """Hand ``payload`` to ``server_id``'s ``on_delivery``."""

    async def publish_status(self, payload: bytes) -> None:
        """Hand ``payload`` to every server's ``on_status``."""

    @property
    def ready(self) -> bool:
        """True while subscribed; False while resubscribing after a loss."""
