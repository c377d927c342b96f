"""Helpers for tests that talk to Redis: time, waiting, a server of our own.

``UNIT`` is the one time unit of these tests, in seconds. Every duration is a
multiple of it, with generous margins, so a slow machine can scale the whole
suite with ``SWITCHBOARD_TEST_UNIT`` instead of editing tests.

Tests that kill, pause or restart Redis, or count its commands, do it on a
:class:`RedisProcess` of their own, never on the shared server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio

from tests.conftest import free_port

__all__ = [
    "UNIT",
    "RedisProcess",
    "eventually",
    "own_redis",
    "random_prefix",
    "scrub",
]

UNIT = float(os.environ.get("SWITCHBOARD_TEST_UNIT", "0.2"))


def random_prefix() -> str:
    """A key and channel prefix that no other test uses."""
    return f"sbtest:{uuid.uuid4().hex[:12]}:"


async def scrub(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def eventually(check: Callable[[], bool], within: float = 25 * UNIT) -> None:
    """Wait until ``check()`` is true; fail if it is not ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition still false after {within:.1f} s")
        await asyncio.sleep(UNIT / 20)


class RedisProcess:
    """A throwaway redis-server on a free loopback port, without persistence.

    It keeps its port across :meth:`stop` and :meth:`start`, so that clients
    configured with :attr:`url` see a restart of the same server.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        log = (self.directory / "redis.log").open("ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                server,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                stdout=log,
                stderr=log,
            )  # fmt: skip
        finally:
            log.close()
        await self._wait_until_ready()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        # A stopped (paused) server only dies once it runs again.
        process.send_signal(signal.SIGCONT)
        process.kill()
        await process.wait()

    def pause(self) -> None:
        """Freeze the server: connections stay open, nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    async def _wait_until_ready(self) -> None:
        client = redis.asyncio.Redis.from_url(self.url, socket_timeout=UNIT)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except redis.RedisError:
                    await asyncio.sleep(UNIT / 4)
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        finally:
            await client.aclose()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A redis-server of the test's own, which it may kill, pause or count."""
    server = RedisProcess(tmp_path)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
