"""Tables of the SQL store, as SQLAlchemy declarative models.

These models are the schema's description in Python: :mod:`~switchboard.store.sql`
builds its queries from them and a test compares them with what the migrations
create. The schema itself only ever changes through a migration in
``migrations/versions``; never call ``metadata.create_all()`` on a real
database.

Times are float seconds since the epoch, as :func:`time.time` returns them,
so both backends store the same values without time zone conversions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AgentRow",
    "AssignmentRow",
    "Base",
    "CannedResponseRow",
    "ConversationRow",
    "CustomerRow",
    "LeftMessageRow",
    "MessageRow",
    "ReadCursorRow",
]


# Constraints get predictable names on every backend, so that a later
# migration can drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Python None is stored as SQL NULL rather than the JSON text "null".
JsonColumn = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AgentRow(Base):
    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity"),
        CheckConstraint("open_chats >= 0", name="open_chats"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int] = mapped_column(Integer)
    # Kept equal to the number of OPEN conversations held by the agent; the
    # store changes both in the same transaction.
    open_chats: Mapped[int] = mapped_column(Integer, default=0)
    last_assigned_at: Mapped[float | None] = mapped_column(Double)


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique when set; anonymous visitors all have NULL, which both
    # backends allow any number of times in a unique column.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # Queue order: QUEUED conversations by queued_at.
        Index(None, "state", "queued_at"),
        # Latest conversation of a customer: highest id.
        Index(None, "customer_id", "id"),
        # An agent's conversations, and release of an agent.
        Index(None, "agent_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    state: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    last_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # The seq of the newest message; the next one gets last_seq + 1.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Double)
    queued_at: Mapped[float | None] = mapped_column(Double)
    # What the widget reported: {"url": ..., "title": ..., "cart": [...]}.
    context: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Dedupe of resent messages relies on this constraint.
        UniqueConstraint("conversation_id", "client_id"),
    )

    # (conversation_id, seq) is the key: seq numbers are unique per
    # conversation and replay reads them in this order.
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    sender: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)
    created_at: Mapped[float] = mapped_column(Double)


class AssignmentRow(Base):
    """One line of a conversation's assignment history."""

    __tablename__ = "assignments"
    __table_args__ = (Index(None, "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Double)


class ReadCursorRow(Base):
    __tablename__ = "read_cursors"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id"), primary_key=True
    )
    # A user id such as "c:12" or "a:3". "user" is a reserved word in
    # PostgreSQL; SQLAlchemy quotes it, hand-written SQL must too.
    user: Mapped[str] = mapped_column(String(100), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class CannedResponseRow(Base):
    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("agent_id", "shortcut"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)


class LeftMessageRow(Base):
    __tablename__ = "left_messages"
    __table_args__ = (Index(None, "handled", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    handled: Mapped[bool] = mapped_column(default=False)
