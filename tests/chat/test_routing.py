"""Routing: previous agent, least loaded, the queue, capacity."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.chat.conftest import Clients, Server
from tests.harness import agent_token, assignments, until_status


def board(server: Server, agent_id: int) -> dict[int, dict[str, Any]]:
    agents = server.get(
        "/api/agents", headers={"Authorization": f"Bearer {agent_token(agent_id)}"}
    ).json()["agents"]
    return {a["id"]: a for a in agents}


async def test_new_chat_goes_to_the_least_loaded_agent(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    await clients.agent(first)
    for _ in range(2):
        customer = await clients.customer()
        await customer.start()
        assert (await customer.receive("assigned"))["conversation"]["agent"]["id"] == (
            first
        )

    await clients.agent(second)
    customer = await clients.customer()
    await customer.start()
    assigned = await customer.receive("assigned")
    assert assigned["conversation"]["agent"]["id"] == second
    assert assigned["reason"] == "least_loaded"


async def test_returning_customer_gets_the_previous_agent(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    agent = await clients.agent(first)
    customer = await clients.customer()
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    # A second chat makes the first agent the busier one.
    other = await clients.customer()
    await other.start()
    await other.receive("assigned")

    await clients.agent(second)
    await agent.request({"type": "close", "conversation": conv}, answer="closed")
    await customer.receive("closed")

    await customer.send(conv, "me again")
    assigned = await customer.receive("assigned")
    assert assigned["conversation"]["agent"]["id"] == first
    assert assigned["reason"] == "previous"


async def test_chats_wait_in_the_queue_and_see_their_position(
    clients: Clients, agent_ids: list[int]
) -> None:
    customers = [await clients.customer() for _ in range(3)]
    for n, customer in enumerate(customers, 1):
        info = await customer.start()
        assert info["state"] == "queued"
        assert info["queue_position"] == n

    await clients.agent(agent_ids[0])
    for customer in customers:
        assigned = await customer.receive("assigned")
        assert assigned["conversation"]["agent"]["id"] == agent_ids[0]


async def test_queue_positions_move_up(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    # Agent 1 with capacity for exactly one more chat than we start first.
    agent = await clients.agent(agent_ids[0])
    await agent.send_frame({"type": "status", "status": "away"})
    await until_status(agent, agent_ids[0], "away")
    customers = [await clients.customer() for _ in range(3)]
    for customer in customers:
        await customer.start()
    await customers[2].receive("queued", position=3)

    await agent.request({"type": "status", "status": "online"}, answer="board")
    for customer in customers:
        await customer.receive("assigned")


async def test_capacity_is_never_exceeded_under_concurrent_starts(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    for agent_id in agent_ids:
        await clients.agent(agent_id)
    capacity_total = 5 * len(agent_ids)

    customers = [await clients.customer() for _ in range(50)]
    infos = await asyncio.gather(*(c.start() for c in customers))
    assert len({info["id"] for info in infos}) == 50

    assigned = await assignments(customers, capacity_total)
    agents = board(server, agent_ids[0])
    assert all(a["open_chats"] <= a["capacity"] for a in agents.values())
    assert sum(a["open_chats"] for a in agents.values()) == capacity_total
    # Each conversation assigned once, and exactly as many as there is room.
    assert len(assigned) == capacity_total
    assert set(assigned.values()) == {1}


async def test_an_agent_without_a_connection_is_never_assigned(
    clients: Clients, agent_ids: list[int]
) -> None:
    agent = await clients.agent(agent_ids[0])
    await agent.close()
    customer = await clients.customer()
    info = await customer.start()
    assert info["state"] == "queued"
    await asyncio.sleep(1.0)
    assert not [f for f in customer.drain() if f["type"] == "assigned"]


async def test_connecting_never_changes_an_agents_chosen_status(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    agent = await clients.agent(agent_ids[0])
    await agent.send_frame({"type": "status", "status": "away"})
    await until_status(agent, agent_ids[0], "away")
    await agent.close()

    again = await clients.agent(agent_ids[0])
    snapshot = await again.receive("board", full=True)
    mine = next(a for a in snapshot["agents"] if a["id"] == agent_ids[0])
    assert mine["status"] == "away"
    assert board(server, agent_ids[0])[agent_ids[0]]["status"] == "away"


async def test_transfer_moves_the_chat_and_tells_everyone(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    one = await clients.agent(first)
    customer = await clients.customer()
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    two = await clients.agent(second)

    frame = {"type": "transfer", "conversation": conv, "agent": second}
    moved = await one.request(frame, answer="transferred")
    assert moved["conversation"]["agent"]["id"] == second
    assert (await customer.receive("transferred"))["from_agent"] == first
    await two.receive("transferred")

    await two.send(conv, "I'll take it from here")
    await customer.receive("message", body="I'll take it from here")
