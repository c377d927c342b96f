"""An agent reopens a closed conversation and takes it in one step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard.client import Client, ClientError
from tests.chat.conftest import Clients
from tests.harness import until_board


async def until_open_chats(watcher: Client, agent_id: int, count: int) -> None:
    """Read board frames until ``agent_id`` shows ``count`` open chats."""
    await until_board(watcher, agent_id, open_chats=count)


async def closed_chat(clients: Clients, agent: Client) -> tuple[Client, int]:
    """A customer whose chat ``agent`` had and closed."""
    customer = await clients.customer()
    conv = int((await customer.start())["id"])
    await customer.receive("assigned")
    # Consumed here, so that no later request takes it for its answer.
    await agent.receive("assigned")
    await agent.request({"type": "close", "conversation": conv}, answer="closed")
    await customer.receive("closed")
    return customer, conv


def reopen(conv: int) -> dict[str, Any]:
    return {"type": "reopen", "conversation": conv}


async def test_agent_reopens_a_closed_chat_and_every_tab_hears_it(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    closer = await clients.agent(first)
    customer, conv = await closed_chat(clients, closer)
    customer_too = await clients.customer(token=customer.token)
    agent = await clients.agent(second)
    agent_too = await clients.agent(second)

    assigned = await agent.request(reopen(conv), answer="assigned")
    assert assigned["reason"] == "reopen"
    assert assigned["conversation"]["id"] == conv
    assert assigned["conversation"]["state"] == "open"
    assert assigned["conversation"]["agent"]["id"] == second

    # Every tab of both sides learns it, and the board counts the chat.
    for tab in (customer, customer_too, agent_too):
        heard = await tab.receive("assigned", reason="reopen")
        assert heard["conversation"]["agent"]["id"] == second
    await until_open_chats(closer, second, 1)

    # The chat goes on as any open one.
    await agent.send(conv, "I have reopened your chat")
    await customer.receive("message", body="I have reopened your chat")
    await customer.send(conv, "Thank you")
    await agent.receive("message", body="Thank you")


async def test_reopen_is_refused_unless_an_agent_asks_for_a_closed_chat(
    clients: Clients, agent_ids: list[int]
) -> None:
    agent = await clients.agent(agent_ids[0])
    customer = await clients.customer()
    conv = int((await customer.start())["id"])
    await customer.receive("assigned")
    # Consumed here, so that no request below takes it for its answer.
    await agent.receive("assigned")

    refusals = [
        (agent, reopen(conv), "bad_state"),  # open, not closed
        (agent, reopen(10**9), "not_found"),
        (customer, reopen(conv), "forbidden"),
    ]
    for client, frame, code in refusals:
        with pytest.raises(ClientError) as caught:
            await client.request(frame, answer="assigned")
        assert caught.value.code == code

    await agent.request({"type": "close", "conversation": conv}, answer="closed")
    await customer.receive("closed")
    with pytest.raises(ClientError) as caught:
        await customer.request(reopen(conv), answer="assigned")
    assert caught.value.code == "forbidden"


async def test_two_agents_reopening_at_once_assign_the_chat_once(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    one = await clients.agent(first)
    customer, conv = await closed_chat(clients, one)
    two = await clients.agent(second)

    answers = await asyncio.gather(
        one.request(reopen(conv), answer="assigned"),
        two.request(reopen(conv), answer="assigned"),
        return_exceptions=True,
    )
    won = [a for a in answers if isinstance(a, dict)]
    lost = [a for a in answers if isinstance(a, ClientError)]
    assert len(won) == 1
    assert [error.code for error in lost] == ["bad_state"]

    winner = won[0]["conversation"]["agent"]["id"]
    heard = await customer.receive("assigned", reason="reopen")
    assert heard["conversation"]["agent"]["id"] == winner
    info = await customer.join(conv)
    assert (info["state"], info["agent"]["id"]) == ("open", winner)


async def test_an_agent_at_capacity_cannot_reopen_and_nothing_changes(
    clients: Clients, agent_ids: list[int]
) -> None:
    first, second = agent_ids[:2]
    closer = await clients.agent(first)
    customer, conv = await closed_chat(clients, closer)
    await closer.close()

    # The agents of this suite take five chats each.
    full = await clients.agent(second)
    chats = []
    for _ in range(5):
        other = await clients.customer()
        chats.append(int((await other.start())["id"]))
        await other.receive("assigned")
        await full.receive("assigned")

    with pytest.raises(ClientError) as caught:
        await full.request(reopen(conv), answer="assigned")
    assert caught.value.code == "at_capacity"
    assert (await customer.join(conv))["state"] == "closed"

    # One chat closed makes room, and the reopen goes through.
    await full.request({"type": "close", "conversation": chats[0]}, answer="closed")
    assigned = await full.request(reopen(conv), answer="assigned")
    assert assigned["conversation"]["agent"]["id"] == second
