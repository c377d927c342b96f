"""Real app servers for the chat suite, in two topologies.

Every chat test runs twice: against one standalone server (SQLite, the
in-process address book and backplane) and against two app servers sharing
Redis and PostgreSQL behind nginx, where consecutive connections land on
different servers. The behaviour must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.client import Client
from tests.cluster.conftest import pg_url, prefix  # noqa: F401 (fixtures)
from tests.harness import AppServer, agent_token, make_agents, prepare_database
from tests.nginx import Nginx


class Cluster:
    """Two app servers behind nginx, used where a test uses one server."""

    def __init__(self, servers: list[AppServer], front: Nginx) -> None:
        self.servers = servers
        self.front = front
        # Only a standalone server can be killed and restarted by a test;
        # a cluster's crashes are tested in tests/cluster.
        self.process = None

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def ws_url(self) -> str:
        return self.front.ws_url

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=10, **options)

    def connections(self) -> int:
        return sum(s.get("/healthz").json()["connections"] for s in self.servers)

    def stop(self) -> None:
        self.front.stop()
        for server in self.servers:
            server.stop()


Server = AppServer | Cluster


def connections(server: Server) -> int:
    """Live connections across every app server of ``server``."""
    if isinstance(server, Cluster):
        return server.connections()
    count: int = server.get("/healthz").json()["connections"]
    return count


@pytest.fixture(params=["standalone", "cluster"])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(topology: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if topology == "cluster":
        return str(request.getfixturevalue("pg_url"))
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    asyncio.run(prepare_database(url))
    return url


@pytest.fixture
def agent_ids(db_url: str) -> list[int]:
    return asyncio.run(make_agents(db_url, 3, capacity=5))


@pytest.fixture
def server_factory(
    topology: str, db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**env: str) -> Server:
        if topology == "standalone":
            server: Server = AppServer(db_url, tmp_path, env=env).start()
        else:
            redis_url = str(request.getfixturevalue("redis_url"))
            key_prefix = str(request.getfixturevalue("prefix"))
            backends = [
                AppServer(
                    db_url,
                    tmp_path,
                    redis_url=redis_url,
                    redis_prefix=key_prefix,
                    env=env,
                )
                for _ in range(2)
            ]
            # Both boot at once; on two cores that halves the wait.
            for backend in backends:
                backend.launch()
            for backend in backends:
                backend.wait_ready()
            front = Nginx([s.port for s in backends], tmp_path / "nginx")
            server = Cluster(backends, front)
            started.append(server)
            front.start()
            return server
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., Server], agent_ids: list[int]) -> Server:
    return server_factory()


class Clients:
    """Opens clients and closes them all at the end of the test."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.opened: list[Client] = []

    async def customer(self, **options: Any) -> Client:
        client = await Client.connect(self.server.ws_url, **options)
        self.opened.append(client)
        return client

    async def agent(self, agent_id: int, **options: Any) -> Client:
        return await self.customer(token=agent_token(agent_id), **options)

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self.opened:
            await client.close()


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[Clients]:
    async with Clients(server) as made:
        yield made
