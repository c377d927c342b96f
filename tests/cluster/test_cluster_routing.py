"""Routing stays atomic when requests race on different servers."""

from __future__ import annotations

import asyncio

import httpx

from switchboard.client import Client
from tests.cluster.conftest import ClusterClients
from tests.harness import AppServer, agent_token, assignments, until_status


def open_chats(server: AppServer, agent_id: int) -> dict[int, tuple[int, int]]:
    agents = httpx.get(
        f"{server.url}/api/agents",
        headers={"Authorization": f"Bearer {agent_token(agent_id)}"},
        timeout=10,
    ).json()["agents"]
    return {a["id"]: (a["open_chats"], a["capacity"]) for a in agents}


async def test_concurrent_starts_on_two_servers_never_overfill_an_agent(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
) -> None:
    a, b = two_servers
    for n, agent_id in enumerate(agent_ids):
        await clients.agent((a, b)[n % 2], agent_id)

    customers = [await clients.customer((a, b)[n % 2]) for n in range(50)]
    await asyncio.gather(*(c.start() for c in customers))
    assigned = await assignments(customers, 15)

    loads = open_chats(a, agent_ids[0])
    assert all(load <= capacity for load, capacity in loads.values())
    assert sum(load for load, _ in loads.values()) == 15
    assert len(assigned) == 15
    assert set(assigned.values()) == {1}


async def test_take_races_across_servers_assign_each_chat_once(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
) -> None:
    a, b = two_servers
    # Everyone away: every chat waits in the queue for an agent to take it.
    tabs: list[tuple[int, Client]] = []
    for agent_id in agent_ids:
        for server in (a, b):
            tab = await clients.agent(server, agent_id)
            tabs.append((agent_id, tab))
    for agent_id, tab in tabs[::2]:
        await tab.send_frame({"type": "status", "status": "away"})
        await until_status(tab, agent_id, "away")

    customers = [await clients.customer((a, b)[n % 2]) for n in range(50)]
    conversations = [(await c.start())["id"] for c in customers]

    # Every tab of every agent grabs every conversation at once.
    refs = 0
    for conv in conversations:
        for _, tab in tabs:
            refs += 1
            frame = {"type": "take", "conversation": conv, "ref": f"t{refs}"}
            await tab.send_frame(frame)

    # Each take is either refused with a stable code (the error carries its
    # ref) or assigns the conversation: refusals + assignments = attempts.
    errors: list[dict[str, object]] = []
    async with asyncio.timeout(60):
        while len(errors) < refs - 15:
            await asyncio.sleep(0.2)
            for _, tab in tabs:
                errors += [f for f in tab.drain() if f["type"] == "error"]
    assert {e["code"] for e in errors} <= {"bad_state", "at_capacity"}
    assert len({e["ref"] for e in errors}) == refs - 15
    assigned = await assignments(customers, 15)
    loads = open_chats(b, agent_ids[0])
    assert all(load == capacity for load, capacity in loads.values())
    assert len(assigned) == 15
    assert set(assigned.values()) == {1}
