"""Fixtures for every test: the servers, free ports and the output folder.

``scripts/test`` exports ``REDIS_URL`` and ``DATABASE_URL``, starting
throwaway servers when the local ones are missing. A bare ``pytest`` falls
back to the local defaults. Either way an unreachable server fails the tests
that need it: a skip would let a broken setup pass unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import asyncpg
import pytest
import redis

__all__ = ["database_url", "free_port", "output_dir", "redis_url"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _fail_unreachable(variable: str, url: str, reason: str) -> None:
    pytest.fail(
        f"{variable}={url} is not reachable ({reason}); run scripts/test, "
        f"which starts the servers, or set {variable}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    reason = None
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = str(exc)
    finally:
        client.close()

    if reason is not None:
        _fail_unreachable("REDIS_URL", url, reason)
    return url


async def _connect(url: str) -> None:
    # asyncpg wants the plain scheme, without SQLAlchemy's "+asyncpg".
    scheme, sep, rest = url.partition("://")
    connection = await asyncpg.connect(f"{scheme.split('+')[0]}{sep}{rest}", timeout=5)
    await connection.close()


@pytest.fixture(scope="session")
def database_url() -> str:
    """A ``postgresql://`` URL of a database the tests may fill and empty."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    reason = None
    try:
        asyncio.run(_connect(url))
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__

    if reason is not None:
        _fail_unreachable("DATABASE_URL", url, reason)
    return url


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """``test-output/`` at the repository root, for screenshots and logs."""
    path = REPO_ROOT / "test-output"
    path.mkdir(exist_ok=True)
    return path
