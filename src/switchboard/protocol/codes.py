"""Stable error codes and WebSocket close codes.

Codes are part of the protocol: clients switch on them, so a code is never
renamed or reused for another meaning.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "ErrorCode"]


class ErrorCode(enum.StrEnum):
    BAD_JSON = "bad_json"  # the frame is not a JSON object
    BAD_FRAME = "bad_frame"  # a field is missing, of the wrong type or range
    UNKNOWN_TYPE = "unknown_type"  # no frame has that ``type``
    FRAME_TOO_LARGE = "frame_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_AUTHENTICATED = "not_authenticated"  # only hello and ping before welcome
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_FAILED = "auth_failed"  # bad, expired or revoked token
    FORBIDDEN = "forbidden"  # allowed for other roles or participants only
    NOT_FOUND = "not_found"  # no such conversation, agent or product
    BODY_EMPTY = "body_empty"
    BODY_TOO_LONG = "body_too_long"
    BAD_STATE = "bad_state"  # e.g. closing a conversation that is not open
    AT_CAPACITY = "at_capacity"  # the agent cannot take one more chat
    UNAVAILABLE = "unavailable"  # a backend is down; retry the same frame later
    INTERNAL = "internal"  # a bug; details are in the server log


class CloseCode(enum.IntEnum):
    GOING_AWAY = 1001  # server shutting down: reconnect elsewhere
    POLICY_VIOLATION = 1008  # too many protocol errors
    INTERNAL_ERROR = 1011
    EVICTED = 4000  # the user has too many connections; this was the oldest
    HEARTBEAT_TIMEOUT = 4001  # nothing heard within the heartbeat timeout
    TOO_SLOW = 4002  # the client did not read fast enough; resume to catch up
    HELLO_TIMEOUT = 4003  # no successful hello in time
