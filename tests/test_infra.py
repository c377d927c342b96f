"""The shared fixtures find the servers and give usable ports and folders."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import redis.asyncio

from tests.conftest import free_port


def test_free_port_can_be_bound() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_redis_url_answers_ping(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_database_url_is_a_postgresql_database(database_url: str) -> None:
    assert database_url.startswith(("postgresql://", "postgresql+asyncpg://"))

    dsn = database_url.replace("+asyncpg", "", 1)
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT 1") == 1
    finally:
        await connection.close()


def test_output_dir_is_the_ignored_test_output_folder(output_dir: Path) -> None:
    assert output_dir.name == "test-output"
    assert output_dir.is_dir()
    assert "test-output/" in (output_dir.parent / ".gitignore").read_text()
