"""Fixtures for the store's contract tests, run on SQLite and PostgreSQL.

Each test run creates its own PostgreSQL database, ``sb_test_<random>``, on
the server that ``DATABASE_URL`` names, migrates it once and drops it at the
end, so runs in parallel never see each other's rows. Tests empty it before
they start. SQLite gets a fresh file per test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from switchboard.store.migrate import upgrade
from switchboard.store.models import Base
from switchboard.store.sql import SqlStore

__all__ = [
    "create_database",
    "drop_database",
    "empty_url",
    "postgres_store",
    "postgres_test_url",
    "store",
    "store_url",
    "stores",
]

T = TypeVar("T")


def run_in_thread(coroutine: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion outside the test's event loop.

    Session fixtures are synchronous; asyncio.run() in the main thread would
    replace the event loop pytest-asyncio set for the tests.
    """

    async def main() -> T:
        return await coroutine()

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, main()).result()


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def create_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    name = f"sb_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(False)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    server = make_url(url).set(database="postgres").render_as_string(False)
    connection = await asyncpg.connect(asyncpg_dsn(server))
    try:
        # FORCE ends sessions that a failed test may have left open.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_test_url(database_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test run's own."""
    url = run_in_thread(lambda: create_database(database_url))
    try:
        run_in_thread(lambda: upgrade(url))
        yield url
    finally:
        run_in_thread(lambda: drop_database(url))


async def empty_tables(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated, empty database, on each backend in turn."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite:///{tmp_path / 'store.db'}"
        run_in_thread(lambda: upgrade(sqlite_url))
        return sqlite_url

    # Synchronous, so that the session fixtures it pulls in run outside the
    # test's event loop.
    postgres_url: str = request.getfixturevalue("postgres_test_url")
    run_in_thread(lambda: empty_tables(postgres_url))
    return postgres_url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(store_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def postgres_store(postgres_test_url: str) -> AsyncIterator[SqlStore]:
    """A store on PostgreSQL alone, for what only PostgreSQL does."""
    await empty_tables(postgres_test_url)
    store = SqlStore(postgres_test_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[list[SqlStore]]:
    """Three stores on one database, each with its own engine, as three app
    servers would have."""
    opened: list[SqlStore] = []
    try:
        for _ in range(3):
            opened.append(SqlStore(store_url))
            await opened[-1].open()
        yield opened
    finally:
        for store in opened:
            await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database of its own with no tables, on each backend in turn,
    for tests that migrate or break the schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return

    server_url: str = request.getfixturevalue("database_url")
    url = run_in_thread(lambda: create_database(server_url))
    try:
        yield url
    finally:
        run_in_thread(lambda: drop_database(url))
