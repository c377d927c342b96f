"""Bring a database's schema to the latest migration.

The migrations are Alembic revisions shipped inside the package
(``migrations/versions``), so this works from an installed wheel as well as
from a checkout, with no ``alembic.ini``.

Several app servers may start at once against one database: each upgrade
runs in a single transaction that first takes a lock (an advisory lock on
PostgreSQL, the write lock on SQLite), so the second server waits, then
finds the schema up to date. Both backends roll DDL back with the
transaction, so a failed upgrade leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.errors import StoreError
from switchboard.store.engine import MIGRATION_TIMEOUT, for_writing, make_engine

__all__ = ["head_revision", "make_migration_engine", "upgrade", "upgrade_sync"]

MIGRATIONS = Path(__file__).with_name("migrations")

# Key of the PostgreSQL advisory lock held while migrating; any constant
# that other software on the same database is unlikely to pick.
LOCK_KEY = 0x5357_4D49  # "SWMI"


def config() -> Config:
    """Alembic configuration pointing at the packaged migrations."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    return alembic_config


def head_revision() -> str:
    """The revision a fully migrated database is at."""
    head = ScriptDirectory.from_config(config()).get_current_head()
    if head is None:  # pragma: no cover (the package ships revisions)
        raise StoreError("no migrations found")
    return head


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Run the migrations on ``database_url`` up to ``revision``."""
    engine = make_migration_engine(database_url)
    try:
        async with for_writing(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                await conn.execute(lock, {"key": LOCK_KEY})
            await conn.run_sync(_upgrade, revision)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(f"migration failed: {exc.__class__.__name__}") from exc
    finally:
        await engine.dispose()


def upgrade_sync(database_url: str, revision: str = "head") -> None:
    """Like :func:`upgrade`, for callers without an event loop."""
    asyncio.run(upgrade(database_url, revision))


def make_migration_engine(database_url: str) -> AsyncEngine:
    """An engine whose timeouts leave room for migrations.

    A migration may rewrite a large table, and waits for the migration lock
    while another server migrates: the store's timeouts of a few seconds
    would cut both short.
    """
    timeout = MIGRATION_TIMEOUT
    return make_engine(database_url, timeout=timeout, lock_timeout=timeout)


def _upgrade(connection: Connection, revision: str) -> None:
    # env.py finds the connection here and runs in its transaction.
    alembic_config = config()
    alembic_config.attributes["connection"] = connection
    command.upgrade(alembic_config, revision)
