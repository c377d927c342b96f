"""Count the Redis commands of one test, by key prefix, with MONITOR.

MONITOR sees every command the server runs; keeping only those that mention
the test's own prefix leaves out anything else using the same Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

__all__ = ["Commands", "monitor"]


@dataclass
class Commands:
    seen: list[str] = field(default_factory=list)

    def named(self, name: str) -> list[str]:
        return [c for c in self.seen if c.split(" ", 1)[0].upper() == name]

    def publishes_to(self, channel_part: str) -> list[str]:
        return [c for c in self.named("PUBLISH") if channel_part in c.split(" ")[1]]


@contextlib.asynccontextmanager
async def monitor(redis_url: str, prefix: str) -> AsyncIterator[Commands]:
    found = Commands()
    client = aioredis.Redis.from_url(redis_url)
    started = asyncio.Event()

    async def listen() -> None:
        async with client.monitor() as stream:
            started.set()
            async for entry in stream.listen():
                command = str(entry.get("command", ""))
                if prefix in command:
                    found.seen.append(command)

    task = asyncio.create_task(listen())
    await asyncio.wait_for(started.wait(), 5)
    # MONITOR starts streaming once the server has answered OK; a round
    # trip on another connection makes sure that has happened.
    await asyncio.sleep(0.2)
    try:
        yield found
        await asyncio.sleep(0.3)  # let the last commands arrive
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.aclose()
