"""Chatting across app servers: the backplane delivers, nothing is lost."""

from __future__ import annotations

import asyncio

from tests.cluster.conftest import ClusterClients
from tests.harness import AppServer


async def test_customer_on_one_server_and_agent_on_another_chat_both_ways(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
) -> None:
    a, b = two_servers
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a, name="Ana")
    conv = (await customer.start())["id"]
    assert (await customer.receive("assigned"))["conversation"]["agent"]["id"] == (
        agent_ids[0]
    )

    await customer.send(conv, "hello from A")
    assert (await agent.receive("message"))["body"] == "hello from A"
    await agent.send(conv, "hello from B")
    assert (await customer.receive("message", body="hello from B"))["seq"] == 2


async def test_tabs_on_both_servers_get_every_message_once_in_order(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
) -> None:
    a, b = two_servers
    agent_a = await clients.agent(a, agent_ids[0])
    first = await clients.customer(a)
    conv = (await first.start())["id"]
    await first.receive("assigned")
    tabs = [first, await clients.customer(b, token=first.token)]
    await tabs[1].start()
    agent_b = await clients.agent(b, agent_ids[0])
    await agent_b.join(conv)
    everyone = [*tabs, agent_a, agent_b]
    # Only live delivery counts: forget what the start and join replayed.
    for client in everyone:
        client.arrivals.pop(conv, None)

    expected = []
    for n in range(20):
        sender = [tabs[0], tabs[1], agent_a, agent_b][n % 4]
        await sender.send(conv, f"m{n}")
        expected.append(f"m{n}")

    async with asyncio.timeout(10):
        for client in everyone:
            while len(client.messages.get(conv, {})) < len(expected):
                await client.receive("message")
    await asyncio.sleep(0.5)  # a duplicate would arrive late
    for client in everyone:
        assert client.bodies(conv) == expected
        # Each seq arrived once, in order: no repeat, no gap-filling replay.
        assert client.arrivals[conv] == list(range(1, 21))


async def test_a_burst_of_long_messages_crosses_servers_whole(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
) -> None:
    # Stored as a few large batches: their deliveries to the other server
    # exceed one backplane payload and must be split, never dropped.
    a, b = two_servers
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a)
    conv = (await customer.start())["id"]
    await customer.receive("assigned")

    bodies = [f"{n:03d} " + "é" * 3990 for n in range(120)]
    for n, body in enumerate(bodies):
        frame = {"type": "send", "conversation": conv, "client_id": f"c{n}"}
        await customer.send_frame({**frame, "body": body})

    async with asyncio.timeout(60):
        while len(agent.messages.get(conv, {})) < len(bodies):
            await agent.receive("message")
    assert agent.bodies(conv) == bodies
