"""The status board: live, coalesced, pushed to agents only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from switchboard.client import Client
from tests.chat.conftest import Clients, Server
from tests.harness import agent_token


async def test_another_agents_status_change_reaches_the_board(
    clients: Clients, agent_ids: list[int]
) -> None:
    watcher = await clients.agent(agent_ids[0])
    other = await clients.agent(agent_ids[1])
    await other.send_frame({"type": "status", "status": "away"})

    async with asyncio.timeout(10):
        while True:
            frame = await watcher.receive("board")
            entry = {a["id"]: a for a in frame["agents"]}.get(agent_ids[1])
            if entry and entry.get("status") == "away":
                break


async def test_customers_never_get_the_board(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer = await clients.customer()
    await customer.start()
    agent = await clients.agent(agent_ids[0])
    await agent.request({"type": "status", "status": "away"}, answer="board")
    await asyncio.sleep(0.5)
    assert not [f for f in customer.drain() if f["type"] == "board"]


async def test_a_burst_of_changes_is_coalesced_into_a_few_pushes(
    server_factory: Callable[..., Server], agent_ids: list[int]
) -> None:
    # One push per second at most: a hundred changes made as fast as the
    # server takes them must arrive as a handful of frames.
    server = server_factory(SWITCHBOARD_BOARD_INTERVAL="1.0")
    watcher = await Client.connect(server.ws_url, token=agent_token(agent_ids[0]))
    actor = await Client.connect(server.ws_url, token=agent_token(agent_ids[1]))
    try:
        await asyncio.sleep(1.5)
        watcher.drain()

        for n in range(100):
            status = "away" if n % 2 == 0 else "online"
            await actor.send_frame({"type": "status", "status": status})
        await actor.send_frame({"type": "status", "status": "away"})

        final = None
        pushes = 0
        async with asyncio.timeout(20):
            while final != "away" or pushes == 0:
                frame = await watcher.receive("board")
                pushes += 1
                entry = {a["id"]: a for a in frame["agents"]}.get(agent_ids[1])
                final = entry["status"] if entry else final
            # Anything still in flight arrives within one interval.
            await asyncio.sleep(1.5)
        pushes += len([f for f in watcher.drain() if f["type"] == "board"])

        assert final == "away"
        assert pushes <= 10, pushes
    finally:
        await watcher.close()
        await actor.close()
