"""The address book: which live addresses each user has, cluster-wide.

An *address* names one connection: ``"<server id>/<connection id>"``. A user
(customer, visitor or agent) may have many. Every address carries an expiry;
the owning server pushes it forward once per heartbeat period for every
connection that is still heard from, in one batch. Reads drop expired
addresses first, so a connection that vanished without a close event stops
receiving messages within one timeout even if nobody ever removes it. A
server's addresses live only as long as its own liveness does: should that
lapse, other servers drop them, and the server publishes them again when
:meth:`AddressBook.refresh` tells it so.

Two implementations share one contract (``tests/addressbook``):
:class:`~switchboard.addressbook.memory.MemoryAddressBook` for one process and
:class:`~switchboard.addressbook.redis.RedisAddressBook` for a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

__all__ = ["AddressBook", "make_address", "server_of"]


def make_address(server_id: str, connection_id: str) -> str:
    """Return the cluster-wide address of a connection."""
    return f"{server_id}/{connection_id}"


def server_of(address: str) -> str:
    """Return the id of the server that owns ``address``."""
    return address.partition("/")[0]


class AddressBook(Protocol):
    """User -> live addresses, each with an expiry.

    ``ttl`` values are in seconds. Implementations translate their backend's
    errors into :class:`~switchboard.errors.AddressBookError`.
    """

    async def start(self, server_id: str, server_ttl: float) -> None:
        """Announce this server as alive; called once before any other call."""

    async def close(self) -> None:
        """Withdraw this server and release resources."""

    async def add(self, user: str, address: str, ttl: float) -> list[str]:
        """Add ``address`` for ``user``, expiring after ``ttl``.

        Returns the addresses dropped because the user went over the
        per-user cap (oldest first); their connections must be closed.
        """

    async def add_many(
        self, entries: Mapping[str, Iterable[str]], ttl: float
    ) -> list[str]:
        """Add every address of ``entries`` (user -> addresses) in one batch.

        What :meth:`add` does for each, in one round trip, to publish all
        the addresses of a server again (after an outage, or after its
        liveness lapsed). Over the cap, a user's other addresses go first;
        only if the new ones alone are too many do the first of them go.
        Returns every address dropped by the cap.
        """

    async def remove(self, user: str, address: str) -> None:
        """Remove one address (the connection closed normally)."""

    async def refresh(self, live: Mapping[str, Iterable[str]], ttl: float) -> bool:
        """Push forward the expiry of every address in ``live`` in one batch.

        ``live`` maps user -> addresses this server still hears from. Also
        refreshes this server's liveness. Addresses not already present are
        not recreated (a refresh never resurrects a removed address).

        Returns True when this server's liveness had lapsed before this
        refresh (or may have: an implementation that cannot tell says
        True). Other servers' lookups may have removed all of this server's
        addresses meanwhile, and this refresh did not bring them back: the
        caller must add every live address again, with :meth:`add_many`.
        Returns False when nothing lapsed.
        """

    async def lookup(self, users: Sequence[str]) -> dict[str, list[str]]:
        """Return the live addresses of each user, after dropping expired ones.

        Addresses whose server is no longer alive are dropped too. Users with
        no live address map to an empty list.
        """
