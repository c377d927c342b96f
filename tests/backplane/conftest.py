"""Fixtures for the backplane tests.

``make_backplane`` runs each contract test twice, once per implementation.
A :class:`Recorder` plays one app server: it starts a backplane with its own
handlers and keeps what reaches them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from switchboard.backplane import Backplane
from switchboard.backplane.memory import MemoryBackplane
from switchboard.backplane.redis import RedisBackplane
from tests.backplane.support import UNIT, own_redis, random_prefix

__all__ = ["BackplaneFactory", "Recorder", "RedisBackplaneFactory", "own_redis"]

BackplaneFactory = Callable[..., Awaitable[Backplane]]
RedisBackplaneFactory = Callable[..., Awaitable[RedisBackplane]]


class Recorder:
    """The handlers of one app server, recording what they receive."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[bytes] = asyncio.Queue()
        self.statuses: asyncio.Queue[bytes] = asyncio.Queue()
        self.resyncs = 0
        # What ``ready`` said while each resync ran: it must say False.
        self.ready_during_resync: list[bool] = []
        self.fail_resyncs = 0
        self.backplane: Backplane | None = None

    async def start(self, backplane: Backplane, server_id: str) -> None:
        self.backplane = backplane
        await backplane.start(
            server_id, self.on_delivery, self.on_status, self.on_resync
        )

    async def on_delivery(self, payload: bytes) -> None:
        await self.deliveries.put(payload)

    async def on_status(self, payload: bytes) -> None:
        await self.statuses.put(payload)

    async def on_resync(self) -> None:
        assert self.backplane is not None
        self.resyncs += 1
        self.ready_during_resync.append(self.backplane.ready)
        if self.fail_resyncs:
            self.fail_resyncs -= 1
            raise RuntimeError("store unavailable")

    async def next_delivery(self) -> bytes:
        return await asyncio.wait_for(self.deliveries.get(), 25 * UNIT)

    async def next_status(self) -> bytes:
        return await asyncio.wait_for(self.statuses.get(), 25 * UNIT)


@pytest.fixture
def prefix() -> str:
    # Channels leave nothing behind in Redis, so there is nothing to scrub.
    return random_prefix()


@pytest.fixture
async def make_redis_backplane(
    redis_url: str, prefix: str
) -> AsyncIterator[RedisBackplaneFactory]:
    """Make Redis backplanes sharing one prefix, like a cluster's servers.

    ``url`` points a backplane at another server, such as ``own_redis``.
    Resubscription backs off over a few time units at most.
    """
    backplanes: list[RedisBackplane] = []

    async def make(url: str | None = None, **options: Any) -> RedisBackplane:
        options.setdefault("backoff_base", UNIT / 4)
        options.setdefault("backoff_cap", 2 * UNIT)
        backplane = RedisBackplane(url or redis_url, prefix=prefix, **options)
        backplanes.append(backplane)
        return backplane

    yield make
    for backplane in backplanes:
        await backplane.close()


@pytest.fixture(params=["memory", "redis"])
def make_backplane(request: pytest.FixtureRequest) -> BackplaneFactory:
    """Make backplanes of the implementation under test, not yet started."""
    if request.param == "redis":
        make: RedisBackplaneFactory = request.getfixturevalue("make_redis_backplane")
        return make

    # A memory backplane holds nothing that needs releasing.
    async def make_memory(**options: Any) -> MemoryBackplane:
        return MemoryBackplane(**options)

    return make_memory
