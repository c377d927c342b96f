"""Engines and transactions of the SQL store.

:func:`make_engine` builds an async engine on SQLite or PostgreSQL from a
URL :func:`normalize_url` accepts; :class:`SqlBase` holds a store's engines
and runs its transactions, turning every error of SQLAlchemy or of the
driver into a :class:`~switchboard.errors.StoreError`. See
:mod:`switchboard.store.sql` for how transactions lock rows.

Durability
----------

SQLite runs in WAL mode with ``synchronous=FULL``: a commit, hence an
acknowledged message, reaches the disk before the call returns, so it
survives a process kill and a power cut alike. ``NORMAL`` would survive a
killed process too, but not a power cut, and batching appends already
spreads the cost of the fsync over many messages.

Timeouts
--------

Nothing waits on the database without a bound, so that one stuck lock or
a database that stops answering stalls a few calls, not the server. On
PostgreSQL the server cancels a statement after :data:`STATEMENT_TIMEOUT`
and a wait for a lock after :data:`LOCK_TIMEOUT`; asyncpg gives up on a
reply a second after the statement timeout (a server that no longer
answers cannot cancel anything); a call waits at most :data:`POOL_TIMEOUT`
for a free connection. On SQLite a writer waits for another process's lock
up to the busy timeout, :data:`STATEMENT_TIMEOUT` too. Each of these
becomes a :class:`~switchboard.errors.StoreError` saying that the database
timed out, to be handled like a lost connection: the same call may succeed
later. The transaction is not run again here, which would only make the
caller wait longer. Migrations run with :data:`MIGRATION_TIMEOUT` instead;
see :mod:`switchboard.store.migrate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from alembic.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from switchboard.errors import InvalidInput, StoreError

__all__ = [
    "LOCK_TIMEOUT",
    "MIGRATION_TIMEOUT",
    "POOL_TIMEOUT",
    "STATEMENT_TIMEOUT",
    "SqlBase",
    "for_writing",
    "make_engine",
    "normalize_url",
]

logger = logging.getLogger("switchboard.store")

T = TypeVar("T")

# Seconds one statement may run, and the reply to it take, on PostgreSQL;
# also how long a SQLite connection waits for another process's write lock.
STATEMENT_TIMEOUT = 10.0

# Seconds a PostgreSQL statement may wait for a lock. Shorter than the
# statement timeout, so that a stuck lock says so rather than "too slow".
LOCK_TIMEOUT = 5.0

# Seconds a call waits for a free connection of the pool.
POOL_TIMEOUT = 10.0

# The statement and lock timeouts of migrations: they may rewrite a large
# table, or wait for another server's migration to finish.
MIGRATION_TIMEOUT = 600.0

# How many times a transaction runs when the database asks for a retry.
ATTEMPTS = 5

# SQLSTATEs after which PostgreSQL has rolled back and a retry may succeed:
# serialization_failure and deadlock_detected.
RETRY_SQLSTATES = {"40001", "40P01"}

# SQLSTATEs of a statement cancelled by a timeout: query_canceled (the
# statement timeout) and lock_not_available (the lock timeout).
TIMEOUT_SQLSTATES = {"57014", "55P03"}

# SQLite's result code when the busy timeout ran out.
SQLITE_BUSY = 5

# Execution option that makes a SQLite transaction begin IMMEDIATE.
WRITE_OPTION = "switchboard_write"

# What asyncpg raises when used directly (see SqlBase._write_asyncpg): the
# server's errors, the client's, and its internal ones.
ASYNCPG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

# SQLSTATE of unique_violation.
UNIQUE_VIOLATION = "23505"


# -- engines ------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Return ``url`` with the async driver of its database.

    ``sqlite:///path.db`` becomes ``sqlite+aiosqlite:///path.db`` and
    ``postgresql://...`` (or ``postgres://``, or another driver) becomes
    ``postgresql+asyncpg://...``. Raise StoreError for other databases and
    for in-memory SQLite, which each connection would see empty.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError("invalid database url") from exc

    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in url:
            raise StoreError("in-memory SQLite is not supported: name a file")
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise StoreError(f"unsupported database: {backend}")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str,
    *,
    timeout: float = STATEMENT_TIMEOUT,
    lock_timeout: float = LOCK_TIMEOUT,
) -> AsyncEngine:
    """Create an async engine set up as the store needs it.

    ``timeout`` bounds a statement and, on SQLite, the wait for the write
    lock; ``lock_timeout`` bounds a wait for a lock on PostgreSQL. On
    SQLite, this sets the pragmas of every connection and takes over BEGIN
    from the driver; see :func:`for_writing`.
    """
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        # The server cancels what runs or waits too long; asyncpg's own
        # timeouts cover a server that stopped answering, a little later
        # so that the server's error, which says what happened, comes first.
        connect_args = {
            "timeout": timeout,
            "command_timeout": timeout + 1,
            "server_settings": {
                "statement_timeout": f"{_ms(timeout)}ms",
                "lock_timeout": f"{_ms(lock_timeout)}ms",
            },
        }
        # No pool_pre_ping: it costs a round trip (and, through the greenlet
        # bridge, ~0.1 ms of CPU) on every checkout, as much as a statement.
        # A connection the server or a proxy closed while it sat in the pool
        # is known closed to asyncpg without asking, and _check_out replaces
        # it. One that died silently fails its first call with "lost the
        # connection", which callers handle like any outage; SQLAlchemy then
        # invalidates the whole pool, so the next call connects afresh.
        engine = create_async_engine(
            url, connect_args=connect_args, pool_timeout=POOL_TIMEOUT
        )
        event.listen(engine.sync_engine.pool, "checkout", _check_out)
        return engine

    engine = create_async_engine(url, pool_timeout=POOL_TIMEOUT)
    event.listen(engine.sync_engine, "connect", _sqlite_connector(timeout))
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """Return a view of ``engine`` whose transactions start as writers.

    On SQLite they begin IMMEDIATE; on PostgreSQL nothing changes.
    """
    return engine.execution_options(**{WRITE_OPTION: True})


def _check_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # The pool takes this error as "connect again" and retries the checkout.
    if record.driver_connection.is_closed():
        raise sa_exc.DisconnectionError("connection closed while in the pool")


def _sqlite_connector(busy_timeout: float) -> Callable[[Any, Any], None]:
    def connect(dbapi_connection: Any, connection_record: Any) -> None:
        # The sqlite3 module begins transactions implicitly, late and never
        # IMMEDIATE; turning that off lets _sqlite_begin do it instead.
        dbapi_connection.isolation_level = None

        # The busy timeout first, so that the pragmas below wait for locks.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_ms(busy_timeout)}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return connect


def _use_wal(cursor: Any) -> None:
    # WAL mode is a property of the file, kept once set, so this switches
    # only a new file. Connections switching one at once race for its lock
    # and SQLite refuses the losers at once (no busy wait) rather than risk
    # a deadlock: they look again, and try again after a pause. The pause
    # blocks the event loop, but only servers migrating a brand-new file
    # together ever get here.
    for attempt in range(20):
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0].lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.01 * (attempt + 1))


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads, then writes, fails with
    # SQLITE_BUSY if another connection wrote in between; IMMEDIATE takes
    # the write lock up front, waiting for it as long as busy_timeout.
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


# -- the store's base ---------------------------------------------------------


class SqlBase:
    """The engines of a SQL store and the transactions it runs on them.

    ``database_url`` is any URL :func:`normalize_url` accepts. The schema
    must have been brought to the latest migration with
    :func:`switchboard.store.migrate.upgrade`; :meth:`open` checks it.
    ``timeout`` and ``lock_timeout`` are those of :func:`make_engine`.
    """

    def __init__(
        self,
        database_url: str,
        *,
        timeout: float = STATEMENT_TIMEOUT,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.url = normalize_url(database_url)
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        self.sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        # SQLite serializes writers anyway; queueing them here spares them
        # polling for the lock. PostgreSQL locks rows instead.
        self._write_lock: asyncio.Lock | None = None

    async def open(self) -> None:
        # Imported here because migrate builds its engines with this module.
        from switchboard.store.migrate import head_revision

        # Connecting now also fails early on a wrong URL or password.
        engine = make_engine(
            self.url, timeout=self.timeout, lock_timeout=self.lock_timeout
        )
        try:
            async with engine.connect() as conn:
                current = await conn.run_sync(_schema_revision)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise _store_error(exc) from exc

        head = head_revision()
        if current != head:
            await engine.dispose()
            found = "empty" if current is None else f"at {current}"
            raise StoreError(f"schema is {found}, not at {head}; migrate first")

        self._engine = engine
        self._writer = for_writing(engine)
        # Created here rather than in __init__ to belong to the running loop.
        self._write_lock = asyncio.Lock() if self.sqlite else None

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._writer = None

    # -- transactions ----------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise StoreError("store is not open")
        try:
            async with self._engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise _store_error(exc) from exc

    async def _write(
        self,
        transaction: Callable[[AsyncConnection], Awaitable[T]],
        *,
        retry_duplicates: bool = False,
    ) -> T:
        """Run ``transaction`` in a write transaction and commit it.

        The transaction runs again from the start after a deadlock or a
        serialization failure, and, with ``retry_duplicates``, after a
        unique constraint violation: a concurrent transaction committed the
        same row, and the next run will see it.
        """
        if self._writer is None:
            raise StoreError("store is not open")
        lock = self._write_lock or contextlib.nullcontext()

        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with lock, self._writer.begin() as conn:
                    return await transaction(conn)
            except DBAPIError as exc:
                if attempt == ATTEMPTS or not _retryable(exc, retry_duplicates):
                    raise _store_error(exc) from exc
                logger.info("retrying transaction after %s", type(exc).__name__)
            except (SQLAlchemyError, OSError) as exc:
                raise _store_error(exc) from exc

        raise AssertionError("unreachable")  # pragma: no cover (loop returns)

    async def _write_asyncpg(
        self,
        transaction: Callable[[Any], Awaitable[T]],
        *,
        retry_duplicates: bool = False,
    ) -> T:
        """Like :meth:`_write`, on the pooled connection's asyncpg connection.

        PostgreSQL only, for the hottest transaction: asyncpg runs its own
        prepared statements, without SQLAlchemy compiling statements or
        bridging each one through a greenlet, which cost several times the
        driver's own CPU. ``transaction`` gets an ``asyncpg.Connection``.
        """
        if self._engine is None:
            raise StoreError("store is not open")

        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._engine.connect() as conn:
                    return await _run_asyncpg(conn, transaction)
            except ASYNCPG_ERRORS as exc:
                if attempt == ATTEMPTS or not _retryable(exc, retry_duplicates):
                    raise _store_error(exc) from exc
                logger.info("retrying transaction after %s", type(exc).__name__)
            except (SQLAlchemyError, OSError) as exc:
                raise _store_error(exc) from exc

        raise AssertionError("unreachable")  # pragma: no cover (loop returns)

    def _upsert(self, table: Any) -> postgresql.Insert | sqlite.Insert:
        if self.sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)


# -- errors -------------------------------------------------------------------


def _schema_revision(connection: Connection) -> str | None:
    # None when there is no alembic_version table: nothing was migrated.
    return MigrationContext.configure(connection).get_current_revision()


async def _run_asyncpg(
    conn: AsyncConnection, transaction: Callable[[Any], Awaitable[T]]
) -> T:
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None  # None only once the connection is closed
    try:
        async with raw.transaction():
            return await transaction(raw)
    finally:
        # SQLAlchemy knows nothing of this transaction, so it would not roll
        # back one left open (by a cancellation during the rollback, say);
        # such a connection, or a dead one, must not go back to the pool.
        if raw.is_closed() or raw.is_in_transaction():
            await conn.invalidate()


def _retryable(exc: Exception, duplicates: bool) -> bool:
    sqlstate = _sqlstate(exc)
    if duplicates and (isinstance(exc, IntegrityError) or sqlstate == UNIQUE_VIOLATION):
        return True
    return sqlstate in RETRY_SQLSTATES


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, raised directly or wrapped."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig  # type: ignore[assignment]
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


def _store_error(exc: BaseException) -> StoreError:
    # The driver's message may hold values from the query: it goes to the
    # log with the chained exception, not into our message.
    if _timed_out(exc):
        return StoreError("the database timed out")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreError("lost the connection to the database")
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError):
        # asyncpg's "connection is closed", "another operation is in
        # progress"...: the connection is unusable, as when it is lost.
        return StoreError("lost the connection to the database")
    if isinstance(exc, OSError):
        return StoreError(f"cannot reach the database: {exc.strerror or exc}")
    if not isinstance(exc, DBAPIError | asyncpg.PostgresError | ValueError):
        return StoreError(f"database error: {type(exc).__name__}")

    # The SQLSTATE says what went wrong without saying on what data. Class
    # 22 (data exception) is a value the database cannot store, such as a
    # NUL character in text on PostgreSQL: retrying cannot help, but the
    # other rows of a batch may be fine on their own. asyncpg's own
    # DataError (a ValueError) is a value it cannot encode.
    sqlstate = _sqlstate(exc)
    if (sqlstate or "").startswith("22") or isinstance(exc, DataError | ValueError):
        detail = f" ({sqlstate})" if sqlstate else ""
        return InvalidInput(f"the database refused a value{detail}")
    if sqlstate:
        return StoreError(f"database error: {type(exc).__name__} ({sqlstate})")
    return StoreError(f"database error: {type(exc).__name__}")


def _timed_out(exc: BaseException) -> bool:
    """Did a timeout of ours end the call, rather than a failure?"""
    # The pool's, asyncpg's (a builtin TimeoutError), PostgreSQL's, and
    # SQLite's busy timeout, which ends with SQLITE_BUSY (5, or an extended
    # code whose low byte is 5).
    if isinstance(exc, PoolTimeout | TimeoutError):
        return True
    if _sqlstate(exc) in TIMEOUT_SQLSTATES:
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == SQLITE_BUSY


def _ms(seconds: float) -> int:
    """Convert a duration to whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))
