"""Several stores on one database, as several app servers would have.

On PostgreSQL each store has its own engine and connection pool, so the
transactions really overlap; on SQLite they take turns at the file lock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable

from switchboard.store import Agent, ConversationState, NewMessage
from switchboard.store.sql import SqlStore

from .test_sql import make_agent, make_conversation, text


async def check_open_chats(store: SqlStore, agents: list[Agent]) -> None:
    """Each agent's open_chats equals its OPEN conversations, within capacity."""
    opened = await store.conversations(states=[ConversationState.OPEN], limit=1000)
    held = Counter(conversation.agent_id for conversation in opened)
    for agent in agents:
        current = await store.agent(agent.id)
        assert current.open_chats == held[agent.id]
        assert current.open_chats <= current.capacity


async def test_concurrent_assigns_never_exceed_capacity_nor_double_assign(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    agents = [await make_agent(store, f"agent{n}", capacity=3) for n in range(4)]
    candidates = [agent.id for agent in agents]
    conversations = [await make_conversation(store) for _ in range(25)]

    # 50 calls: every conversation is routed twice at once, by two servers.
    calls = [
        server.assign(conversation.id, candidates, None)
        for conversation, server in zip(
            conversations * 2, itertools.cycle(stores), strict=False
        )
    ]
    results = await asyncio.gather(*calls)

    assignments = [result for result in results if result is not None]
    assert len(assignments) == 12  # four agents, three chats each
    assigned = Counter(assignment.conversation_id for assignment in assignments)
    assert max(assigned.values()) == 1
    for assignment in assignments:
        conversation = await store.conversation(assignment.conversation_id)
        assert conversation.agent_id == assignment.agent_id
        assert len(await store.history(conversation.id)) == 1
    await check_open_chats(store, agents)
    assert len(await store.queue()) == 25 - 12


async def test_one_conversation_routed_by_every_server_at_once_is_assigned_once(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    agents = [await make_agent(store, f"agent{n}", capacity=5) for n in range(3)]
    candidates = [agent.id for agent in agents]
    conversation = await make_conversation(store)

    calls = [
        server.assign(conversation.id, candidates, prefer=None)
        for server in stores * 17
    ]
    results = await asyncio.gather(*calls)

    assert sum(result is not None for result in results) == 1
    await check_open_chats(store, agents)


async def test_racing_takes_transfers_and_closes_keep_counts_exact(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    ada, bob, cyd = [
        await make_agent(store, login, capacity=3) for login in ("ada", "bob", "cyd")
    ]
    conversations = [await make_conversation(store) for _ in range(6)]
    servers = itertools.cycle(stores)

    # Everyone grabs every conversation; each is taken once.
    taken = await asyncio.gather(
        *(
            next(servers).take(conversation.id, agent.id)
            for conversation in conversations
            for agent in (ada, bob, cyd)
        )
    )
    assert sum(result is not None for result in taken) == 6
    await check_open_chats(store, [ada, bob, cyd])

    # Each holder closes and transfers each chat at once: one of the two wins.
    calls: list[Awaitable[object]] = []
    for conversation in conversations:
        holder = (await store.conversation(conversation.id)).agent_id
        assert holder is not None
        other = next(a.id for a in (ada, bob, cyd) if a.id != holder)
        calls.append(next(servers).close_conversation(conversation.id, holder))
        calls.append(next(servers).transfer(conversation.id, holder, other))
    results = await asyncio.gather(*calls)

    for closed, transferred in zip(results[::2], results[1::2], strict=True):
        assert bool(closed) != (transferred is not None)
    await check_open_chats(store, [ada, bob, cyd])


async def test_concurrent_appends_leave_no_gap_and_no_duplicate(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    conversation = await make_conversation(store)

    # Each server sends 20 batches of 5; the first two servers send the same
    # client ids, as a client resending through another server would.
    def batches(server: int) -> list[list[NewMessage]]:
        prefix = "shared" if server < 2 else "own"
        return [
            [text(conversation.id, f"{prefix}-{b}-{m}") for m in range(5)]
            for b in range(20)
        ]

    calls = [
        server.append(batch)
        for number, server in enumerate(stores)
        for batch in batches(number)
    ]
    results = await asyncio.gather(*calls)

    messages = await store.messages(conversation.id, limit=1000)
    assert [message.seq for message in messages] == list(range(1, 201))
    assert len({message.client_id for message in messages}) == 200
    assert (await store.conversation(conversation.id)).last_seq == 200

    # Both copies of a shared message agree on its seq; one of them is new.
    by_client_id = {message.client_id: message.seq for message in messages}
    returned = [message for batch in results for message in batch]
    assert all(m.seq == by_client_id[m.client_id] for m in returned)
    assert sum(message.new for message in returned) == 200


async def test_tabs_starting_a_chat_on_every_server_at_once_share_one_conversation(
    stores: list[SqlStore],
) -> None:
    customer = await stores[0].create_visitor("Visitor", "")

    # 20 tabs of one customer, spread over three servers.
    servers = itertools.islice(itertools.cycle(stores), 20)
    results = await asyncio.gather(
        *(server.latest_or_create_conversation(customer.id) for server in servers)
    )

    assert len({conversation.id for conversation, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(await stores[0].conversations()) == 1
