"""Alembic environment for the store's migrations.

:func:`switchboard.store.migrate.upgrade` is the usual way in: it opens a
connection itself, takes the migration lock and hands the connection over in
``config.attributes["connection"]``, so nothing here opens one.

Run through Alembic's own command line instead (``alembic -x url=...``, to
write a new revision with ``--autogenerate``), this module opens an async
engine on the URL and runs the migrations through it.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from switchboard.store.engine import for_writing, normalize_url
from switchboard.store.migrate import make_migration_engine
from switchboard.store.models import Base

__all__: list[str] = []


def run(connection: Connection) -> None:
    # render_as_batch lets autogenerate write ALTERs that SQLite can run:
    # it cannot alter a column or a constraint in place.
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    engine = make_migration_engine(url)
    try:
        async with for_writing(engine).begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")

given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass the database URL with -x url=...")
    asyncio.run(run_on_url(normalize_url(url)))
