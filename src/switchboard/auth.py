"""Tokens and passwords.

Tokens are signed with the server's secret key (itsdangerous); passwords are
hashed with Argon2. A shop identifies its logged-in customers by signing a
customer token with the same secret (:func:`customer_token`), so the widget
never has to be trusted with who the customer is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadData, URLSafeTimedSerializer

from .protocol.frames import printable

__all__ = [
    "Identity",
    "TokenSigner",
    "customer_token",
    "hash_password",
    "verify_password",
]

AGENT_TOKEN_AGE = 12 * 3600
VISITOR_TOKEN_AGE = 365 * 24 * 3600
CUSTOMER_TOKEN_AGE = 24 * 3600

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token names.

    ``kind`` is "agent" (``id`` is the agent id), "visitor" (``id`` is the
    customer row) or "customer" (``external_id`` and profile from the shop).
    """

    kind: str
    id: int = 0
    external_id: str = ""
    name: str = ""
    email: str = ""


class TokenSigner:
    """Signs and checks tokens.

    Customer tokens are signed by the shop, so they may use a key of their
    own (``customer_key``): whoever holds it can name any customer, but
    can never mint an agent token.
    """

    def __init__(self, secret: str, customer_key: str | None = None) -> None:
        self._agents = URLSafeTimedSerializer(secret, salt="switchboard.agent")
        self._visitors = URLSafeTimedSerializer(secret, salt="switchboard.visitor")
        self._customers = URLSafeTimedSerializer(
            customer_key or secret, salt="switchboard.customer"
        )

    def agent(self, agent_id: int) -> str:
        return self._agents.dumps({"a": agent_id})

    def visitor(self, customer_id: int) -> str:
        return self._visitors.dumps({"c": customer_id})

    def customer(self, external_id: str, name: str, email: str) -> str:
        return self._customers.dumps({"id": external_id, "name": name, "email": email})

    def verify(self, token: str) -> Identity | None:
        """Return who ``token`` names, or None if it is bad or expired.

        A token signed with the right key may still carry values no record
        can have (an id past any database's range, a name with control
        characters): those are refused here like a bad signature.
        """
        # BadData covers a bad signature and a signed payload that is not
        # JSON; the rest is what odd but well-formed JSON raises below.
        refused = (BadData, KeyError, TypeError, ValueError, AttributeError)
        try:
            data = self._agents.loads(token, max_age=AGENT_TOKEN_AGE)
            return Identity("agent", id=_record_id(data["a"]))
        except refused:
            pass

        try:
            data = self._visitors.loads(token, max_age=VISITOR_TOKEN_AGE)
            return Identity("visitor", id=_record_id(data["c"]))
        except refused:
            pass

        try:
            data = self._customers.loads(token, max_age=CUSTOMER_TOKEN_AGE)
            return Identity(
                "customer",
                external_id=_external_id(data["id"]),
                name=_text(data.get("name", "")),
                email=_text(data.get("email", "")),
            )
        except (*refused, RecursionError):
            return None


# Ids fit the range the protocol allows (2**53, exact in JavaScript).
_MAX_ID = 2**53
# Profile fields, as the customer record keeps them.
MAX_TEXT = 200


def _record_id(value: object) -> int:
    if type(value) is not int or not 1 <= value <= _MAX_ID:
        raise ValueError("not a record id")
    return value


def _external_id(value: object) -> str:
    # The shop's own id for the customer: never cut short, since two ids
    # that differ only past the cut would name one customer.
    if type(value) is int and abs(value) < 2**63:
        return str(value)
    if not isinstance(value, str):
        raise ValueError("not a customer id")
    value = value.strip()
    if not 1 <= len(value) <= MAX_TEXT:
        raise ValueError("not a customer id")
    return printable(value)


def _text(value: object) -> str:
    # A profile field the shop may leave out; a long one is cut short.
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("not text")
    return printable(value.strip())[:MAX_TEXT]


def customer_token(key: str, external_id: str, name: str, email: str) -> str:
    """Sign a token for a shop's logged-in customer (call this in the shop).

    ``key`` is the server's ``customer_key`` (or its secret key if unset).
    """
    return TokenSigner(key, key).customer(external_id, name, email)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def verify_password(password_hash: str, password: str) -> bool:
    # Argon2 is deliberately slow; keep it off the event loop.
    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
