"""The store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.errors import InvalidInput, NotFound, StoreError
from switchboard.store import (
    Agent,
    AgentStatus,
    Context,
    Conversation,
    ConversationState,
    NewMessage,
    Store,
)
from switchboard.store.migrate import make_migration_engine, upgrade
from switchboard.store.sql import SqlStore, for_writing, make_engine
from tests.backplane.support import UNIT

from .conftest import asyncpg_dsn

# The smallest pause that time.time() surely tells apart, for ordering by
# last_assigned_at.
TICK = 0.01


async def make_agent(
    store: SqlStore,
    login: str,
    capacity: int = 2,
    status: AgentStatus = AgentStatus.ONLINE,
) -> Agent:
    agent = await store.create_agent(login, login.title(), "hash", capacity)
    if status != agent.status:
        agent = await store.set_agent_status(agent.id, status)
    return agent


async def make_conversation(store: SqlStore) -> Conversation:
    customer = await store.create_visitor("Visitor", "")
    return await store.create_conversation(customer.id)


def text(conversation_id: int, client_id: str, sender: str = "c:1") -> NewMessage:
    return NewMessage(conversation_id, client_id, sender, "text", f"body {client_id}")


# -- agents -------------------------------------------------------------------


async def test_created_agent_is_found_by_login_with_its_password_hash(
    store: SqlStore,
) -> None:
    agent = await store.create_agent("ada", "Ada", "secret-hash", 3)

    assert await store.agent_by_login("ada") == (agent, "secret-hash")
    assert await store.agent_by_login("nobody") is None
    assert await store.agent(agent.id) == agent
    assert (agent.open_chats, agent.capacity, agent.last_assigned_at) == (0, 3, None)


async def test_duplicate_login_raises_store_error(store: SqlStore) -> None:
    await store.create_agent("ada", "Ada", "hash", 3)

    with pytest.raises(StoreError, match="taken"):
        await store.create_agent("ada", "Another Ada", "hash", 3)
    assert len(await store.agents()) == 1


async def test_missing_agent_raises_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.agent(404)
    with pytest.raises(NotFound):
        await store.set_agent_status(404, AgentStatus.AWAY)
    with pytest.raises(NotFound):
        await store.set_agent_capacity(404, 1)
    with pytest.raises(NotFound):
        await store.set_agent_password("nobody", "hash")


async def test_agent_status_capacity_and_password_change(store: SqlStore) -> None:
    agent = await make_agent(store, "ada")

    assert (await store.set_agent_status(agent.id, AgentStatus.AWAY)).status == "away"
    assert (await store.set_agent_capacity(agent.id, 7)).capacity == 7
    await store.set_agent_password("ada", "new-hash")
    assert await store.agent_by_login("ada") == (
        await store.agent(agent.id),
        "new-hash",
    )


async def test_agents_are_listed_in_id_order(store: SqlStore) -> None:
    bob = await make_agent(store, "bob")
    ada = await make_agent(store, "ada")

    assert [agent.id for agent in await store.agents()] == [bob.id, ada.id]


# -- customers ----------------------------------------------------------------


async def test_customer_by_external_id_creates_then_updates(store: SqlStore) -> None:
    created = await store.customer_by_external_id("shop-7", "Ann", "ann@example.com")
    updated = await store.customer_by_external_id("shop-7", "Ann B", "ann@example.org")

    assert updated.id == created.id
    assert (updated.name, updated.email) == ("Ann B", "ann@example.org")
    assert await store.customer(created.id) == updated


async def test_visitors_are_separate_customers_without_external_id(
    store: SqlStore,
) -> None:
    first = await store.create_visitor("Visitor", "")
    second = await store.create_visitor("Visitor", "")

    assert first.id != second.id
    assert first.external_id is second.external_id is None

    await store.update_customer(first.id, "Named", "named@example.com")
    assert (await store.customer(first.id)).name == "Named"


async def test_missing_customer_raises_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.customer(404)
    with pytest.raises(NotFound):
        await store.update_customer(404, "name", "email")
    with pytest.raises(NotFound):
        await store.create_conversation(404)
    with pytest.raises(NotFound):
        await store.leave_message(404, "name", "email", "body")


# -- conversations ------------------------------------------------------------


async def test_new_conversation_is_queued(store: SqlStore) -> None:
    conversation = await make_conversation(store)

    assert conversation.state == ConversationState.QUEUED
    assert conversation.agent_id is conversation.last_agent_id is None
    assert conversation.last_seq == 0
    assert conversation.queued_at == conversation.created_at
    assert await store.conversation(conversation.id) == conversation
    assert await store.queue() == [conversation]


async def test_missing_conversation_raises_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.conversation(404)
    with pytest.raises(NotFound):
        await store.assign(404, [], None)
    with pytest.raises(NotFound):
        await store.reopen(404)
    with pytest.raises(NotFound):
        await store.mark_read(404, "c:1", 1)
    with pytest.raises(NotFound):
        await store.set_context(404, Context())
    with pytest.raises(NotFound):
        await store.context(404)


async def test_latest_conversation_is_the_customers_newest(store: SqlStore) -> None:
    customer = await store.create_visitor("Visitor", "")
    assert await store.latest_conversation(customer.id) is None

    await store.create_conversation(customer.id)
    newest = await store.create_conversation(customer.id)
    await make_conversation(store)  # someone else's

    assert await store.latest_conversation(customer.id) == newest


async def test_latest_or_create_creates_a_queued_conversation_once(
    store: SqlStore,
) -> None:
    customer = await store.create_visitor("Visitor", "")

    conversation, created = await store.latest_or_create_conversation(customer.id)
    again, created_again = await store.latest_or_create_conversation(customer.id)

    assert (created, created_again) == (True, False)
    assert conversation.state == ConversationState.QUEUED
    assert again == conversation == await store.latest_conversation(customer.id)


async def test_latest_or_create_returns_the_latest_whatever_its_state(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    customer = await store.create_visitor("Visitor", "")
    await store.create_conversation(customer.id)
    newest = await store.create_conversation(customer.id)
    await store.take(newest.id, ada.id)
    await store.close_conversation(newest.id, ada.id)

    found, created = await store.latest_or_create_conversation(customer.id)

    assert not created
    assert found == await store.conversation(newest.id)
    assert found.state == ConversationState.CLOSED


async def test_latest_or_create_for_a_missing_customer_raises_not_found(
    store: SqlStore,
) -> None:
    with pytest.raises(NotFound):
        await store.latest_or_create_conversation(404)
    assert await store.conversations() == []


async def test_queue_is_in_queued_order(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    first, second, third = [await make_conversation(store) for _ in range(3)]

    # Taking the first, closing and reopening it sends it to the back.
    await store.take(first.id, ada.id)
    await store.close_conversation(first.id, ada.id)
    await store.reopen(first.id)

    assert [c.id for c in await store.queue()] == [second.id, third.id, first.id]


async def test_conversations_filter_by_agent_and_state_newest_first(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada", capacity=5)
    one, two, three = [await make_conversation(store) for _ in range(3)]
    await store.take(one.id, ada.id)
    await store.take(two.id, ada.id)
    await store.close_conversation(two.id, ada.id)

    def ids(conversations: list[Conversation]) -> list[int]:
        return [conversation.id for conversation in conversations]

    assert ids(await store.conversations()) == [three.id, two.id, one.id]
    assert ids(await store.conversations(limit=1)) == [three.id]
    assert ids(await store.conversations(agent_id=ada.id)) == [one.id]
    closed = [ConversationState.CLOSED]
    assert ids(await store.conversations(states=closed)) == [two.id]
    waiting = [ConversationState.QUEUED, ConversationState.OPEN]
    assert ids(await store.conversations(states=waiting)) == [three.id, one.id]


# -- routing ------------------------------------------------------------------


async def test_assign_opens_the_conversation_and_counts_the_chat(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    conversation = await make_conversation(store)

    assignment = await store.assign(conversation.id, [ada.id], None)

    assert assignment is not None
    assert (assignment.agent_id, assignment.reason) == (ada.id, "least_loaded")
    assert assignment.previous_agent_id is None
    opened = await store.conversation(conversation.id)
    assert (opened.state, opened.agent_id, opened.last_agent_id) == (
        ConversationState.OPEN,
        ada.id,
        ada.id,
    )
    ada = await store.agent(ada.id)
    assert ada.open_chats == 1
    assert ada.last_assigned_at is not None
    history = await store.history(conversation.id)
    assert [(row["agent_id"], row["reason"]) for row in history] == [
        (ada.id, "least_loaded")
    ]
    assert await store.queue() == []


async def test_assign_prefers_the_previous_agent(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob", capacity=5)
    await store.take((await make_conversation(store)).id, bob.id)

    conversation = await make_conversation(store)
    assignment = await store.assign(conversation.id, [ada.id, bob.id], prefer=bob.id)

    assert assignment is not None
    assert (assignment.agent_id, assignment.reason) == (bob.id, "previous")


async def test_assign_ignores_a_preferred_agent_who_is_not_eligible(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada", capacity=5)
    away = await make_agent(store, "away", status=AgentStatus.AWAY)
    full = await make_agent(store, "full", capacity=0)
    gone = await make_agent(store, "gone")
    candidates = [ada.id, away.id, full.id]

    for prefer in (away.id, full.id, gone.id):
        conversation = await make_conversation(store)
        assignment = await store.assign(conversation.id, candidates, prefer)
        assert assignment is not None
        assert (assignment.agent_id, assignment.reason) == (ada.id, "least_loaded")


async def test_assign_picks_the_agent_with_fewest_open_chats(store: SqlStore) -> None:
    ada = await make_agent(store, "ada", capacity=5)
    bob = await make_agent(store, "bob", capacity=5)
    await store.take((await make_conversation(store)).id, ada.id)

    conversation = await make_conversation(store)
    assignment = await store.assign(conversation.id, [ada.id, bob.id], None)

    assert assignment is not None
    assert assignment.agent_id == bob.id


async def test_assign_breaks_ties_by_longest_idle_then_lowest_id(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    candidates = [ada.id, bob.id]

    # Both never assigned: the lower id.
    first = await make_conversation(store)
    assignment = await store.assign(first.id, candidates, None)
    assert assignment is not None and assignment.agent_id == ada.id
    await store.close_conversation(first.id, ada.id)

    # Bob never assigned counts as idle longest.
    second = await make_conversation(store)
    assignment = await store.assign(second.id, candidates, None)
    assert assignment is not None and assignment.agent_id == bob.id
    await asyncio.sleep(TICK)
    await store.close_conversation(second.id, bob.id)

    # Now Ada was assigned before Bob, so she has been idle longer.
    third = await make_conversation(store)
    assignment = await store.assign(third.id, candidates, None)
    assert assignment is not None and assignment.agent_id == ada.id


async def test_assign_skips_away_full_and_unconnected_agents(store: SqlStore) -> None:
    away = await make_agent(store, "away", status=AgentStatus.AWAY)
    full = await make_agent(store, "full", capacity=1)
    await store.take((await make_conversation(store)).id, full.id)
    unconnected = await make_agent(store, "unconnected")
    conversation = await make_conversation(store)

    assert await store.assign(conversation.id, [away.id, full.id], None) is None
    assert await store.assign(conversation.id, [], unconnected.id) is None
    assert await store.conversation(conversation.id) == conversation
    assert await store.history(conversation.id) == []


async def test_assign_leaves_a_conversation_that_is_not_queued(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    conversation = await make_conversation(store)
    await store.take(conversation.id, ada.id)

    assert await store.assign(conversation.id, [bob.id], None) is None
    assert (await store.conversation(conversation.id)).agent_id == ada.id


async def test_take_ignores_away_status_but_not_capacity(store: SqlStore) -> None:
    ada = await make_agent(store, "ada", capacity=1, status=AgentStatus.AWAY)
    first = await make_conversation(store)
    second = await make_conversation(store)

    assignment = await store.take(first.id, ada.id)
    assert assignment is not None
    assert (assignment.agent_id, assignment.reason) == (ada.id, "take")

    assert await store.take(second.id, ada.id) is None
    assert await store.take(first.id, ada.id) is None  # not queued any more
    with pytest.raises(NotFound):
        await store.take(second.id, 404)


async def test_transfer_moves_the_chat_and_both_counts(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob", status=AgentStatus.AWAY)
    conversation = await make_conversation(store)
    await store.take(conversation.id, ada.id)

    assignment = await store.transfer(conversation.id, ada.id, bob.id)

    assert assignment is not None
    assert (assignment.agent_id, assignment.previous_agent_id) == (bob.id, ada.id)
    assert assignment.reason == "transfer"
    moved = await store.conversation(conversation.id)
    assert (moved.state, moved.agent_id, moved.last_agent_id) == (
        "open",
        bob.id,
        bob.id,
    )
    assert (await store.agent(ada.id)).open_chats == 0
    assert (await store.agent(bob.id)).open_chats == 1
    reasons = [row["reason"] for row in await store.history(conversation.id)]
    assert reasons == ["take", "transfer"]


async def test_transfer_changes_nothing_unless_held_and_target_has_room(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    full = await make_agent(store, "full", capacity=0)
    conversation = await make_conversation(store)

    assert await store.transfer(conversation.id, ada.id, bob.id) is None  # queued
    await store.take(conversation.id, ada.id)
    assert await store.transfer(conversation.id, bob.id, ada.id) is None  # not bob's
    assert await store.transfer(conversation.id, ada.id, full.id) is None
    assert await store.transfer(conversation.id, ada.id, ada.id) is None
    with pytest.raises(NotFound):
        await store.transfer(conversation.id, ada.id, 404)

    assert (await store.conversation(conversation.id)).agent_id == ada.id
    assert (await store.agent(ada.id)).open_chats == 1


async def test_close_keeps_the_last_agent_and_frees_a_slot(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    conversation = await make_conversation(store)
    await store.take(conversation.id, ada.id)

    assert await store.close_conversation(conversation.id, ada.id)

    closed = await store.conversation(conversation.id)
    assert (closed.state, closed.agent_id, closed.last_agent_id) == (
        "closed",
        None,
        ada.id,
    )
    assert (await store.agent(ada.id)).open_chats == 0
    assert [row["reason"] for row in await store.history(conversation.id)] == [
        "take",
        "close",
    ]
    assert not await store.close_conversation(conversation.id, ada.id)


async def test_close_by_another_agent_changes_nothing(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    conversation = await make_conversation(store)
    await store.take(conversation.id, ada.id)

    assert not await store.close_conversation(conversation.id, bob.id)
    assert (await store.conversation(conversation.id)).state == "open"


async def test_reopen_requeues_a_closed_conversation_for_one_caller(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    ada = await make_agent(store, "ada")
    conversation = await make_conversation(store)
    assert not await store.reopen(conversation.id)  # queued, not closed
    await store.take(conversation.id, ada.id)
    await store.close_conversation(conversation.id, ada.id)

    results = await asyncio.gather(*(s.reopen(conversation.id) for s in stores * 3))

    assert sorted(results) == [False] * 8 + [True]
    reopened = await store.conversation(conversation.id)
    assert (reopened.state, reopened.agent_id, reopened.last_agent_id) == (
        "queued",
        None,
        ada.id,
    )
    assert reopened.queued_at is not None
    assert reopened.queued_at > conversation.queued_at  # type: ignore[operator]

    # The returning customer goes back to Ada.
    assignment = await store.assign(conversation.id, [ada.id], prefer=ada.id)
    assert assignment is not None
    assert (assignment.reason, assignment.previous_agent_id) == ("previous", ada.id)


async def test_reopen_to_gives_a_closed_chat_to_one_agent_with_room(
    stores: list[SqlStore],
) -> None:
    store = stores[0]
    ada = await make_agent(store, "ada", capacity=1)
    bob = await make_agent(store, "bob", status=AgentStatus.AWAY)
    conversation = await make_conversation(store)
    assert await store.reopen_to(conversation.id, bob.id) is None  # queued
    await store.take(conversation.id, ada.id)
    assert await store.reopen_to(conversation.id, bob.id) is None  # open
    await store.close_conversation(conversation.id, ada.id)

    # Ada is full again, so she cannot take it back; nothing changes.
    other = await make_conversation(store)
    await store.take(other.id, ada.id)
    assert await store.reopen_to(conversation.id, ada.id) is None
    assert (await store.conversation(conversation.id)).state == "closed"

    # Racing reopens from every store: one wins, an away agent included.
    results = await asyncio.gather(
        *(s.reopen_to(conversation.id, bob.id) for s in stores * 3)
    )
    won = [r for r in results if r is not None]
    assert len(won) == 1
    assert (won[0].agent_id, won[0].reason) == (bob.id, "reopen")
    reopened = await store.conversation(conversation.id)
    assert (reopened.state, reopened.agent_id) == ("open", bob.id)
    assert (await store.agent(bob.id)).open_chats == 1
    reasons = [row["reason"] for row in await store.history(conversation.id)]
    assert reasons == ["take", "close", "reopen"]
    with pytest.raises(NotFound):
        await store.reopen_to(conversation.id + 1000, bob.id)


async def test_release_agent_requeues_its_open_conversations(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada", capacity=5)
    bob = await make_agent(store, "bob")
    mine = [await make_conversation(store) for _ in range(3)]
    for conversation in mine:
        await store.take(conversation.id, ada.id)
    await store.close_conversation(mine[2].id, ada.id)
    other = await make_conversation(store)
    await store.take(other.id, bob.id)

    released = await store.release_agent(ada.id)

    assert released == [mine[0].id, mine[1].id]
    assert [c.id for c in await store.queue()] == released
    assert (await store.agent(ada.id)).open_chats == 0
    assert (await store.conversation(other.id)).agent_id == bob.id
    assert await store.release_agent(ada.id) == []


# -- messages -----------------------------------------------------------------


async def test_messages_are_numbered_1_2_3_per_conversation(store: SqlStore) -> None:
    one = await make_conversation(store)
    two = await make_conversation(store)

    stored = await store.append(
        [text(one.id, "a"), text(two.id, "a"), text(one.id, "b"), text(one.id, "c")]
    )
    stored += await store.append([text(two.id, "b")])

    assert [(m.conversation_id, m.seq) for m in stored] == [
        (one.id, 1),
        (two.id, 1),
        (one.id, 2),
        (one.id, 3),
        (two.id, 2),
    ]
    assert all(message.new for message in stored)
    assert (await store.conversation(one.id)).last_seq == 3
    assert [m.seq for m in await store.messages(one.id)] == [1, 2, 3]


async def test_resent_message_is_stored_once(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    [first] = await store.append([text(conversation.id, "a")])

    again = await store.append([text(conversation.id, "a"), text(conversation.id, "b")])

    assert again[0] == replace(first, new=False)
    assert (again[1].seq, again[1].new) == (2, True)
    assert len(await store.messages(conversation.id)) == 2


async def test_repeat_within_a_batch_is_stored_once(store: SqlStore) -> None:
    conversation = await make_conversation(store)

    stored = await store.append(
        [
            text(conversation.id, "a"),
            text(conversation.id, "a"),
            text(conversation.id, "b"),
        ]
    )

    assert [(m.seq, m.new) for m in stored] == [(1, True), (1, False), (2, True)]
    assert (await store.conversation(conversation.id)).last_seq == 2


async def test_a_resend_is_found_by_its_own_pair_only(store: SqlStore) -> None:
    one = await make_conversation(store)
    two = await make_conversation(store)
    await store.append([text(one.id, "x"), text(two.id, "y")])

    # Each id and each client id of this batch is known, but no pair is
    # except the last: only that one is a resend.
    stored = await store.append(
        [text(one.id, "y"), text(two.id, "x"), text(one.id, "x")]
    )

    assert [(m.conversation_id, m.seq, m.new) for m in stored] == [
        (one.id, 2, True),
        (two.id, 2, True),
        (one.id, 1, False),
    ]


async def test_same_client_id_in_two_conversations_is_two_messages(
    store: SqlStore,
) -> None:
    one = await make_conversation(store)
    two = await make_conversation(store)

    stored = await store.append([text(one.id, "a"), text(two.id, "a")])

    assert [(m.seq, m.new) for m in stored] == [(1, True), (1, True)]


async def test_batch_naming_a_missing_conversation_stores_nothing(
    store: SqlStore,
) -> None:
    conversation = await make_conversation(store)

    with pytest.raises(NotFound):
        await store.append([text(conversation.id, "a"), text(404, "b")])

    assert await store.messages(conversation.id) == []
    assert (await store.conversation(conversation.id)).last_seq == 0


async def test_message_fields_round_trip(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    card = {"sku": "TEA-1", "price": 4.5, "tags": ["green", "loose"]}
    sent = NewMessage(conversation.id, "p1", "a:3", "product", "Green tea", card)

    [stored] = await store.append([sent])
    [read] = await store.messages(conversation.id)

    assert read == stored
    assert (read.sender, read.kind, read.body, read.data) == (
        "a:3",
        "product",
        "Green tea",
        card,
    )
    assert read.created_at > 0
    assert await store.append([]) == []


async def test_messages_are_read_after_a_seq_up_to_a_limit(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    await store.append([text(conversation.id, str(n)) for n in range(10)])

    page = await store.messages(conversation.id, after_seq=3, limit=4)

    assert [m.seq for m in page] == [4, 5, 6, 7]
    assert await store.messages(conversation.id, after_seq=10) == []


# -- read cursors -------------------------------------------------------------


async def test_read_cursor_only_moves_forward(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    await store.append([text(conversation.id, str(n)) for n in range(5)])

    assert await store.mark_read(conversation.id, "a:1", 3) == 3
    assert await store.mark_read(conversation.id, "a:1", 2) == 3
    assert await store.mark_read(conversation.id, "a:1", 4) == 4
    assert await store.read_cursors(conversation.id) == {"a:1": 4}


async def test_read_cursor_is_clamped_to_the_last_seq(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    await store.append([text(conversation.id, "a"), text(conversation.id, "b")])

    assert await store.mark_read(conversation.id, "c:1", 99) == 2
    assert await store.mark_read(conversation.id, "a:1", -5) == 0
    assert await store.read_cursors(conversation.id) == {"c:1": 2, "a:1": 0}


async def test_unread_counts_skip_read_and_own_messages(store: SqlStore) -> None:
    one = await make_conversation(store)
    two = await make_conversation(store)
    quiet = await make_conversation(store)
    await store.append(
        [
            text(one.id, "1", sender="c:1"),
            text(one.id, "2", sender="a:1"),
            text(one.id, "3", sender="c:1"),
            text(one.id, "4", sender="c:1"),
            text(two.id, "1", sender="c:2"),
        ]
    )
    await store.mark_read(one.id, "a:1", 3)

    counts = await store.unread_counts("a:1", [one.id, two.id, quiet.id])

    assert counts == {one.id: 1, two.id: 1, quiet.id: 0}
    assert await store.unread_counts("c:1", [one.id]) == {one.id: 1}
    assert await store.unread_counts("a:1", []) == {}


# -- context, canned responses, left messages ---------------------------------


async def test_context_round_trips(store: SqlStore) -> None:
    conversation = await make_conversation(store)
    assert await store.context(conversation.id) == Context()

    cart = [{"sku": "TEA-1", "quantity": 2}]
    context = Context(url="https://shop.example/tea", title="Tea", cart=cart)
    await store.set_context(conversation.id, context)

    assert await store.context(conversation.id) == context


async def test_canned_responses_are_created_updated_and_deleted(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    hello = await store.save_canned_response(ada.id, "hi", "Hello!")
    bye = await store.save_canned_response(ada.id, "bye", "Goodbye!")

    edited = await store.save_canned_response(ada.id, "hi", "Hi there!", hello.id)
    assert (edited.id, edited.body) == (hello.id, "Hi there!")
    assert await store.canned_responses(ada.id) == [bye, edited]

    assert await store.delete_canned_response(ada.id, bye.id)
    assert not await store.delete_canned_response(ada.id, bye.id)
    assert await store.canned_responses(ada.id) == [edited]


async def test_duplicate_shortcut_raises_store_error(store: SqlStore) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    await store.save_canned_response(ada.id, "hi", "Hello!")
    await store.save_canned_response(bob.id, "hi", "Hey")  # each has their own

    with pytest.raises(StoreError, match="taken"):
        await store.save_canned_response(ada.id, "hi", "Hello again!")


async def test_agents_cannot_touch_each_others_canned_responses(
    store: SqlStore,
) -> None:
    ada = await make_agent(store, "ada")
    bob = await make_agent(store, "bob")
    hello = await store.save_canned_response(ada.id, "hi", "Hello!")

    with pytest.raises(NotFound):
        await store.save_canned_response(bob.id, "hi", "Mine now", hello.id)
    assert not await store.delete_canned_response(bob.id, hello.id)
    assert await store.canned_responses(ada.id) == [hello]
    with pytest.raises(NotFound):
        await store.save_canned_response(404, "hi", "Hello!")


async def test_left_messages_are_listed_until_handled(store: SqlStore) -> None:
    customer = await store.create_visitor("Visitor", "")
    first = await store.leave_message(customer.id, "Ann", "ann@example.com", "Call me")
    second = await store.leave_message(customer.id, "Ann", "ann@example.com", "Please")

    assert await store.left_messages() == [first, second]
    assert await store.mark_left_message_handled(first.id)
    assert not await store.mark_left_message_handled(first.id)
    assert not await store.mark_left_message_handled(404)

    assert await store.left_messages() == [second]
    everything = await store.left_messages(include_handled=True)
    assert [(m.id, m.handled) for m in everything] == [
        (first.id, True),
        (second.id, False),
    ]


# -- errors -------------------------------------------------------------------


async def test_database_errors_become_store_errors(empty_url: str) -> None:
    await upgrade(empty_url)
    store = SqlStore(empty_url)
    await store.open()
    try:
        customer = await store.create_visitor("Visitor", "")

        # Break the schema behind the store's back.
        engine = make_engine(empty_url)
        async with for_writing(engine).begin() as conn:
            await conn.execute(sqlalchemy.text("DROP TABLE left_messages"))
        await engine.dispose()

        with pytest.raises(StoreError) as caught:
            await store.left_messages()
        assert isinstance(caught.value.__cause__, sqlalchemy.exc.DBAPIError)
        with pytest.raises(StoreError) as caught:
            await store.leave_message(customer.id, "Ann", "ann@example.com", "Hi")
        assert not isinstance(caught.value, NotFound)
    finally:
        await store.close()


async def test_value_postgresql_refuses_raises_invalid_input(
    postgres_store: SqlStore,
) -> None:
    store = postgres_store
    conversation = await make_conversation(store)
    good = text(conversation.id, "good")
    bad = replace(text(conversation.id, "bad"), body="a NUL \x00 inside")

    with pytest.raises(InvalidInput) as caught:
        await store.append([good, bad])
    # Appends run on asyncpg directly; its error is the cause.
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError)

    # Nothing of the failed batch was stored; the good message alone is.
    stored = await store.append([good])
    assert [(message.seq, message.new) for message in stored] == [(1, True)]
    assert (await store.conversation(conversation.id)).last_seq == 1


async def test_connections_the_server_closed_are_replaced_unnoticed(
    postgres_store: SqlStore, postgres_test_url: str
) -> None:
    # Without a pre-ping, the pool must still not hand out a connection
    # that PostgreSQL closed while it sat idle (a restart, an idle timeout).
    store = postgres_store
    conversation = await make_conversation(store)
    await store.append([text(conversation.id, "before")])

    admin = await asyncpg.connect(asyncpg_dsn(postgres_test_url))
    try:
        terminate = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert await admin.fetch(terminate)
    finally:
        await admin.close()
    await asyncio.sleep(UNIT)

    stored = await store.append([text(conversation.id, "after")])
    assert [(message.seq, message.new) for message in stored] == [(2, True)]
    assert (await store.conversation(conversation.id)).last_seq == 2


@contextlib.asynccontextmanager
async def customer_locked(url: str, customer_id: int) -> AsyncIterator[None]:
    """Hold a lock that writes to the customer wait for, as a stuck
    transaction of another process would."""
    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        assert database is not None
        connection = sqlite3.connect(database, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield
        finally:
            connection.close()
        return

    pg = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with pg.transaction():
            lock = "SELECT id FROM customers WHERE id = $1 FOR UPDATE"
            await pg.execute(lock, customer_id)
            yield
    finally:
        await pg.close()


async def test_write_held_up_by_a_stuck_lock_times_out(store_url: str) -> None:
    store = SqlStore(store_url, timeout=UNIT, lock_timeout=UNIT)
    await store.open()
    try:
        customer = await store.create_visitor("Visitor", "")

        async with customer_locked(store_url, customer.id):
            started = time.monotonic()
            with pytest.raises(StoreError, match="timed out") as caught:
                await store.update_customer(customer.id, "Ann", "")
            assert time.monotonic() - started < 25 * UNIT
        assert caught.value.__cause__ is not None

        # Once the lock is gone, the same call goes through.
        await store.update_customer(customer.id, "Ann", "")
        assert (await store.customer(customer.id)).name == "Ann"
    finally:
        await store.close()


async def test_statement_running_past_the_timeout_is_cancelled(
    postgres_test_url: str,
) -> None:
    # A long lock timeout, so that the statement timeout ends the wait.
    store = SqlStore(postgres_test_url, timeout=UNIT, lock_timeout=50 * UNIT)
    await store.open()
    try:
        customer = await store.create_visitor("Visitor", "")

        async with customer_locked(postgres_test_url, customer.id):
            started = time.monotonic()
            with pytest.raises(StoreError, match="timed out") as caught:
                await store.update_customer(customer.id, "Ann", "")
            assert time.monotonic() - started < 25 * UNIT

        # query_canceled: PostgreSQL's statement timeout, not asyncpg's.
        cause = caught.value.__cause__
        assert isinstance(cause, sqlalchemy.exc.DBAPIError)
        assert getattr(cause.orig, "sqlstate", None) == "57014"
    finally:
        await store.close()


async def test_postgresql_sessions_carry_the_timeouts(postgres_test_url: str) -> None:
    async def timeouts(engine: AsyncEngine) -> tuple[str, str]:
        query = sqlalchemy.text(
            "SELECT current_setting('statement_timeout'),"
            " current_setting('lock_timeout')"
        )
        try:
            async with engine.connect() as conn:
                statement, lock = (await conn.execute(query)).one()
                return statement, lock
        finally:
            await engine.dispose()

    assert await timeouts(make_engine(postgres_test_url)) == ("10s", "5s")
    migrating = make_migration_engine(postgres_test_url)
    assert await timeouts(migrating) == ("10min", "10min")


async def test_closed_store_raises_store_error(store: SqlStore) -> None:
    await store.close()

    with pytest.raises(StoreError, match="not open"):
        await store.agents()


async def test_unreachable_database_raises_store_error() -> None:
    store = SqlStore("postgresql://nobody@127.0.0.1:1/nothing")

    with pytest.raises(StoreError, match="cannot reach") as caught:
        await store.open()
    assert caught.value.__cause__ is not None


def test_sql_store_implements_the_store_interface() -> None:
    # mypy checks the assignment against the protocol; this checks names.
    store: Store = SqlStore("sqlite:///never-opened.db")
    public = [name for name in dir(Store) if not name.startswith("_")]
    missing = [name for name in public if not hasattr(store, name)]
    assert missing == []
