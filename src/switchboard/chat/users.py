"""User ids: the address book's keys and the ``sender`` of messages.

A user is named by role and database row: ``a:<agent id>`` for agents and
``c:<customer id>`` for customers and anonymous visitors.
"""

from __future__ import annotations

__all__ = ["AGENT_PREFIX", "CUSTOMER_PREFIX", "agent_user", "customer_user"]

AGENT_PREFIX = "a:"
CUSTOMER_PREFIX = "c:"


def agent_user(agent_id: int) -> str:
    return f"{AGENT_PREFIX}{agent_id}"


def customer_user(customer_id: int) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"
