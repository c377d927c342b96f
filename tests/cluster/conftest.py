"""Two or more real app servers sharing one Redis and one PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
import redis

from switchboard.addressbook.redis import RedisAddressBook
from switchboard.client import Client
from tests.harness import AppServer, agent_token, make_agents, prepare_database

T = TypeVar("T")


# Addresses outlive the liveness key by far: their own expiry (the heartbeat
# timeout) is 30 times the server TTL, so an address gone within a few TTLs
# can only have been dropped because its server's liveness key lapsed.
LONG_EXPIRY = {
    "SWITCHBOARD_HEARTBEAT_INTERVAL": "1",
    "SWITCHBOARD_HEARTBEAT_TIMEOUT": "60",
    "SWITCHBOARD_SERVER_TTL": "2",
}


async def looked_up(redis_url: str, prefix: str, user: str) -> list[str]:
    """The user's addresses as any server's lookup sees them."""
    book = RedisAddressBook(redis_url, prefix=prefix)
    try:
        return (await book.lookup([user]))[user]
    finally:
        await book.close()


async def wait_until_async(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    timeout: float = 20,
) -> T:
    """Probe until ``check`` accepts what ``probe`` returned; return it."""
    async with asyncio.timeout(timeout):
        while not check(found := await probe()):
            await asyncio.sleep(0.1)
    return found


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
def scoped_redis(redis_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A Redis user allowed only this test's keys and channels.

    Yields its URL and its name. A test can then act on its own servers'
    connections alone (``CLIENT KILL ... USER``) or take their channels
    away, leaving everyone else on the same Redis alone. Ask for it before
    ``start_server``, so that the user outlives the servers using it.
    """
    user = f"{prefix.rstrip(':')}-user"
    password = secrets.token_hex(8)
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.acl_setuser(
            user,
            reset=True,
            enabled=True,
            passwords=[f"+{password}"],
            keys=[f"{prefix}*"],
            channels=[f"{prefix}*"],
            categories=["+@all"],
        )
        scheme, _, rest = redis_url.partition("://")
        yield f"{scheme}://{user}:{password}@{rest.rpartition('@')[2]}", user
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.fixture
def agent_ids(pg_url: str) -> list[int]:
    return asyncio.run(make_agents(pg_url, 3, capacity=5))


@pytest.fixture
def start_server(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., AppServer]]:
    started: list[AppServer] = []

    def start(redis: str | None = None, **env: str) -> AppServer:
        server = AppServer(
            pg_url, tmp_path, redis_url=redis or redis_url, redis_prefix=prefix, env=env
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
