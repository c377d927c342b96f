"""Chatting: delivery to every tab, resume, dedupe, persistence."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
import websockets

from switchboard.client import Client
from tests.chat.conftest import Clients, Server
from tests.harness import AppServer, agent_token, until_status


async def start_chat(clients: Clients, agent_id: int) -> tuple[Client, Client, int]:
    """One agent and one customer whose new chat is assigned to that agent."""
    agent = await clients.agent(agent_id)
    customer = await clients.customer(name="Dana")
    conversation = await customer.start()
    assigned = await customer.receive("assigned")
    assert assigned["conversation"]["agent"]["id"] == agent_id
    await agent.receive("assigned")
    return agent, customer, conversation["id"]


async def test_customer_and_agent_chat_both_ways(
    clients: Clients, agent_ids: list[int]
) -> None:
    agent, customer, conv = await start_chat(clients, agent_ids[0])

    seq = await customer.send(conv, "Where is my order?")
    heard = await agent.receive("message")
    assert (heard["seq"], heard["body"], heard["sender_name"]) == (
        seq,
        "Where is my order?",
        "Dana",
    )

    await agent.send(conv, "It ships today.")
    reply = await customer.receive("message", body="It ships today.")
    assert reply["seq"] == seq + 1
    assert reply["sender"] == f"a:{agent_ids[0]}"


async def test_every_tab_sees_every_message_once_and_in_order(
    clients: Clients, agent_ids: list[int]
) -> None:
    agent, first, conv = await start_chat(clients, agent_ids[0])
    token = first.token
    tabs = [first] + [await clients.customer(token=token) for _ in range(2)]
    for tab in tabs[1:]:
        await tab.start()
    agent_tabs = [agent, await clients.agent(agent_ids[0])]
    await agent_tabs[1].join(conv)
    # Only live delivery counts: forget what the starts and join replayed.
    for tab in tabs + agent_tabs:
        tab.arrivals.pop(conv, None)

    expected = []
    for n in range(10):
        sender = tabs[n % 3] if n % 2 == 0 else agent_tabs[n % 2 - 1]
        body = f"message {n}"
        await sender.send(conv, body)
        expected.append(body)

    async with asyncio.timeout(10):
        for tab in tabs + agent_tabs:
            while len(tab.messages.get(conv, {})) < len(expected):
                await tab.receive("message")
    await asyncio.sleep(0.5)  # a duplicate would arrive late
    for tab in tabs + agent_tabs:
        assert tab.bodies(conv) == expected
        # Each seq arrived once, in order: no repeat, no gap-filling replay.
        assert tab.arrivals[conv] == list(range(1, 11))


async def test_typing_read_and_assigned_frames_reach_every_tab(
    clients: Clients, agent_ids: list[int]
) -> None:
    # The agent is away until both sides have two tabs open, so that the
    # assignment happens with every tab there to see it.
    agent_id = agent_ids[0]
    agent_tabs = [await clients.agent(agent_id) for _ in range(2)]
    await agent_tabs[0].send_frame({"type": "status", "status": "away"})
    await until_status(agent_tabs[0], agent_id, "away")
    first = await clients.customer()
    conv = (await first.start())["id"]
    second = await clients.customer(token=first.token)
    assert (await second.start())["id"] == conv
    customer_tabs = [first, second]
    customer, agent = first.welcome["user"], f"a:{agent_id}"

    await agent_tabs[0].send_frame({"type": "status", "status": "online"})
    for tab in customer_tabs + agent_tabs:
        assigned = await tab.receive("assigned")
        assert assigned["conversation"]["id"] == conv
        assert assigned["conversation"]["agent"]["id"] == agent_id

    # Typing goes to the other side's tabs, whichever tab typed.
    frame = {"type": "typing", "conversation": conv, "active": True}
    await agent_tabs[1].send_frame(frame)
    for tab in customer_tabs:
        typing = await tab.receive("typing")
        assert (typing["conversation"], typing["user"]) == (conv, agent)
        assert typing["active"] is True
    await second.send_frame({**frame, "active": False})
    for tab in agent_tabs:
        typing = await tab.receive("typing")
        assert (typing["conversation"], typing["user"]) == (conv, customer)
        assert typing["active"] is False

    # A read cursor moved in one tab reaches every tab of both sides.
    seq = await agent_tabs[0].send(conv, "Anything else?")
    await second.send_frame({"type": "read", "conversation": conv, "seq": seq})
    for tab in agent_tabs + customer_tabs:
        read = await tab.receive("read", user=customer)
        assert (read["conversation"], read["seq"]) == (conv, seq)


async def test_resume_replays_exactly_the_missed_messages(
    clients: Clients, agent_ids: list[int]
) -> None:
    agent, customer, conv = await start_chat(clients, agent_ids[0])
    await customer.send(conv, "one")
    await agent.send(conv, "two")
    await customer.receive("message", body="two")

    await customer.close()
    await agent.send(conv, "three")
    await agent.send(conv, "four")

    again = await clients.customer(token=customer.token)
    await again.start(after_seq=2)
    assert sorted(again.messages[conv]) == [3, 4]
    assert again.bodies(conv) == ["three", "four"]


async def test_resent_message_is_stored_once(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    _agent, customer, conv = await start_chat(clients, agent_ids[0])

    first = await customer.send(conv, "only once", client_id="fixed-id")
    again = await customer.send(conv, "only once", client_id="fixed-id")
    assert first == again

    # A different connection resending the same client id is deduped too.
    other = await clients.customer(token=customer.token)
    await other.start()
    assert await other.send(conv, "only once", client_id="fixed-id") == first

    stored = server.get(
        f"/api/conversations/{conv}/messages",
        headers={"Authorization": f"Bearer {agent_token(agent_ids[0])}"},
    ).json()["messages"]
    assert [m["body"] for m in stored] == ["only once"]


async def test_reload_resumes_the_same_conversation_with_history(
    clients: Clients, agent_ids: list[int]
) -> None:
    _agent, customer, conv = await start_chat(clients, agent_ids[0])
    await customer.send(conv, "before reload")
    await customer.close()

    reloaded = await clients.customer(token=customer.token)
    info = await reloaded.start(after_seq=0)
    assert info["id"] == conv
    assert info["agent"]["id"] == agent_ids[0]
    assert reloaded.bodies(conv) == ["before reload"]


async def send_through_a_kill(
    client: Client, conv: int, kill: Callable[[], None], after: int = 20
) -> tuple[dict[int, str], int]:
    """Keep sends in flight; SIGKILL the server as the ``after``-th ack lands.

    Returns the body of every message the client saw acknowledged, by seq
    (acks already on their way when the server died count too), and how
    many messages were sent in all.
    """
    bodies: list[str] = []

    async def keep_sending() -> None:
        with contextlib.suppress(ConnectionError, websockets.WebSocketException):
            while True:
                n = len(bodies)
                bodies.append(f"kept {n}")
                frame = {"type": "send", "conversation": conv, "client_id": f"k{n}"}
                await client.send_frame({**frame, "body": bodies[n]})
                await asyncio.sleep(0)  # let the acks in

    sender = asyncio.create_task(keep_sending())
    acks = []
    try:
        while len(acks) < after:
            acks.append(await client.receive("ack"))
        kill()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender

    await client.wait_closed()
    acks += [frame for frame in client.drain() if frame["type"] == "ack"]
    return {a["seq"]: bodies[int(a["client_id"][1:])] for a in acks}, len(bodies)


async def test_acknowledged_messages_survive_sigkill(
    agent_ids: list[int], server: Server
) -> None:
    if not isinstance(server, AppServer):
        pytest.skip("a cluster's crashes are tested in tests/cluster")
    customer = await Client.connect(server.ws_url, name="Eve")
    conv = (await customer.start())["id"]
    acked, sent = await send_through_a_kill(customer, conv, server.kill)
    await customer.close()
    assert len(acked) < sent  # some were in flight when the server died

    server.start()
    back = await Client.connect(server.ws_url, token=customer.token)
    try:
        await back.start(after_seq=0)
        kept = {seq: frame["body"] for seq, frame in back.messages[conv].items()}
        # Unacknowledged messages may or may not have been stored.
        lost = {seq: body for seq, body in acked.items() if kept.get(seq) != body}
        assert not lost
        assert len(set(kept.values())) == len(kept)
    finally:
        await back.close()


def test_health_answers_json(server: Server) -> None:
    response = server.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_a_user_over_the_connection_cap_loses_the_oldest(
    server_factory: Callable[..., Server], agent_ids: list[int]
) -> None:
    server = server_factory(SWITCHBOARD_MAX_ADDRESSES_PER_USER="2")
    first = await Client.connect(server.ws_url)
    tabs = [first]
    try:
        for _ in range(2):
            tabs.append(await Client.connect(server.ws_url, token=first.token))
        async with asyncio.timeout(10):
            await first.wait_closed()
        assert all(tab.connected for tab in tabs[1:])
    finally:
        for tab in tabs:
            await tab.close()
