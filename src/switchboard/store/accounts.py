"""Agents, customers and what belongs to them, in the SQL store.

:class:`AccountsMixin` holds the methods of
:class:`~switchboard.store.sql.SqlStore` on agents, customers, agents'
canned responses and the messages customers leave when nobody is online.
None of them takes part in routing conversations.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Insert, Row, Update, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from switchboard.errors import NotFound, StoreError
from switchboard.store import Agent, AgentStatus, CannedResponse, Customer, LeftMessage
from switchboard.store.engine import SqlBase
from switchboard.store.models import Base

__all__ = ["AGENTS", "AccountsMixin", "lock_agent", "lock_customer"]

AGENTS = Base.metadata.tables["agents"]
CUSTOMERS = Base.metadata.tables["customers"]
CANNED_RESPONSES = Base.metadata.tables["canned_responses"]
LEFT_MESSAGES = Base.metadata.tables["left_messages"]


class AccountsMixin(SqlBase):
    """The agent and customer methods of :class:`~switchboard.store.Store`."""

    # -- agents -----------------------------------------------------------

    async def create_agent(
        self, login: str, name: str, password_hash: str, capacity: int
    ) -> Agent:
        """Create an agent, ONLINE with no chats.

        Raise StoreError if the login is taken.
        """
        if capacity < 0:
            raise StoreError("capacity must not be negative")

        async def transaction(conn: AsyncConnection) -> Agent:
            query = (
                insert(AGENTS)
                .values(
                    login=login,
                    name=name,
                    password_hash=password_hash,
                    status=AgentStatus.ONLINE.value,
                    capacity=capacity,
                    open_chats=0,
                    last_assigned_at=None,
                )
                .returning(*AGENTS.c)
            )
            try:
                return _agent((await conn.execute(query)).one())
            except IntegrityError as exc:
                raise StoreError(f"login {login!r} is taken") from exc

        return await self._write(transaction)

    async def agent_by_login(self, login: str) -> tuple[Agent, str] | None:
        async with self._reading() as conn:
            query = select(AGENTS).where(AGENTS.c.login == login)
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else (_agent(row), row.password_hash)

    async def agent(self, agent_id: int) -> Agent:
        async with self._reading() as conn:
            query = select(AGENTS).where(AGENTS.c.id == agent_id)
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        return _agent(row)

    async def agents(self) -> list[Agent]:
        async with self._reading() as conn:
            rows = await conn.execute(select(AGENTS).order_by(AGENTS.c.id))
        return [_agent(row) for row in rows]

    async def set_agent_status(self, agent_id: int, status: AgentStatus) -> Agent:
        return await self._update_agent(agent_id, status=AgentStatus(status).value)

    async def set_agent_password(self, login: str, password_hash: str) -> None:
        async def transaction(conn: AsyncConnection) -> None:
            query = (
                update(AGENTS)
                .where(AGENTS.c.login == login)
                .values(password_hash=password_hash)
            )
            if (await conn.execute(query)).rowcount == 0:
                raise NotFound(f"no agent {login!r}")

        await self._write(transaction)

    async def set_agent_capacity(self, agent_id: int, capacity: int) -> Agent:
        """Change the capacity; chats above a lowered capacity stay open."""
        if capacity < 0:
            raise StoreError("capacity must not be negative")
        return await self._update_agent(agent_id, capacity=capacity)

    async def _update_agent(self, agent_id: int, **values: Any) -> Agent:
        async def transaction(conn: AsyncConnection) -> Agent:
            query = (
                update(AGENTS)
                .where(AGENTS.c.id == agent_id)
                .values(**values)
                .returning(*AGENTS.c)
            )
            row = (await conn.execute(query)).one_or_none()
            if row is None:
                raise NotFound(f"no agent {agent_id}")
            return _agent(row)

        return await self._write(transaction)

    # -- customers --------------------------------------------------------

    async def customer(self, customer_id: int) -> Customer:
        async with self._reading() as conn:
            query = select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"no customer {customer_id}")
        return _customer(row)

    async def customer_by_external_id(
        self, external_id: str, name: str, email: str
    ) -> Customer:
        async def transaction(conn: AsyncConnection) -> Customer:
            # One statement, so two servers seeing the same new customer at
            # once end up with one row.
            query = self._upsert(CUSTOMERS).values(
                external_id=external_id, name=name, email=email
            )
            query = query.on_conflict_do_update(
                index_elements=[CUSTOMERS.c.external_id],
                set_={"name": query.excluded.name, "email": query.excluded.email},
            )
            row = (await conn.execute(query.returning(*CUSTOMERS.c))).one()
            return _customer(row)

        return await self._write(transaction)

    async def create_visitor(self, name: str, email: str) -> Customer:
        async def transaction(conn: AsyncConnection) -> Customer:
            query = (
                insert(CUSTOMERS)
                .values(external_id=None, name=name, email=email)
                .returning(*CUSTOMERS.c)
            )
            return _customer((await conn.execute(query)).one())

        return await self._write(transaction)

    async def update_customer(self, customer_id: int, name: str, email: str) -> None:
        async def transaction(conn: AsyncConnection) -> None:
            query = (
                update(CUSTOMERS)
                .where(CUSTOMERS.c.id == customer_id)
                .values(name=name, email=email)
            )
            if (await conn.execute(query)).rowcount == 0:
                raise NotFound(f"no customer {customer_id}")

        await self._write(transaction)

    # -- canned responses, left messages ----------------------------------

    async def canned_responses(self, agent_id: int) -> list[CannedResponse]:
        """The agent's canned responses, by shortcut."""
        async with self._reading() as conn:
            query = (
                select(CANNED_RESPONSES)
                .where(CANNED_RESPONSES.c.agent_id == agent_id)
                .order_by(CANNED_RESPONSES.c.shortcut, CANNED_RESPONSES.c.id)
            )
            rows = await conn.execute(query)
        return [_canned_response(row) for row in rows]

    async def save_canned_response(
        self, agent_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse:
        """See :meth:`Store.save_canned_response`.

        Raise NotFound if there is no such agent, or ``response_id`` is not
        one of the agent's responses, and StoreError if the agent already
        has another response with this shortcut.
        """

        async def transaction(conn: AsyncConnection) -> CannedResponse:
            # Checked first so that an integrity error below can only mean
            # a taken shortcut.
            await lock_agent(conn, agent_id)

            query: Insert | Update
            if response_id is None:
                query = insert(CANNED_RESPONSES).values(
                    agent_id=agent_id, shortcut=shortcut, body=body
                )
            else:
                query = (
                    update(CANNED_RESPONSES)
                    .where(
                        CANNED_RESPONSES.c.id == response_id,
                        CANNED_RESPONSES.c.agent_id == agent_id,
                    )
                    .values(shortcut=shortcut, body=body)
                )
            try:
                result = await conn.execute(query.returning(*CANNED_RESPONSES.c))
                row = result.one_or_none()
            except IntegrityError as exc:
                raise StoreError(f"shortcut {shortcut!r} is taken") from exc
            if row is None:
                raise NotFound(f"no canned response {response_id}")
            return _canned_response(row)

        return await self._write(transaction)

    async def delete_canned_response(self, agent_id: int, response_id: int) -> bool:
        async def transaction(conn: AsyncConnection) -> bool:
            query = delete(CANNED_RESPONSES).where(
                CANNED_RESPONSES.c.id == response_id,
                CANNED_RESPONSES.c.agent_id == agent_id,
            )
            return (await conn.execute(query)).rowcount == 1

        return await self._write(transaction)

    async def leave_message(
        self, customer_id: int, name: str, email: str, body: str
    ) -> LeftMessage:
        async def transaction(conn: AsyncConnection) -> LeftMessage:
            query = (
                insert(LEFT_MESSAGES)
                .values(
                    customer_id=customer_id,
                    name=name,
                    email=email,
                    body=body,
                    created_at=time.time(),
                    handled=False,
                )
                .returning(*LEFT_MESSAGES.c)
            )
            # Only the customer's foreign key can fail here.
            try:
                return _left_message((await conn.execute(query)).one())
            except IntegrityError as exc:
                raise NotFound(f"no customer {customer_id}") from exc

        return await self._write(transaction)

    async def left_messages(
        self, *, include_handled: bool = False
    ) -> list[LeftMessage]:
        """Left messages, oldest first."""
        query = select(LEFT_MESSAGES).order_by(
            LEFT_MESSAGES.c.created_at, LEFT_MESSAGES.c.id
        )
        if not include_handled:
            query = query.where(LEFT_MESSAGES.c.handled.is_(False))

        async with self._reading() as conn:
            rows = await conn.execute(query)
        return [_left_message(row) for row in rows]

    async def mark_left_message_handled(self, message_id: int) -> bool:
        """Mark a left message handled.

        Return False if it was already handled or does not exist.
        """

        async def transaction(conn: AsyncConnection) -> bool:
            query = (
                update(LEFT_MESSAGES)
                .where(
                    LEFT_MESSAGES.c.id == message_id,
                    LEFT_MESSAGES.c.handled.is_(False),
                )
                .values(handled=True)
            )
            return (await conn.execute(query)).rowcount == 1

        return await self._write(transaction)


# -- steps shared by transactions ---------------------------------------------


async def lock_agent(conn: AsyncConnection, agent_id: int) -> Row[Any]:
    query = (
        select(AGENTS).where(AGENTS.c.id == agent_id).with_for_update(key_share=True)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return row


async def lock_customer(conn: AsyncConnection, customer_id: int) -> None:
    # FOR NO KEY UPDATE, like every lock of the store: it queues the other
    # callers that lock the customer, while rows that merely refer to it,
    # such as a left message, can still be inserted.
    query = (
        select(CUSTOMERS.c.id)
        .where(CUSTOMERS.c.id == customer_id)
        .with_for_update(key_share=True)
    )
    if (await conn.execute(query)).one_or_none() is None:
        raise NotFound(f"no customer {customer_id}")


# -- rows to records ----------------------------------------------------------


def _agent(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        login=row.login,
        name=row.name,
        status=AgentStatus(row.status),
        capacity=row.capacity,
        open_chats=row.open_chats,
        last_assigned_at=row.last_assigned_at,
    )


def _customer(row: Row[Any]) -> Customer:
    return Customer(
        id=row.id, external_id=row.external_id, name=row.name, email=row.email
    )


def _canned_response(row: Row[Any]) -> CannedResponse:
    return CannedResponse(
        id=row.id, agent_id=row.agent_id, shortcut=row.shortcut, body=row.body
    )


def _left_message(row: Row[Any]) -> LeftMessage:
    return LeftMessage(
        id=row.id,
        customer_id=row.customer_id,
        name=row.name,
        email=row.email,
        body=row.body,
        created_at=row.created_at,
        handled=row.handled,
    )
