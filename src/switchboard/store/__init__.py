"""The store: SQL is the record of users, conversations and messages.

:class:`Store` is the interface the chat services use;
:class:`~switchboard.store.sql.SqlStore` implements it on SQLite (the
embedded default) and PostgreSQL (production) with SQLAlchemy. Every method
either completes or raises :class:`~switchboard.errors.StoreError`; nothing
is half-written.

Atomicity that routing relies on lives here: assigning, transferring and
closing a conversation each run in one transaction that locks the rows it
reads, so two app servers never assign one conversation twice or push an
agent over capacity, and finding or creating a customer's conversation
locks the customer, so two tabs starting a chat at once share one.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Agent",
    "AgentStatus",
    "Assignment",
    "CannedResponse",
    "Context",
    "Conversation",
    "ConversationState",
    "Customer",
    "LeftMessage",
    "NewMessage",
    "Store",
    "StoredMessage",
]


class AgentStatus(enum.StrEnum):
    """What an agent chose; connecting never changes it."""

    ONLINE = "online"
    AWAY = "away"


class ConversationState(enum.StrEnum):
    QUEUED = "queued"  # waiting for an agent
    OPEN = "open"  # assigned to an agent
    CLOSED = "closed"  # closed; a customer message or an agent reopens it


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    login: str
    name: str
    status: AgentStatus
    capacity: int
    open_chats: int
    # Seconds since the epoch of the last time this agent was assigned a
    # chat (None: never). Routing prefers the agent idle longest.
    last_assigned_at: float | None


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    # The shop's own customer id; None for an anonymous visitor.
    external_id: str | None
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    customer_id: int
    state: ConversationState
    agent_id: int | None
    # The agent who last had this conversation (survives close), used to
    # route a returning customer back to them.
    last_agent_id: int | None
    last_seq: int
    created_at: float
    queued_at: float | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    conversation_id: int
    client_id: str
    sender: str  # user id, e.g. "c:12" or "a:3"
    kind: str  # "text" | "product" | "system"
    body: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    conversation_id: int
    seq: int
    client_id: str
    sender: str
    kind: str
    body: str
    data: dict[str, Any] | None
    created_at: float
    # True when this call stored it; False when (conversation, client_id)
    # was already stored and this is the earlier record.
    new: bool = True


@dataclass(frozen=True, slots=True)
class Assignment:
    conversation_id: int
    agent_id: int
    previous_agent_id: int | None
    reason: str  # "previous" | "least_loaded" | "transfer" | "take" | "reopen"


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: int
    agent_id: int
    shortcut: str
    body: str


@dataclass(frozen=True, slots=True)
class LeftMessage:
    """A message left by a customer when no agent was online."""

    id: int
    customer_id: int
    name: str
    email: str
    body: str
    created_at: float
    handled: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """What the widget reports about the customer's page and cart."""

    url: str = ""
    title: str = ""
    cart: list[dict[str, Any]] = field(default_factory=list)


