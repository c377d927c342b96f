"""Wire protocol v1: frames, validation and error codes, with no I/O.

Everything here turns text into validated frames and frames into text.
Nothing opens a socket, so the whole protocol is tested without a server.
See ``docs/protocol.md`` for the reference.
"""

from __future__ import annotations

from .codes import CloseCode, ErrorCode
from .frames import (
    PROTOCOL_VERSION,
    Close,
    ContextUpdate,
    Hello,
    Join,
    Ping,
    Read,
    Reopen,
    Send,
    Start,
    Status,
    Take,
    Transfer,
    Typing,
    parse,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Close",
    "CloseCode",
    "ContextUpdate",
    "ErrorCode",
    "Hello",
    "Join",
    "Ping",
    "Read",
    "Reopen",
    "Send",
    "Start",
    "Status",
    "Take",
    "Transfer",
    "Typing",
    "parse",
]
