"""The address book of a single app server, kept in a dict.

All connections belong to this one process, so there is no other server
whose liveness could lapse: expiry is the only way an address goes stale
besides :meth:`~MemoryAddressBook.remove`. One instance serves one server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["MemoryAddressBook"]


class MemoryAddressBook:
    """User -> {address: expiry}, on the monotonic clock.

    ``clock`` is injectable so that tests can move time by hand.
    """

    def __init__(
        self,
        max_per_user: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self.max_per_user = max_per_user
        self.clock = clock
        self.server_id: str | None = None

        # Each inner dict keeps insertion order, which breaks ties between
        # equal expiries in favour of the address added first.
        self._users: dict[str, dict[str, float]] = {}

    async def start(self, server_id: str, server_ttl: float) -> None:
        self.server_id = server_id

    async def close(self) -> None:
        # Withdrawing the only server leaves no live address behind.
        self._users.clear()

    async def add(self, user: str, address: str, ttl: float) -> list[str]:
        return self._add(user, [address], ttl)

    async def add_many(
        self, entries: Mapping[str, Iterable[str]], ttl: float
    ) -> list[str]:
        dropped: list[str] = []
        for user, addresses in entries.items():
            if new := list(dict.fromkeys(addresses)):
                dropped += self._add(user, new, ttl)
        return dropped

    async def remove(self, user: str, address: str) -> None:
        entries = self._users.get(user)
        if entries is None:
            return
        entries.pop(address, None)
        if not entries:
            del self._users[user]

    async def refresh(self, live: Mapping[str, Iterable[str]], ttl: float) -> bool:
        expiry = self.clock() + ttl
        for user, addresses in live.items():
            # An address that expired or was removed stays gone, exactly as
            # in Redis, where the refresh only updates existing members.
            entries = self._live_entries(user)
            for address in addresses:
                if address in entries:
                    entries[address] = max(entries[address], expiry)
            if not entries:
                del self._users[user]

        # Nothing but this server can lapse, and then nobody looks.
        return False

    async def lookup(self, users: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for user in users:
            entries = self._live_entries(user)
            found[user] = sorted(entries, key=entries.__getitem__)
            if not entries:
                del self._users[user]
        return found

    def _add(self, user: str, addresses: list[str], ttl: float) -> list[str]:
        """Add distinct ``addresses`` for ``user``; return those dropped."""
        entries = self._live_entries(user)
        expiry = self.clock() + ttl
        for address in addresses:
            entries.pop(address, None)
            entries[address] = expiry

        # Drop the soonest-expiring addresses, never one just added while
        # others remain: the caller is about to use it. Should the new ones
        # alone be too many, the first of them go.
        excess = len(entries) - self.max_per_user
        if excess <= 0:
            return []
        new = set(addresses)
        others = sorted(
            (a for a in entries if a not in new),
            key=entries.__getitem__,
        )
        dropped = (others + addresses)[:excess]
        for old in dropped:
            del entries[old]
        return dropped

    def _live_entries(self, user: str) -> dict[str, float]:
        """Return ``user``'s entries after dropping the expired ones.

        The returned dict is stored in the book, even when empty; callers
        that leave it empty delete it.
        """
        now = self.clock()
        entries = self._users.setdefault(user, {})
        for address in [a for a, expiry in entries.items() if expiry <= now]:
            del entries[address]
        return entries
