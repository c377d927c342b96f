"""A server whose liveness lapsed gets its users back, with what they missed."""

from __future__ import annotations

import asyncio

import redis

from tests.cluster.conftest import ClusterClients
from tests.harness import AppServer


async def test_a_lapsed_liveness_key_is_healed_and_nothing_is_lost(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    a, b = two_servers
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a)
    conv = (await customer.start())["id"]
    await customer.receive("assigned")

    # As if A's event loop had stalled past its TTL: the key is gone, and
    # the next lookup from B drops every address of A's users.
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.delete(f"{prefix}server:{{{customer.welcome['server']}}}")
    finally:
        admin.close()
    await agent.send(conv, "sent while A looked dead")
    await agent.send(conv, "and one more")

    # A notices at its next liveness refresh, publishes its addresses
    # again and tells its clients to catch up.
    async with asyncio.timeout(20):
        while len(customer.messages.get(conv, {})) < 2:
            await customer.receive("message")
    assert customer.bodies(conv) == ["sent while A looked dead", "and one more"]

    await agent.send(conv, "live again")
    await customer.receive("message", body="live again")
