"""A Redis outage degrades the cluster; it never kills a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from switchboard.client import Client
from tests.backplane.support import RedisProcess
from tests.harness import AppServer, agent_token


async def test_servers_survive_a_redis_outage_and_recover(
    pg_url: str, agent_ids: list[int], tmp_path: Path
) -> None:
    redis_server = RedisProcess(tmp_path)
    await redis_server.start()
    servers = [
        AppServer(pg_url, tmp_path, redis_url=redis_server.url).start()
        for _ in range(2)
    ]
    a, b = servers
    opened: list[Client] = []
    try:
        remote_agent = await Client.connect(b.ws_url, token=agent_token(agent_ids[0]))
        customer = await Client.connect(a.ws_url)
        opened += [remote_agent, customer]
        conv = (await customer.start())["id"]
        await customer.receive("assigned")
        await customer.send(conv, "before")
        await remote_agent.receive("message", body="before")

        await redis_server.stop()

        # Local connections stay up and local work goes on: the message is
        # stored and acknowledged, and the customer's own tabs see it.
        seq = await customer.send(conv, "during the outage")
        assert seq == 2
        async with asyncio.timeout(30):
            while a.get("/healthz").json()["status"] != "degraded":
                await asyncio.sleep(0.2)
        assert a.get("/healthz").status_code == 200
        assert a.process is not None and a.process.poll() is None
        assert b.process is not None and b.process.poll() is None
        assert customer.connected and remote_agent.connected

        await redis_server.start()
        async with asyncio.timeout(60):
            for server in servers:
                while server.get("/readyz").status_code != 200:
                    await asyncio.sleep(0.2)

        # Redis came back empty; the servers published their addresses
        # again, so cross-server delivery works both ways.
        await remote_agent.join(conv, after_seq=1)
        assert remote_agent.bodies(conv) == ["before", "during the outage"]
        async with asyncio.timeout(30):
            while True:
                await remote_agent.send(conv, "back")
                try:
                    await customer.receive("message", timeout=2, body="back")
                    break
                except TimeoutError:
                    continue
        await customer.send(conv, "welcome back")
        await remote_agent.receive("message", body="welcome back")
    finally:
        for client in opened:
            await client.close()
        for server in servers:
            server.stop()
        await redis_server.stop()