class Store(Protocol):
    """The record. All ids are integers assigned by the database."""

    async def open(self) -> None:
        """Connect; the schema must already be at the latest migration."""

    async def close(self) -> None: ...

    # -- agents -----------------------------------------------------------

    async def create_agent(
        self, login: str, name: str, password_hash: str, capacity: int
    ) -> Agent:
        """Raise StoreError if the login is taken."""

    async def agent_by_login(self, login: str) -> tuple[Agent, str] | None:
        """Return the agent and its password hash."""

    async def agent(self, agent_id: int) -> Agent:
        """Raise NotFound if there is no such agent."""

    async def agents(self) -> list[Agent]: ...

    async def set_agent_status(self, agent_id: int, status: AgentStatus) -> Agent: ...

    async def set_agent_password(self, login: str, password_hash: str) -> None:
        """Raise NotFound if there is no such login."""

    async def set_agent_capacity(self, agent_id: int, capacity: int) -> Agent: ...

    # -- customers --------------------------------------------------------

    async def customer(self, customer_id: int) -> Customer:
        """Raise NotFound if there is no such customer."""

    async def customer_by_external_id(
        self, external_id: str, name: str, email: str
    ) -> Customer:
        """Return the identified customer, creating or updating it."""

    async def create_visitor(self, name: str, email: str) -> Customer:
        """Create an anonymous visitor (external_id None)."""

    async def update_customer(
        self, customer_id: int, name: str, email: str
    ) -> None: ...

    # -- conversations ----------------------------------------------------

    async def conversation(self, conversation_id: int) -> Conversation:
        """Raise NotFound if there is no such conversation."""

    async def latest_conversation(self, customer_id: int) -> Conversation | None:
        """The customer's most recent conversation, whatever its state."""

    async def create_conversation(self, customer_id: int) -> Conversation:
        """Create a QUEUED conversation (queued_at = now)."""

    async def latest_or_create_conversation(
        self, customer_id: int
    ) -> tuple[Conversation, bool]:
        """The customer's latest conversation, or a new QUEUED one.

        The latest is returned whatever its state; the flag is True when
        this call created the conversation. Atomic across app servers: of
        concurrent calls for one customer (two tabs starting a chat at
        once), one creates and the others return its conversation. Raise
        NotFound if there is no such customer.
        """

    async def conversations(
        self,
        *,
        agent_id: int | None = None,
        states: Sequence[ConversationState] = (),
        limit: int = 100,
    ) -> list[Conversation]:
        """Newest first, filtered by assigned agent and/or states."""

    async def queue(self) -> list[Conversation]:
        """QUEUED conversations, oldest queued_at first (queue order)."""

    async def assign(
        self,
        conversation_id: int,
        candidates: Sequence[int],
        prefer: int | None,
    ) -> Assignment | None:
        """Atomically assign a QUEUED conversation to an agent.

        Eligible agents are the ``candidates`` (agents with a live
        connection) whose status is ONLINE and whose open_chats < capacity.
        ``prefer`` wins if eligible (reason "previous"); otherwise the
        eligible agent with the fewest open chats, ties broken by the oldest
        last_assigned_at (never assigned counts as oldest), then lowest id
        (reason "least_loaded"). Sets state OPEN, agent_id, last_agent_id,
        increments the agent's open_chats, sets its last_assigned_at, and
        writes an assignment history row, all in one transaction that locks
        the conversation and agent rows. Returns None, changing nothing, if
        the conversation is not QUEUED or no agent is eligible.
        """

    async def take(self, conversation_id: int, agent_id: int) -> Assignment | None:
        """An agent picks a QUEUED conversation for themselves.

        Same checks and effects as :meth:`assign` with only that agent as
        candidate, except that status AWAY does not prevent it. Returns
        None if the conversation is not QUEUED or the agent is at capacity.
        """

    async def reopen_to(self, conversation_id: int, agent_id: int) -> Assignment | None:
        """An agent reopens a CLOSED conversation and takes it at once.

        Same checks and effects as :meth:`take` (capacity counts, status
        AWAY does not), from CLOSED instead of QUEUED, with reason
        "reopen", in one transaction: the conversation is never queued in
        between, so no drain can hand it to someone else. Returns None,
        changing nothing, if it is not CLOSED or the agent is at capacity.
        """

    async def transfer(
        self, conversation_id: int, from_agent: int, to_agent: int
    ) -> Assignment | None:
        """Move an OPEN conversation held by ``from_agent`` to ``to_agent``.

        Atomic; returns None (nothing changed) if the conversation is not
        OPEN with ``from_agent`` or ``to_agent`` is at capacity. Adjusts both
        agents' open_chats and writes history (reason "transfer").
        """

    async def close_conversation(self, conversation_id: int, agent_id: int) -> bool:
        """Close an OPEN conversation held by ``agent_id``.

        Decrements open_chats, keeps last_agent_id, writes history. Returns
        False (nothing changed) if it is not OPEN with that agent.
        """

    async def reopen(self, conversation_id: int) -> bool:
        """Turn a CLOSED conversation back to QUEUED (queued_at = now).

        Returns False if it was not CLOSED (e.g. another server reopened it
        first), so exactly one caller routes it.
        """

    async def release_agent(self, agent_id: int) -> list[int]:
        """Requeue every OPEN conversation of an agent (agent deleted).

        Returns the conversation ids requeued.
        """

    async def history(self, conversation_id: int) -> list[dict[str, Any]]:
        """Assignment history rows, oldest first: agent_id, reason, at."""

    # -- messages ---------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        """Store a batch of messages in one transaction; return them in order.

        Each conversation numbers its messages 1, 2, 3... in the order they
        appear in the batch. A message whose (conversation_id, client_id)
        is already stored (earlier, or earlier in this batch) is not stored
        again: the earlier record is returned with ``new=False``. If any
        message names a conversation that does not exist, NotFound is raised
        and nothing in the batch is stored (callers check ids first).
        Concurrent appends from several servers to one conversation
        never produce a duplicate or a gap in seq.
        """

    async def messages(
        self, conversation_id: int, after_seq: int = 0, limit: int = 500
    ) -> list[StoredMessage]:
        """Messages with seq > after_seq, in seq order, at most ``limit``."""

    # -- read cursors -----------------------------------------------------

    async def mark_read(self, conversation_id: int, user: str, seq: int) -> int:
        """Move ``user``'s read cursor forward to ``seq`` (never back).

        ``seq`` is clamped to the conversation's last_seq. Returns the
        cursor after the call.
        """

    async def read_cursors(self, conversation_id: int) -> dict[str, int]:
        """user -> last read seq for one conversation."""

    async def unread_counts(
        self, user: str, conversation_ids: Sequence[int]
    ) -> dict[int, int]:
        """conversation id -> messages after ``user``'s cursor not sent by them."""

    # -- context, canned responses, left messages ------------------------

    async def set_context(self, conversation_id: int, context: Context) -> None: ...

    async def context(self, conversation_id: int) -> Context: ...

    async def canned_responses(self, agent_id: int) -> list[CannedResponse]: ...

    async def save_canned_response(
        self, agent_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse:
        """Create, or update the agent's own response ``response_id``."""

    async def delete_canned_response(self, agent_id: int, response_id: int) -> bool: ...

    async def leave_message(
        self, customer_id: int, name: str, email: str, body: str
    ) -> LeftMessage: ...

    async def left_messages(
        self, *, include_handled: bool = False
    ) -> list[LeftMessage]: ...

    async def mark_left_message_handled(self, message_id: int) -> bool: ...
