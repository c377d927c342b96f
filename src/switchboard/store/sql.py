"""The store on SQL: SQLite (embedded default) or PostgreSQL (production).

Every public method of :class:`SqlStore` runs in one transaction and every
error of SQLAlchemy or of the driver leaves it as a
:class:`~switchboard.errors.StoreError`.

Concurrency
-----------

Methods that read rows and then write depending on what they read (assign,
take, transfer, close, append...) lock those rows first.

* PostgreSQL runs at READ COMMITTED and locks with ``SELECT ... FOR NO KEY
  UPDATE``, which is what an UPDATE takes anyway and still lets other
  transactions insert rows that refer to the locked one. Every transaction
  locks conversations before agents, each kind in ascending id order, so two
  transactions never wait for each other in a cycle; the one transaction
  that locks a customer (to find or create its conversation) locks nothing
  else. Should the database still report a deadlock or a serialization
  failure, the transaction is run again from the start.
* SQLite has one writer at a time. Write transactions start with ``BEGIN
  IMMEDIATE``, which takes the write lock before the first read, so what a
  transaction reads cannot change before it commits; other processes wait up
  to the busy timeout. Within one process an :class:`asyncio.Lock` queues
  writers so that they don't poll for the file lock. In WAL mode readers
  never wait for the writer.

Connections, SQLite's pragmas and durability, retries and errors are in
:mod:`switchboard.store.engine`; the methods on agents, customers, canned
responses and left messages in :mod:`switchboard.store.accounts`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Row, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from switchboard.errors import NotFound
from switchboard.store import (
    AgentStatus,
    Assignment,
    Context,
    Conversation,
    ConversationState,
    NewMessage,
    StoredMessage,
)
from switchboard.store.accounts import (
    AGENTS,
    AccountsMixin,
    lock_agent,
    lock_customer,
)
from switchboard.store.append import append_asyncpg, append_sql, message_record
from switchboard.store.engine import for_writing, make_engine, normalize_url
from switchboard.store.models import Base

__all__ = ["SqlStore", "for_writing", "make_engine", "normalize_url"]

logger = logging.getLogger("switchboard.store")

CONVERSATIONS = Base.metadata.tables["conversations"]
MESSAGES = Base.metadata.tables["messages"]
ASSIGNMENTS = Base.metadata.tables["assignments"]
READ_CURSORS = Base.metadata.tables["read_cursors"]

QUEUED = ConversationState.QUEUED.value
OPEN = ConversationState.OPEN.value
CLOSED = ConversationState.CLOSED.value


# -- the store ----------------------------------------------------------------


class SqlStore(AccountsMixin):
    """:class:`~switchboard.store.Store` on SQLite or PostgreSQL.

    ``database_url`` is any URL :func:`normalize_url` accepts. The schema
    must have been brought to the latest migration with
    :func:`switchboard.store.migrate.upgrade`; :meth:`open` checks it.
    ``timeout`` bounds a statement and ``lock_timeout`` a wait for a lock,
    in seconds (see :mod:`switchboard.store.engine`).
    """

    # -- conversations ----------------------------------------------------

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self._reading() as conn:
            query = select(CONVERSATIONS).where(CONVERSATIONS.c.id == conversation_id)
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        return _conversation(row)

    async def latest_conversation(self, customer_id: int) -> Conversation | None:
        async with self._reading() as conn:
            return await _latest_conversation(conn, customer_id)

    async def create_conversation(self, customer_id: int) -> Conversation:
        async def transaction(conn: AsyncConnection) -> Conversation:
            # The only constraint an insert can break is the customer's
            # foreign key.
            try:
                return await _insert_conversation(conn, customer_id)
            except IntegrityError as exc:
                raise NotFound(f"no customer {customer_id}") from exc

        return await self._write(transaction)

    async def latest_or_create_conversation(
        self, customer_id: int
    ) -> tuple[Conversation, bool]:
        """See :meth:`Store.latest_or_create_conversation`.

        The customer's row is the lock: of two servers starting a chat for
        one customer at once, the second reads after the first committed,
        so it finds the conversation the first created.
        """

        async def transaction(conn: AsyncConnection) -> tuple[Conversation, bool]:
            await lock_customer(conn, customer_id)
            latest = await _latest_conversation(conn, customer_id)
            if latest is not None:
                return latest, False
            return await _insert_conversation(conn, customer_id), True

        conversation, created = await self._write(transaction)
        if created:
            logger.debug(
                "conversation %d: created for customer %d", conversation.id, customer_id
            )
        return conversation, created

    async def conversations(
        self,
        *,
        agent_id: int | None = None,
        states: Sequence[ConversationState] = (),
        limit: int = 100,
    ) -> list[Conversation]:
        query = select(CONVERSATIONS).order_by(CONVERSATIONS.c.id.desc()).limit(limit)
        if agent_id is not None:
            query = query.where(CONVERSATIONS.c.agent_id == agent_id)
        if states:
            values = [ConversationState(state).value for state in states]
            query = query.where(CONVERSATIONS.c.state.in_(values))

        async with self._reading() as conn:
            rows = await conn.execute(query)
        return [_conversation(row) for row in rows]

    async def queue(self) -> list[Conversation]:
        async with self._reading() as conn:
            query = (
                select(CONVERSATIONS)
                .where(CONVERSATIONS.c.state == QUEUED)
                .order_by(CONVERSATIONS.c.queued_at, CONVERSATIONS.c.id)
            )
            rows = await conn.execute(query)
        return [_conversation(row) for row in rows]

    async def assign(
        self,
        conversation_id: int,
        candidates: Sequence[int],
        prefer: int | None,
    ) -> Assignment | None:
        """See :meth:`Store.assign`.

        ``previous_agent_id`` of the result is the conversation's
        last_agent_id. ``prefer`` counts only if it is a candidate.
        """

        async def transaction(conn: AsyncConnection) -> Assignment | None:
            conversation = await _lock_conversation(conn, conversation_id)
            if conversation.state != QUEUED or not candidates:
                return None

            # Lock only the eligible agents. Should a row change while we
            # wait for its lock, PostgreSQL checks the WHERE clause again on
            # the new version, so what comes back is still eligible.
            query = (
                select(AGENTS)
                .where(
                    AGENTS.c.id.in_(sorted(set(candidates))),
                    AGENTS.c.status == AgentStatus.ONLINE.value,
                    AGENTS.c.open_chats < AGENTS.c.capacity,
                )
                .order_by(AGENTS.c.id)
                .with_for_update(key_share=True)
            )
            eligible = (await conn.execute(query)).all()
            if not eligible:
                return None

            agent_id, reason = _choose(eligible, prefer)
            await _give(conn, conversation_id, agent_id, reason)
            return Assignment(
                conversation_id, agent_id, conversation.last_agent_id, reason
            )

        return await self._write(transaction)

    async def take(self, conversation_id: int, agent_id: int) -> Assignment | None:
        return await self._write(_taking(conversation_id, agent_id, QUEUED, "take"))

    async def reopen_to(self, conversation_id: int, agent_id: int) -> Assignment | None:
        """See :meth:`Store.reopen_to`: a take that starts from CLOSED."""
        return await self._write(_taking(conversation_id, agent_id, CLOSED, "reopen"))

    async def transfer(
        self, conversation_id: int, from_agent: int, to_agent: int
    ) -> Assignment | None:
        """See :meth:`Store.transfer`; a transfer to oneself changes nothing."""

        async def transaction(conn: AsyncConnection) -> Assignment | None:
            conversation = await _lock_conversation(conn, conversation_id)
            if conversation.state != OPEN or conversation.agent_id != from_agent:
                return None
            if to_agent == from_agent:
                return None

            # Both agents, in id order, like every other transaction.
            query = (
                select(AGENTS)
                .where(AGENTS.c.id.in_(sorted((from_agent, to_agent))))
                .order_by(AGENTS.c.id)
                .with_for_update(key_share=True)
            )
            agents = {row.id: row for row in await conn.execute(query)}
            target = agents.get(to_agent)
            if target is None:
                raise NotFound(f"no agent {to_agent}")
            if target.open_chats >= target.capacity:
                return None

            await _give(conn, conversation_id, to_agent, "transfer")
            await _count_chats(conn, from_agent, -1)
            return Assignment(conversation_id, to_agent, from_agent, "transfer")

        return await self._write(transaction)

    async def close_conversation(self, conversation_id: int, agent_id: int) -> bool:
        async def transaction(conn: AsyncConnection) -> bool:
            conversation = await _lock_conversation(conn, conversation_id)
            if conversation.state != OPEN or conversation.agent_id != agent_id:
                return False

            query = (
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.id == conversation_id)
                .values(state=CLOSED, agent_id=None)
            )
            await conn.execute(query)
            await _count_chats(conn, agent_id, -1)
            await _record(conn, [conversation_id], agent_id, "close")
            return True

        closed = await self._write(transaction)
        if closed:
            logger.debug(
                "conversation %d: closed by agent %d", conversation_id, agent_id
            )
        return closed

    async def reopen(self, conversation_id: int) -> bool:
        async def transaction(conn: AsyncConnection) -> bool:
            # The state test in the WHERE clause makes this a compare and
            # set: of two servers reopening at once, one changes the row.
            query = (
                update(CONVERSATIONS)
                .where(
                    CONVERSATIONS.c.id == conversation_id,
                    CONVERSATIONS.c.state == CLOSED,
                )
                .values(state=QUEUED, agent_id=None, queued_at=time.time())
            )
            if (await conn.execute(query)).rowcount == 1:
                return True
            await _lock_conversation(conn, conversation_id)  # NotFound?
            return False

        reopened = await self._write(transaction)
        if reopened:
            logger.debug("conversation %d: reopened", conversation_id)
        return reopened

    async def release_agent(self, agent_id: int) -> list[int]:
        """See :meth:`Store.release_agent`.

        Requeued conversations go to the back of the queue.
        """

        async def transaction(conn: AsyncConnection) -> list[int]:
            # Find, then lock in id order, checking again under the lock:
            # locking conversations before the agent keeps the global order.
            held = (CONVERSATIONS.c.agent_id == agent_id) & (
                CONVERSATIONS.c.state == OPEN
            )
            found = await conn.execute(select(CONVERSATIONS.c.id).where(held))
            lock = (
                select(CONVERSATIONS.c.id)
                .where(CONVERSATIONS.c.id.in_([row.id for row in found]), held)
                .order_by(CONVERSATIONS.c.id)
                .with_for_update(key_share=True)
            )
            ids: list[int] = list((await conn.execute(lock)).scalars())
            if not ids:
                return []

            query = (
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.id.in_(ids))
                .values(state=QUEUED, agent_id=None, queued_at=time.time())
            )
            await conn.execute(query)
            await _count_chats(conn, agent_id, -len(ids))
            await _record(conn, ids, agent_id, "release")
            return ids

        ids = await self._write(transaction)
        logger.debug("agent %d: released conversations %s", agent_id, ids)
        return ids

    async def history(self, conversation_id: int) -> list[dict[str, Any]]:
        """Assignment history, oldest first.

        Besides the reasons of :class:`Assignment`, ``reason`` may be
        "close" (the agent closed it) or "release" (requeued).
        """
        async with self._reading() as conn:
            query = (
                select(ASSIGNMENTS.c.agent_id, ASSIGNMENTS.c.reason, ASSIGNMENTS.c.at)
                .where(ASSIGNMENTS.c.conversation_id == conversation_id)
                .order_by(ASSIGNMENTS.c.id)
            )
            rows = await conn.execute(query)
        return [dict(row._mapping) for row in rows]

    # -- messages ---------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        """See :meth:`Store.append`.

        The round trips do not grow with the batch: lock the conversations,
        find earlier copies, insert and move last_seq (see
        :mod:`switchboard.store.append`). A unique violation means another
        server stored the same message meanwhile; the batch then runs again
        and finds that copy.
        """
        if not batch:
            return []

        if self.sqlite:

            async def transaction(conn: AsyncConnection) -> list[StoredMessage]:
                return await append_sql(conn, batch)

            stored = await self._write(transaction, retry_duplicates=True)
        else:

            async def on_asyncpg(raw: Any) -> list[StoredMessage]:
                return await append_asyncpg(raw, batch)

            stored = await self._write_asyncpg(on_asyncpg, retry_duplicates=True)

        if logger.isEnabledFor(logging.DEBUG):
            new = sum(message.new for message in stored)
            logger.debug("appended %d messages, %d new", len(stored), new)
        return stored

    async def messages(
        self, conversation_id: int, after_seq: int = 0, limit: int = 500
    ) -> list[StoredMessage]:
        async with self._reading() as conn:
            query = (
                select(MESSAGES)
                .where(
                    MESSAGES.c.conversation_id == conversation_id,
                    MESSAGES.c.seq > after_seq,
                )
                .order_by(MESSAGES.c.seq)
                .limit(limit)
            )
            rows = await conn.execute(query)
        return [message_record(row) for row in rows]

    # -- read cursors -----------------------------------------------------

    async def mark_read(self, conversation_id: int, user: str, seq: int) -> int:
        """See :meth:`Store.mark_read`; ``seq`` is clamped to 0 too."""

        async def transaction(conn: AsyncConnection) -> int:
            query = select(CONVERSATIONS.c.last_seq).where(
                CONVERSATIONS.c.id == conversation_id
            )
            last_seq = (await conn.execute(query)).scalar_one_or_none()
            if last_seq is None:
                raise NotFound(f"no conversation {conversation_id}")

            # An upsert that keeps the larger of the two values, so that a
            # late, older mark from another tab never moves the cursor back.
            target = max(0, min(seq, last_seq))
            upsert = self._upsert(READ_CURSORS).values(
                conversation_id=conversation_id, user=user, seq=target
            )
            further = upsert.excluded.seq > READ_CURSORS.c.seq
            upsert = upsert.on_conflict_do_update(
                index_elements=[READ_CURSORS.c.conversation_id, READ_CURSORS.c.user],
                set_={
                    "seq": case(
                        (further, upsert.excluded.seq), else_=READ_CURSORS.c.seq
                    )
                },
            )
            result = await conn.execute(upsert.returning(READ_CURSORS.c.seq))
            cursor: int = result.scalar_one()
            return cursor

        return await self._write(transaction)

    async def read_cursors(self, conversation_id: int) -> dict[str, int]:
        async with self._reading() as conn:
            query = select(READ_CURSORS.c.user, READ_CURSORS.c.seq).where(
                READ_CURSORS.c.conversation_id == conversation_id
            )
            rows = await conn.execute(query)
        return {row.user: row.seq for row in rows}

    async def unread_counts(
        self, user: str, conversation_ids: Sequence[int]
    ) -> dict[int, int]:
        """See :meth:`Store.unread_counts`.

        Every id asked for is in the result, with 0 if nothing is unread
        (or there is no such conversation).
        """
        counts = dict.fromkeys(conversation_ids, 0)
        if not counts:
            return counts

        cursor = READ_CURSORS.c
        joined = MESSAGES.outerjoin(
            READ_CURSORS,
            (cursor.conversation_id == MESSAGES.c.conversation_id)
            & (cursor.user == user),
        )
        query = (
            select(MESSAGES.c.conversation_id, func.count())
            .select_from(joined)
            .where(
                MESSAGES.c.conversation_id.in_(sorted(counts)),
                MESSAGES.c.seq > func.coalesce(cursor.seq, 0),
                MESSAGES.c.sender != user,
            )
            .group_by(MESSAGES.c.conversation_id)
        )
        async with self._reading() as conn:
            for conversation_id, count in await conn.execute(query):
                counts[conversation_id] = count
        return counts

    # -- context ----------------------------------------------------------

    async def set_context(self, conversation_id: int, context: Context) -> None:
        value = {"url": context.url, "title": context.title, "cart": context.cart}

        async def transaction(conn: AsyncConnection) -> None:
            query = (
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.id == conversation_id)
                .values(context=value)
            )
            if (await conn.execute(query)).rowcount == 0:
                raise NotFound(f"no conversation {conversation_id}")

        await self._write(transaction)

    async def context(self, conversation_id: int) -> Context:
        async with self._reading() as conn:
            query = select(CONVERSATIONS.c.context).where(
                CONVERSATIONS.c.id == conversation_id
            )
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")

        value = row.context or {}
        return Context(
            url=value.get("url", ""),
            title=value.get("title", ""),
            cart=list(value.get("cart", [])),
        )


# -- steps shared by transactions ---------------------------------------------


async def _latest_conversation(
    conn: AsyncConnection, customer_id: int
) -> Conversation | None:
    # Ids grow with time, and unlike created_at they never tie.
    query = (
        select(CONVERSATIONS)
        .where(CONVERSATIONS.c.customer_id == customer_id)
        .order_by(CONVERSATIONS.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else _conversation(row)


async def _insert_conversation(conn: AsyncConnection, customer_id: int) -> Conversation:
    """Insert a QUEUED conversation for the customer."""
    now = time.time()
    query = (
        insert(CONVERSATIONS)
        .values(
            customer_id=customer_id,
            state=QUEUED,
            agent_id=None,
            last_agent_id=None,
            last_seq=0,
            created_at=now,
            queued_at=now,
            context=None,
        )
        .returning(*CONVERSATIONS.c)
    )
    return _conversation((await conn.execute(query)).one())


async def _lock_conversation(conn: AsyncConnection, conversation_id: int) -> Row[Any]:
    query = (
        select(CONVERSATIONS)
        .where(CONVERSATIONS.c.id == conversation_id)
        .with_for_update(key_share=True)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return row


def _taking(
    conversation_id: int, agent_id: int, state: str, reason: str
) -> Callable[[AsyncConnection], Awaitable[Assignment | None]]:
    """The transaction of an agent taking a conversation in ``state``.

    Taking a queued chat and reopening a closed one differ only in the
    state they start from; both check capacity under the agent's lock, and
    neither asks for status ONLINE (an agent may take work while away).
    """

    async def transaction(conn: AsyncConnection) -> Assignment | None:
        conversation = await _lock_conversation(conn, conversation_id)
        if conversation.state != state:
            return None

        agent = await lock_agent(conn, agent_id)
        if agent.open_chats >= agent.capacity:
            return None

        await _give(conn, conversation_id, agent_id, reason)
        return Assignment(conversation_id, agent_id, conversation.last_agent_id, reason)

    return transaction


def _choose(eligible: Sequence[Row[Any]], prefer: int | None) -> tuple[int, str]:
    """Pick the agent for a new chat among eligible agents, and say why."""
    if any(row.id == prefer for row in eligible):
        assert prefer is not None
        return prefer, "previous"

    # Never assigned counts as idle longest.
    def load(row: Row[Any]) -> tuple[int, float, int]:
        idle_since = row.last_assigned_at
        return row.open_chats, -math.inf if idle_since is None else idle_since, row.id

    return min(eligible, key=load).id, "least_loaded"


async def _give(
    conn: AsyncConnection, conversation_id: int, agent_id: int, reason: str
) -> None:
    """Make ``agent_id`` the conversation's agent; its rows are locked."""
    now = time.time()
    query = (
        update(CONVERSATIONS)
        .where(CONVERSATIONS.c.id == conversation_id)
        .values(state=OPEN, agent_id=agent_id, last_agent_id=agent_id)
    )
    await conn.execute(query)

    query = (
        update(AGENTS)
        .where(AGENTS.c.id == agent_id)
        .values(open_chats=AGENTS.c.open_chats + 1, last_assigned_at=now)
    )
    await conn.execute(query)

    await _record(conn, [conversation_id], agent_id, reason, now)
    logger.debug("conversation %d: agent %d (%s)", conversation_id, agent_id, reason)


async def _count_chats(conn: AsyncConnection, agent_id: int, delta: int) -> None:
    query = (
        update(AGENTS)
        .where(AGENTS.c.id == agent_id)
        .values(open_chats=AGENTS.c.open_chats + delta)
    )
    await conn.execute(query)


async def _record(
    conn: AsyncConnection,
    conversation_ids: Sequence[int],
    agent_id: int,
    reason: str,
    at: float | None = None,
) -> None:
    """Write assignment history rows."""
    at = time.time() if at is None else at
    rows = [
        {"conversation_id": id, "agent_id": agent_id, "reason": reason, "at": at}
        for id in conversation_ids
    ]
    await conn.execute(insert(ASSIGNMENTS), rows)


# -- rows to records ----------------------------------------------------------


def _conversation(row: Row[Any]) -> Conversation:
    return Conversation(
        id=row.id,
        customer_id=row.customer_id,
        state=ConversationState(row.state),
        agent_id=row.agent_id,
        last_agent_id=row.last_agent_id,
        last_seq=row.last_seq,
        created_at=row.created_at,
        queued_at=row.queued_at,
    )
