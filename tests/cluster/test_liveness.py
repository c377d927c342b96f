"""Liveness: a fresh server id per start; a lapsed key healed, nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

import redis

from switchboard.addressbook import server_of
from tests.cluster.conftest import (
    LONG_EXPIRY,
    ClusterClients,
    looked_up,
    wait_until_async,
)
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


async def test_a_restarted_server_gets_a_fresh_server_id(
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    redis_url: str,
    prefix: str,
) -> None:
    # One app server on one port with one configuration, started three
    # times: after a clean stop and after SIGKILL.
    server = start_server(**LONG_EXPIRY)
    lives: list[str] = []
    users: list[str] = []
    for stop in (server.stop, server.kill, None):
        server_id = server.get("/healthz").json()["server"]
        assert server.get("/readyz").json()["server"] == server_id
        customer = await clients.customer(server)
        assert customer.welcome["server"] == server_id
        lives.append(server_id)
        users.append(customer.welcome["user"])
        if stop is not None:
            stop()
            server.start()

    assert len(set(lives)) == 3

    # Were an id reused, the new life's liveness key would vouch for the
    # addresses of the old one, which otherwise outlive the test by far.
    for user in users[:2]:
        await wait_until_async(
            partial(looked_up, redis_url, prefix, user), lambda found: not found
        )
    (address,) = await looked_up(redis_url, prefix, users[2])
    assert server_of(address) == lives[2]
