"""Real app servers for tests: subprocesses on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from switchboard.auth import TokenSigner, hash_password
from switchboard.store.migrate import upgrade
from switchboard.store.sql import SqlStore

if TYPE_CHECKING:
    from switchboard.client import Client

__all__ = [
    "SECRET",
    "AppServer",
    "assignments",
    "make_agents",
    "prepare_database",
    "until_board",
    "until_status",
]

SECRET = "test-secret-key"
# One hashed password for every test agent: Argon2 is slow on purpose.
PASSWORD = "correct horse"
_PASSWORD_HASH = hash_password(PASSWORD)

# Short heartbeats so that timeouts happen within a test; generous enough
# for a loaded two-core machine.
FAST = {
    "SWITCHBOARD_HEARTBEAT_INTERVAL": "0.5",
    "SWITCHBOARD_HEARTBEAT_TIMEOUT": "2",
    "SWITCHBOARD_SERVER_TTL": "2",
    "SWITCHBOARD_BOARD_INTERVAL": "0.1",
}


async def prepare_database(url: str) -> None:
    await upgrade(url)


async def make_agents(
    url: str, count: int, capacity: int = 5, online: bool = True
) -> list[int]:
    """Create agents a1..aN (online) and return their ids."""
    from switchboard.store import AgentStatus

    store = SqlStore(url)
    await store.open()
    try:
        ids = []
        for n in range(1, count + 1):
            agent = await store.create_agent(
                f"a{n}-{time.monotonic_ns()}", f"Agent {n}", _PASSWORD_HASH, capacity
            )
            if online:
                await store.set_agent_status(agent.id, AgentStatus.ONLINE)
            ids.append(agent.id)
        return ids
    finally:
        await store.close()


def agent_token(agent_id: int) -> str:
    return TokenSigner(SECRET).agent(agent_id)


def customer_token(external_id: str, name: str = "", email: str = "") -> str:
    return TokenSigner(SECRET).customer(external_id, name or external_id, email)


class AppServer:
    """``switchboard serve`` in a subprocess, stopped and reaped by the test."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        *,
        redis_url: str | None = None,
        redis_prefix: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        from tests.conftest import free_port

        self.database_url = database_url
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.port = port or free_port()
        self.env = {**FAST, **(env or {})}
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> AppServer:
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Start the process without waiting (start several, then wait)."""
        command = [
            sys.executable,
            "-m",
            "switchboard",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--secret-key",
            SECRET,
            "--no-migrate",
            "--log-level",
            "info",
        ]
        if self.redis_url:
            command += ["--redis-url", self.redis_url]
        env = {**os.environ, **self.env}
        if self.redis_prefix:
            env["SWITCHBOARD_REDIS_PREFIX"] = self.redis_prefix
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited early; log:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready; log:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=10, **options)


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def assignments(customers: list[Client], expected: int) -> Counter[int]:
    """Conversation id -> assigned frames seen, once ``expected`` arrived.

    Waits a little longer after that, so that a double assignment, which
    would arrive later, is seen too.
    """
    seen: Counter[int] = Counter()
    async with asyncio.timeout(30):
        while len(seen) < expected:
            await asyncio.sleep(0.1)
            for customer in customers:
                for frame in customer.drain():
                    if frame["type"] == "assigned":
                        seen[frame["conversation"]["id"]] += 1
    await asyncio.sleep(1.0)
    for customer in customers:
        for frame in customer.drain():
            if frame["type"] == "assigned":
                seen[frame["conversation"]["id"]] += 1
    return seen


async def until_board(watcher: Client, agent_id: int, **fields: Any) -> None:
    """Read board frames until ``agent_id``'s entry has ``fields``."""
    async with asyncio.timeout(10):
        while True:
            frame = await watcher.receive("board")
            entry = {a["id"]: a for a in frame["agents"]}.get(agent_id)
            if entry is not None and all(entry.get(k) == v for k, v in fields.items()):
                return


async def until_status(watcher: Client, agent_id: int, status: str) -> None:
    """Read board frames until ``agent_id`` shows ``status``."""
    await until_board(watcher, agent_id, status=status)
