"""Connections that stop heartbeating are closed and their addresses go."""

from __future__ import annotations

import asyncio

from tests.chat.conftest import Clients, Server, connections


async def test_silent_connection_is_closed_and_its_address_gone(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    watcher = await clients.agent(agent_ids[0])
    silent = await clients.agent(agent_ids[1], heartbeat=False)
    assert connections(server) == 2

    # The agent's presence on the board follows its address: it goes away
    # once the server gives up on the silent connection.
    async with asyncio.timeout(15):
        while True:
            frame = await watcher.receive("board")
            entry = {a["id"]: a for a in frame["agents"]}.get(agent_ids[1])
            if entry is not None and entry.get("connected") is False:
                break

    async with asyncio.timeout(5):
        await silent.wait_closed()
    assert connections(server) == 1


async def test_heartbeating_connection_stays_open(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer = await clients.customer()
    await customer.start()
    await asyncio.sleep(4)  # twice the test server's heartbeat timeout
    assert customer.connected
    await customer.request({"type": "ping"}, answer="pong")


async def test_welcome_announces_the_heartbeat(clients: Clients) -> None:
    customer = await clients.customer()
    assert customer.welcome["heartbeat"] == {"interval": 0.5, "timeout": 2.0}
