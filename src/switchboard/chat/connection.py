"""One live connection, independent of its transport.

Each connection has a bounded outbox drained by a writer task that exists
only while there is something to write, so an idle connection costs no task.
A client that cannot keep up is closed rather than buffered without bound;
it resumes from its last ``seq`` when it reconnects, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from typing import Protocol

from ..protocol.codes import CloseCode

__all__ = ["Connection", "ConnectionState", "Role", "Transport"]

logger = logging.getLogger("switchboard.connection")


class Transport(Protocol):
    """What the gateway provides for one client connection."""

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Role(enum.StrEnum):
    """Who is on the other end, once the hello succeeded."""

    AGENT = "agent"
    CUSTOMER = "customer"


class ConnectionState(enum.Enum):
    HELLO = "hello"  # waiting for a successful hello
    OPEN = "open"  # authenticated
    CLOSED = "closed"


class Connection:
    """One client's transport, its identity, and what is waiting for it.

    The hub creates it on accept and fills in the identity at hello. Frames
    for the client go through :meth:`push`, which never waits; the state
    changes only through :meth:`set_state`, which logs it.
    """

    __slots__ = (
        "_outbox",
        "_room",
        "_writer",
        "address",
        "agent_id",
        "customer_id",
        "errors",
        "id",
        "last_heard",
        "max_outbox",
        "name",
        "opened",
        "role",
        "state",
        "transport",
        "user",
    )

    def __init__(
        self, connection_id: str, address: str, transport: Transport, max_outbox: int
    ) -> None:
        self.id = connection_id
        self.address = address
        self.transport = transport
        self.max_outbox = max_outbox
        self.state = ConnectionState.HELLO

        # Who is on the other end: unknown until the hello succeeds.
        self.user = ""
        self.role: Role | None = None
        self.agent_id = 0
        self.customer_id = 0
        self.name = ""

        # What the hub's sweep and abuse checks go by.
        self.errors = 0
        self.opened = self.last_heard = time.monotonic()

        self._outbox: deque[str] = deque()
        self._writer: asyncio.Task[None] | None = None
        # Set while the outbox is at most half full.
        self._room = asyncio.Event()
        self._room.set()

    def __repr__(self) -> str:
        return f"<Connection {self.address} {self.user or '-'} {self.state.name}>"

    def set_state(self, state: ConnectionState) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s -> %s", self.address, self.state.name, state.name)
        self.state = state

    def push(self, text: str) -> None:
        """Queue ``text`` for the client; never blocks the caller."""
        if self.state is ConnectionState.CLOSED:
            return
        if len(self._outbox) >= self.max_outbox:
            logger.info("%s: outbox full, closing", self.address)
            self.close(CloseCode.TOO_SLOW, "too slow")
            return

        # Past half full, producers that can wait (a replay) are held back
        # until the writer catches up.
        self._outbox.append(text)
        if len(self._outbox) > self.max_outbox // 2:
            self._room.clear()

        # The writer task stops when the outbox is empty; start it again.
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._outbox:
                await self.transport.send(self._outbox.popleft())
                if len(self._outbox) <= self.max_outbox // 2:
                    self._room.set()
        except Exception as exc:
            # The transport failed under us (peer gone); the gateway's read
            # loop notices the same and runs the disconnect path.
            logger.debug("%s: send failed: %r", self.address, exc)
            self._outbox.clear()
            self._room.set()
            self.set_state(ConnectionState.CLOSED)
        finally:
            self._writer = None

    async def drained(self, timeout: float = 30.0) -> bool:
        """Wait until the outbox is at most half full; False if closed.

        Producers of many frames (a replay) wait here between pages, so a
        slow client is paced instead of overflowing its outbox.
        """
        try:
            await asyncio.wait_for(self._room.wait(), timeout)
        except TimeoutError:
            return False
        return self.state is not ConnectionState.CLOSED

    def close(self, code: int, reason: str) -> None:
        """Close the transport after what is queued; safe to call twice."""
        if self.state is ConnectionState.CLOSED:
            return
        self.set_state(ConnectionState.CLOSED)
        pending = self._writer
        self._writer = asyncio.create_task(self._close(pending, code, reason))

    async def _close(
        self, pending: asyncio.Task[None] | None, code: int, reason: str
    ) -> None:
        # Let the frames already queued (often the error that explains the
        # close) reach the client first, but never wait on a stuck peer.
        if pending is not None:
            try:
                await asyncio.wait_for(asyncio.shield(pending), 1.0)
            except Exception as exc:
                logger.debug("%s: flush before close failed: %r", self.address, exc)

        # The peer may be gone already; the close is a courtesy then.
        try:
            await self.transport.close(code, reason)
        except Exception as exc:
            logger.debug("%s: close failed: %r", self.address, exc)
