"""Migrations, on an empty SQLite file and an empty PostgreSQL database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from switchboard.errors import StoreError
from switchboard.store.migrate import MIGRATIONS, head_revision, upgrade
from switchboard.store.models import Base
from switchboard.store.sql import SqlStore, make_engine, normalize_url


async def inspect_database(url: str) -> tuple[set[str], str | None, list[Any]]:
    """Table names, Alembic revision, and differences from the models."""

    def read(connection: Connection) -> tuple[set[str], str | None, list[Any]]:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
        return tables, context.get_current_revision(), differences

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_migrations_build_the_schema_on_an_empty_database(
    empty_url: str,
) -> None:
    await upgrade(empty_url)

    tables, revision, _ = await inspect_database(empty_url)
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert revision == head_revision()


async def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    await upgrade(empty_url)

    _, _, differences = await inspect_database(empty_url)
    assert differences == []


async def test_upgrading_again_changes_nothing(empty_url: str) -> None:
    await upgrade(empty_url)
    store = SqlStore(empty_url)
    await store.open()
    try:
        agent = await store.create_agent("ada", "Ada", "hash", 2)
        await upgrade(empty_url)
        assert await store.agents() == [agent]
    finally:
        await store.close()


async def test_servers_migrating_at_once_both_succeed(empty_url: str) -> None:
    await asyncio.gather(*(upgrade(empty_url) for _ in range(3)))

    _, revision, _ = await inspect_database(empty_url)
    assert revision == head_revision()


async def test_store_refuses_a_database_that_was_not_migrated(
    empty_url: str,
) -> None:
    store = SqlStore(empty_url)

    with pytest.raises(StoreError, match="migrate first"):
        await store.open()


async def test_store_refuses_a_schema_behind_the_latest_migration(
    empty_url: str,
) -> None:
    await upgrade(empty_url)
    engine = make_engine(empty_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'x'"))
    await engine.dispose()

    with pytest.raises(StoreError, match="migrate first"):
        await SqlStore(empty_url).open()


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("*.py"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///chat.db", "sqlite+aiosqlite:///chat.db"),
        ("sqlite:////var/lib/chat.db", "sqlite+aiosqlite:////var/lib/chat.db"),
        ("sqlite+aiosqlite:///chat.db", "sqlite+aiosqlite:///chat.db"),
        ("postgresql://u:p@db/chat", "postgresql+asyncpg://u:p@db/chat"),
        ("postgres://u:p@db/chat", "postgresql+asyncpg://u:p@db/chat"),
        ("postgresql+psycopg2://u@db/chat", "postgresql+asyncpg://u@db/chat"),
        ("postgresql+asyncpg://u@db:5433/chat", "postgresql+asyncpg://u@db:5433/chat"),
    ],
)
def test_urls_are_normalized_to_async_drivers(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://u@db/chat", "not a url"]
)
def test_unsupported_urls_raise_store_error(url: str) -> None:
    with pytest.raises(StoreError):
        normalize_url(url)
