"""Chat services: sessions, conversations, routing and the status board.

These modules hold the chat logic and do no I/O of their own: they reach the
world through the address book, backplane, store and commerce interfaces, and
through :class:`~switchboard.chat.connection.Transport` for the client side.
"""

from __future__ import annotations

from .connection import Connection, Role, Transport
from .hub import Hub

__all__ = ["Connection", "Hub", "Role", "Transport"]
