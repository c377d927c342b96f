"""Exceptions raised by Switchboard.

Every error Switchboard raises derives from :class:`SwitchboardError`::

    SwitchboardError
    ├── ProtocolError          a frame from a peer broke the wire protocol
    ├── StoreError             the database failed or refused a write
    │   ├── NotFound           a record the caller named does not exist
    │   └── InvalidInput       the database refused a value (SQLSTATE class
    │                          22, data exception)
    ├── AddressBookError       the address book could not be read or written
    ├── BackplaneError         a publish to other app servers failed
    └── CommerceError          the shop's product or customer API failed

Errors of the libraries below (SQLAlchemy, redis-py, httpx) are translated at
the boundary with ``raise ... from exc`` so callers see one vocabulary.
"""

from __future__ import annotations

__all__ = [
    "AddressBookError",
    "BackplaneError",
    "CommerceError",
    "InvalidInput",
    "NotFound",
    "ProtocolError",
    "StoreError",
    "SwitchboardError",
]


class SwitchboardError(Exception):
    """Root of every Switchboard exception."""


class ProtocolError(SwitchboardError):
    """A peer sent something the wire protocol does not allow.

    ``code`` is the stable error code sent back in the error frame.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StoreError(SwitchboardError):
    """The store could not complete an operation."""


class NotFound(StoreError):
    """A record named by the caller does not exist."""


class InvalidInput(StoreError):
    """The database refused a value (SQLSTATE class 22, data exception).

    PostgreSQL refuses a NUL character in text, for one. Retrying the same
    value fails again; in a batch, the other values may be stored alone.
    """


class AddressBookError(SwitchboardError):
    """The address book is unreachable or answered with an error."""


class BackplaneError(SwitchboardError):
    """A message could not be handed to the other app servers."""


class CommerceError(SwitchboardError):
    """The commerce data source failed."""
