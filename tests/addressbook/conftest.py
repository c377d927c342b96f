"""Fixtures for the address book tests.

``make_book`` runs each contract test twice, once per implementation; the
Redis one gets a key prefix of its own, whose keys are deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from switchboard.addressbook import AddressBook
from switchboard.addressbook.memory import MemoryAddressBook
from switchboard.addressbook.redis import RedisAddressBook
from tests.backplane.support import UNIT, own_redis, random_prefix, scrub

__all__ = ["BookFactory", "RedisBookFactory", "own_redis"]

BookFactory = Callable[..., Awaitable[AddressBook]]
RedisBookFactory = Callable[..., Awaitable[RedisAddressBook]]


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = random_prefix()
    yield prefix
    await scrub(redis_url, prefix)


@pytest.fixture
async def make_redis_book(
    redis_url: str, prefix: str
) -> AsyncIterator[RedisBookFactory]:
    """Make started Redis address books sharing one prefix, like a cluster.

    ``url`` points a book at another server, such as :func:`own_redis`.
    """
    books: list[RedisAddressBook] = []

    async def make(
        server_id: str = "s1",
        *,
        server_ttl: float = 50 * UNIT,
        start: bool = True,
        url: str | None = None,
        **options: Any,
    ) -> RedisAddressBook:
        book = RedisAddressBook(url or redis_url, prefix=prefix, **options)
        books.append(book)
        if start:
            await book.start(server_id, server_ttl)
        return book

    yield make
    for book in books:
        await book.close()


@pytest.fixture(params=["memory", "redis"])
def make_book(request: pytest.FixtureRequest) -> BookFactory:
    """Make started address books of the implementation under test."""
    if request.param == "redis":
        make_redis_book: RedisBookFactory = request.getfixturevalue("make_redis_book")
        return make_redis_book

    # A memory book holds nothing that needs releasing.
    async def make(
        server_id: str = "s1", *, server_ttl: float = 50 * UNIT, **options: Any
    ) -> MemoryAddressBook:
        book = MemoryAddressBook(**options)
        await book.start(server_id, server_ttl)
        return book

    return make


@pytest.fixture
async def book(make_book: BookFactory) -> AddressBook:
    return await make_book()
