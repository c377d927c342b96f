"""Two or more real app servers sharing one Redis and one PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from switchboard.client import Client
from tests.harness import AppServer, agent_token, make_agents, prepare_database


def _plain(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


@pytest.fixture
def pg_url(database_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"sb_cluster_{secrets.token_hex(4)}"
    admin = _plain(database_url)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    asyncio.run(prepare_database(url))
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted after."""
    value = f"sbt{secrets.token_hex(4)}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{value}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def agent_ids(pg_url: str) -> list[int]:
    return asyncio.run(make_agents(pg_url, 3, capacity=5))


@pytest.fixture
def start_server(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., AppServer]]:
    started: list[AppServer] = []

    def start(**env: str) -> AppServer:
        server = AppServer(
            pg_url, tmp_path, redis_url=redis_url, redis_prefix=prefix, env=env
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def two_servers(
    start_server: Callable[..., AppServer], agent_ids: list[int]
) -> tuple[AppServer, AppServer]:
    return start_server(), start_server()


class ClusterClients:
    def __init__(self) -> None:
        self.opened: list[Client] = []

    async def customer(self, server: AppServer, **options: object) -> Client:
        client = await Client.connect(server.ws_url, **options)  # type: ignore[arg-type]
        self.opened.append(client)
        return client

    async def agent(
        self, server: AppServer, agent_id: int, **options: object
    ) -> Client:
        return await self.customer(server, token=agent_token(agent_id), **options)


@pytest.fixture
async def clients() -> AsyncIterator[ClusterClients]:
    made = ClusterClients()
    yield made
    for client in made.opened:
        await client.close()
