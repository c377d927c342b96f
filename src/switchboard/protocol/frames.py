"""Client frames (validated pydantic models) and the parser.

A frame is one JSON object per WebSocket text message with a ``type``
field. Any client frame may carry ``ref``, an opaque string echoed in the
``ack`` or ``error`` it causes, so a client can match answers to requests.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from ..errors import ProtocolError
from .codes import ErrorCode

__all__ = [
    "PROTOCOL_VERSION",
    "ClientFrame",
    "Close",
    "ContextUpdate",
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
    "check_body",
    "max_frame_size",
    "parse",
    "printable",
]

PROTOCOL_VERSION = 1

ConversationId = Annotated[int, Field(ge=1, le=2**53)]
AgentId = Annotated[int, Field(ge=1, le=2**53)]
Seq = Annotated[int, Field(ge=0, le=2**53)]
# Control characters (C0 other than tab, newline and carriage return, DEL
# and C1) have no business in chat text, and PostgreSQL refuses NUL
# outright: one such message must be refused here, not fail a database
# batch. So must a lone surrogate, which JSON can carry (as \ud800) but
# UTF-8, and so no database, cannot.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(value: str) -> str:
    """Return ``value``; raise ValueError if no record could hold it."""
    if _UNSTORABLE.search(value):
        raise ValueError("control characters and lone surrogates are not allowed")
    return value


Text = AfterValidator(printable)
Ref = Annotated[str, Field(max_length=64), Text]
ShortText = Annotated[str, Field(max_length=200), Text]


class _Frame(BaseModel):
    # Unknown fields are ignored rather than rejected so that a newer
    # client can talk to an older server of the same protocol version.
    # Strict: "3" is not a seq and true is not 1; a client sending them
    # has a bug it should hear about.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    ref: Ref | None = None


class Hello(_Frame):
    type: Literal["hello"]
    v: int
    token: Annotated[str, Field(max_length=4096), Text] | None = None
    name: ShortText = ""
    email: ShortText = ""


class Ping(_Frame):
    type: Literal["ping"]


class CartItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    sku: ShortText
    name: ShortText = ""
    quantity: Annotated[int, Field(ge=0, le=10_000)] = 1
    price: ShortText = ""


class ContextFields(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    url: Annotated[str, Field(max_length=2048), Text] = ""
    title: ShortText = ""
    cart: Annotated[list[CartItem], Field(max_length=100)] = []


class Start(_Frame):
    """Customer: start a conversation, or resume the latest one."""

    type: Literal["start"]
    after_seq: Seq = 0
    context: ContextFields | None = None


class Join(_Frame):
    """Replay a conversation after ``after_seq``; used to resume and fill gaps."""

    type: Literal["join"]
    conversation: ConversationId
    after_seq: Seq = 0


class Send(_Frame):
    type: Literal["send"]
    conversation: ConversationId
    client_id: Annotated[str, Field(min_length=1, max_length=64), Text]
    # The body limit is configurable, so it is checked by the chat service
    # (``check_body``); this bound only stops absurd frames early.
    body: Annotated[str, Field(max_length=1_000_000), Text] = ""
    kind: Literal["text", "product"] = "text"
    sku: ShortText | None = None


class Typing(_Frame):
    type: Literal["typing"]
    conversation: ConversationId
    active: bool = True


class Read(_Frame):
    type: Literal["read"]
    conversation: ConversationId
    seq: Seq


class ContextUpdate(_Frame):
    type: Literal["context"]
    conversation: ConversationId
    context: ContextFields


class Status(_Frame):
    type: Literal["status"]
    status: Literal["online", "away"]


class Take(_Frame):
    type: Literal["take"]
    conversation: ConversationId


class Transfer(_Frame):
    type: Literal["transfer"]
    conversation: ConversationId
    agent: AgentId


class Close(_Frame):
    type: Literal["close"]
    conversation: ConversationId


class Reopen(_Frame):
    """Agent: reopen a closed conversation and take it."""

    type: Literal["reopen"]
    conversation: ConversationId


ClientFrame = Annotated[
    Hello
    | Ping
    | Start
    | Join
    | Send
    | Typing
    | Read
    | ContextUpdate
    | Status
    | Take
    | Transfer
    | Close
    | Reopen,
    Field(discriminator="type"),
]

_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def max_frame_size(max_body: int) -> int:
    """The longest frame that can carry a body of ``max_body`` characters.

    A client may escape every character of the body as JSON allows: a
    character outside the Basic Multilingual Plane becomes a surrogate
    pair, ``\\ud83d\\ude00``, twelve characters. The other fields add
    little.
    """
    return 12 * max_body + 4096


def parse(text: str | bytes, max_size: int) -> ClientFrame:
    """Validate one frame; raise :class:`ProtocolError` with a stable code."""
    if len(text) > max_size:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, "frame too large")

    try:
        return _adapter.validate_json(text)
    except ValidationError as exc:
        raise _translate(exc) from exc


def _translate(exc: ValidationError) -> ProtocolError:
    # Pydantic reports the first problem that matters for the union first:
    # the JSON itself, then the discriminator, then the fields.
    first = exc.errors(include_url=False, include_input=False)[0]
    kind = first["type"]

    if kind == "json_invalid":
        return ProtocolError(ErrorCode.BAD_JSON, "frame is not valid JSON")
    # Only the frame itself must be an object; a field that should be one
    # and is not is an ordinary bad field, below.
    top_level = len(first["loc"]) <= 1
    if top_level and kind in ("model_attributes_type", "dict_type", "model_type"):
        return ProtocolError(ErrorCode.BAD_JSON, "frame must be a JSON object")
    if kind == "union_tag_invalid":
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown frame type")
    if kind == "union_tag_not_found":
        return ProtocolError(ErrorCode.BAD_FRAME, "frame has no type")

    where = ".".join(str(part) for part in first["loc"][1:]) or "frame"
    return ProtocolError(ErrorCode.BAD_FRAME, f"{where}: {first['msg'].lower()}")


def check_body(frame: Send, max_body: int) -> str:
    """Return the body to store, or raise for an empty or too long one."""
    body = frame.body.strip()
    if frame.kind == "product":
        if not frame.sku:
            raise ProtocolError(ErrorCode.BAD_FRAME, "sku: required for a product")
        return body
    if not body:
        raise ProtocolError(ErrorCode.BODY_EMPTY, "message body is empty")
    if len(body) > max_body:
        raise ProtocolError(
            ErrorCode.BODY_TOO_LONG, f"message body is over {max_body} characters"
        )
    return body
