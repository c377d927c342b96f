"""Initial schema: agents, customers, conversations, messages and the rest.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Written by hand to match :mod:`switchboard.store.models`; the store's tests
compare the two on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("login", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("open_chats", sa.Integer, nullable=False),
        sa.Column("last_assigned_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("login", name="uq_agents_login"),
        sa.CheckConstraint("capacity >= 0", name="ck_agents_capacity"),
        sa.CheckConstraint("open_chats >= 0", name="ck_agents_open_chats"),
    )

    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("external_id", name="uq_customers_external_id"),
    )

    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.Integer, nullable=True),
        sa.Column("last_agent_id", sa.Integer, nullable=True),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("queued_at", sa.Double, nullable=True),
        sa.Column("context", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_conversations_customer_id_customers",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_conversations_agent_id_agents"
        ),
        sa.ForeignKeyConstraint(
            ["last_agent_id"],
            ["agents.id"],
            name="fk_conversations_last_agent_id_agents",
        ),
    )
    op.create_index(
        "ix_conversations_state_queued_at", "conversations", ["state", "queued_at"]
    )
    op.create_index(
        "ix_conversations_customer_id_id", "conversations", ["customer_id", "id"]
    )
    op.create_index(
        "ix_conversations_agent_id_state", "conversations", ["agent_id", "state"]
    )

    op.create_table(
        "messages",
        sa.Column("conversation_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("sender", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("data", JSON, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "seq", name="pk_messages"),
        sa.UniqueConstraint(
            "conversation_id",
            "client_id",
            name="uq_messages_conversation_id_client_id",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
        ),
    )

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("conversation_id", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_assignments_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_assignments_agent_id_agents"
        ),
    )
    op.create_index(
        "ix_assignments_conversation_id_id", "assignments", ["conversation_id", "id"]
    )

    op.create_table(
        "read_cursors",
        sa.Column("conversation_id", sa.Integer, nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user", name="pk_read_cursors"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_read_cursors_conversation_id_conversations",
        ),
    )

    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.Integer, nullable=False),
        sa.Column("shortcut", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_canned_responses"),
        sa.UniqueConstraint(
            "agent_id", "shortcut", name="uq_canned_responses_agent_id_shortcut"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name="fk_canned_responses_agent_id_agents",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "left_messages",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("handled", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_left_messages"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_left_messages_customer_id_customers",
        ),
    )
    op.create_index(
        "ix_left_messages_handled_created_at",
        "left_messages",
        ["handled", "created_at"],
    )


def downgrade() -> None:
    # Children before parents, so no foreign key is left dangling.
    for table in (
        "left_messages",
        "canned_responses",
        "read_cursors",
        "assignments",
        "messages",
        "conversations",
        "customers",
        "agents",
    ):
        op.drop_table(table)
