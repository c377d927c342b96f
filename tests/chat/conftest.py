"""A real app server (standalone: SQLite, in-process address book)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from switchboard.client import Client
from tests.harness import AppServer, agent_token, make_agents, prepare_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    asyncio.run(prepare_database(url))
    return url


@pytest.fixture
def agent_ids(sqlite_url: str) -> list[int]:
    return asyncio.run(make_agents(sqlite_url, 3, capacity=5))


@pytest.fixture
def server_factory(
    sqlite_url: str, tmp_path: Path
) -> Iterator[Callable[..., AppServer]]:
    started: list[AppServer] = []

    def start(**env: str) -> AppServer:
        server = AppServer(sqlite_url, tmp_path, env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., AppServer], agent_ids: list[int]) -> AppServer:
    return server_factory()


class Clients:
    """Opens clients and closes them all at the end of the test."""

    def __init__(self, server: AppServer) -> None:
        self.server = server
        self.opened: list[Client] = []

    async def customer(self, **options: object) -> Client:
        client = await Client.connect(self.server.ws_url, **options)  # type: ignore[arg-type]
        self.opened.append(client)
        return client

    async def agent(self, agent_id: int, **options: object) -> Client:
        return await self.customer(token=agent_token(agent_id), **options)


@pytest.fixture
async def clients(server: AppServer) -> AsyncIterator[Clients]:
    made = Clients(server)
    yield made
    for client in made.opened:
        await client.close()
