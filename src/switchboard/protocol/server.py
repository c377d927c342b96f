"""Server frames: one function per frame type, each returning encoded text.

Frames are encoded once and the same text goes to every connection that
should see it, however many there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..store import Conversation, StoredMessage
from .codes import ErrorCode
from .frames import PROTOCOL_VERSION

__all__ = [
    "ack",
    "assigned",
    "board",
    "closed",
    "context",
    "conversation",
    "encode",
    "error",
    "message",
    "pong",
    "queue",
    "queued",
    "read",
    "resync",
    "synced",
    "transferred",
    "typing",
    "welcome",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(frame: Mapping[str, Any]) -> str:
    return _dumps(frame)


def welcome(
    *,
    user: str,
    role: str,
    name: str,
    token: str | None,
    server: str,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    max_body: int,
    ref: str | None = None,
) -> str:
    return encode(
        {
            "type": "welcome",
            "v": PROTOCOL_VERSION,
            "user": user,
            "role": role,
            "name": name,
            "token": token,
            "server": server,
            "heartbeat": {"interval": heartbeat_interval, "timeout": heartbeat_timeout},
            "limits": {"max_body": max_body},
            "ref": ref,
        }
    )


def pong() -> str:
    return '{"type":"pong"}'


def error(code: ErrorCode, message: str, ref: str | None = None) -> str:
    return encode({"type": "error", "code": code, "message": message, "ref": ref})


def conversation_info(
    conv: Conversation,
    *,
    agent_name: str | None,
    customer: Mapping[str, Any],
    position: int | None,
) -> dict[str, Any]:
    return {
        "id": conv.id,
        "state": conv.state,
        "agent": None
        if conv.agent_id is None
        else {"id": conv.agent_id, "name": agent_name or ""},
        "customer": dict(customer),
        "last_seq": conv.last_seq,
        "queue_position": position,
    }


def conversation(info: Mapping[str, Any], ref: str | None = None) -> str:
    """Snapshot of one conversation, sent on start and join."""
    return encode({"type": "conversation", "conversation": info, "ref": ref})


def message(msg: StoredMessage, sender_name: str) -> str:
    return encode(
        {
            "type": "message",
            "conversation": msg.conversation_id,
            "seq": msg.seq,
            "client_id": msg.client_id,
            "sender": msg.sender,
            "sender_name": sender_name,
            "kind": msg.kind,
            "body": msg.body,
            "data": msg.data,
            "at": msg.created_at,
        }
    )


def synced(conversation_id: int, seq: int, ref: str | None = None) -> str:
    """Replay of a conversation is complete up to ``seq``; live from here."""
    return encode(
        {"type": "synced", "conversation": conversation_id, "seq": seq, "ref": ref}
    )


def resync() -> str:
    """This server may have missed frames for the client (a backplane or
    address-book outage): join every open conversation again after the
    last seq seen."""
    return '{"type":"resync"}'


def ack(conversation_id: int, client_id: str, seq: int, ref: str | None) -> str:
    return encode(
        {
            "type": "ack",
            "conversation": conversation_id,
            "client_id": client_id,
            "seq": seq,
            "ref": ref,
        }
    )


def typing(conversation_id: int, user: str, name: str, active: bool) -> str:
    return encode(
        {
            "type": "typing",
            "conversation": conversation_id,
            "user": user,
            "name": name,
            "active": active,
        }
    )


def read(conversation_id: int, user: str, seq: int) -> str:
    return encode(
        {"type": "read", "conversation": conversation_id, "user": user, "seq": seq}
    )


def assigned(info: Mapping[str, Any], reason: str) -> str:
    return encode({"type": "assigned", "conversation": info, "reason": reason})


def queued(conversation_id: int, position: int) -> str:
    return encode(
        {"type": "queued", "conversation": conversation_id, "position": position}
    )


def transferred(info: Mapping[str, Any], from_agent: int) -> str:
    return encode(
        {"type": "transferred", "conversation": info, "from_agent": from_agent}
    )


def closed(conversation_id: int, by: str) -> str:
    return encode({"type": "closed", "conversation": conversation_id, "by": by})


def context(conversation_id: int, fields: Mapping[str, Any]) -> str:
    return encode(
        {"type": "context", "conversation": conversation_id, "context": dict(fields)}
    )


def board(agents: Iterable[Mapping[str, Any]], *, full: bool) -> str:
    return encode({"type": "board", "full": full, "agents": list(agents)})


def queue(entries: Iterable[Mapping[str, Any]]) -> str:
    return encode({"type": "queue", "conversations": list(entries)})
