"""Routing: previous agent, least loaded, the queue, capacity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from switchboard.client import Client
from tests.chat.conftest import Clients, Cluster, Server
from tests.harness import (
    agent_token,
    assignments,
    make_agents,
    until_status,
)


@pytest.fixture
def single_seat_agents(db_url: str) -> list[int]:
    """Two online agents with room for one chat each.

    Made before the servers start, so that their status boards know them.
    """
    return asyncio.run(make_agents(db_url, 2, capacity=1))


# Housekeeping drains the queue too, once per heartbeat period. With the
# period longer than any wait in these tests, only the change that made
# room can assign a waiting chat.
SLOW_SWEEP = {
    "SWITCHBOARD_HEARTBEAT_INTERVAL": "60",
    "SWITCHBOARD_HEARTBEAT_TIMEOUT": "180",
}


@pytest.fixture
def seat_server(
    server_factory: Callable[..., Server], single_seat_agents: list[int]
) -> Server:
    return server_factory(**SLOW_SWEEP)


@pytest.fixture
async def seats(seat_server: Server) -> AsyncIterator[Clients]:
    """Clients of servers whose queue drains only when room appears."""
    async with Clients(seat_server) as made:
        yield made


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


async def test_queue_positions_move_up_as_earlier_chats_are_assigned(
    single_seat_agents: list[int], seats: Clients
) -> None:
    customers = [await seats.customer() for _ in range(3)]
    for n, customer in enumerate(customers, 1):
        assert (await customer.start())["queue_position"] == n
    last = customers[2]
    await last.receive("queued", position=3)

    # One seat: the agent's arrival lets the first chat in, and each chat
    # the agent closes lets in the next, so the last customer moves up.
    agent_id = single_seat_agents[0]
    agent = await seats.agent(agent_id)
    for ahead, position in ((customers[0], 2), (customers[1], 1)):
        assigned = await ahead.receive("assigned", timeout=30)
        assert assigned["conversation"]["agent"]["id"] == agent_id
        await last.receive("queued", position=position, timeout=30)
        frame = {"type": "close", "conversation": ahead.conversation}
        await agent.request(frame, answer="closed")

    assigned = await last.receive("assigned", timeout=30)
    assert assigned["conversation"]["id"] == last.conversation


async def customer_away_from(clients: Clients, other: Client) -> Client:
    """A customer connected to another app server than ``other``, if any."""
    for _ in range(6):
        customer = await clients.customer()
        if not isinstance(clients.server, Cluster):
            return customer
        if customer.welcome["server"] != other.welcome["server"]:
            return customer
    raise AssertionError("every connection landed on one app server")


async def queue_behind(clients: Clients, agent_id: int) -> tuple[Client, int, Client]:
    """An agent whose only seat is taken, and a customer queued behind it.

    In a cluster the queued customer is on another server than the agent,
    so the server that sees the agent free up assigns a chat it does not
    hold a connection of.
    """
    agent = await clients.agent(agent_id)
    first = await clients.customer()
    conversation = (await first.start())["id"]
    await first.receive("assigned", timeout=30)

    # The start answers before its chat is routed; the queued frame comes
    # after, once routing has found no room.
    waiting = await customer_away_from(clients, agent)
    await waiting.start()
    await waiting.receive("queued", position=1)
    return agent, conversation, waiting


async def test_a_queued_chat_is_assigned_when_its_agent_closes_another(
    single_seat_agents: list[int], seats: Clients
) -> None:
    agent_id = single_seat_agents[0]
    agent, conv, waiting = await queue_behind(seats, agent_id)

    await agent.request({"type": "close", "conversation": conv}, answer="closed")
    assigned = await waiting.receive("assigned", timeout=30)
    assert assigned["conversation"]["agent"]["id"] == agent_id
    assert assigned["conversation"]["id"] == waiting.conversation


async def test_a_queued_chat_is_assigned_when_its_agent_transfers_another(
    single_seat_agents: list[int], seats: Clients
) -> None:
    first_id, second_id = single_seat_agents
    # The second agent is away: a transfer may still reach them, the
    # queue may not, so the waiting chat can only go to the first agent.
    second = await seats.agent(second_id)
    await second.send_frame({"type": "status", "status": "away"})
    await until_status(second, second_id, "away")
    agent, conv, waiting = await queue_behind(seats, first_id)

    frame = {"type": "transfer", "conversation": conv, "agent": second_id}
    await agent.request(frame, answer="transferred")
    assigned = await waiting.receive("assigned", timeout=30)
    assert assigned["conversation"]["agent"]["id"] == first_id
    assert assigned["conversation"]["id"] == waiting.conversation


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
