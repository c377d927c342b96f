"""Commerce data: the shop's products and customers, shown inside the chat.

:class:`Commerce` has two implementations: the built-in demo data set
(:mod:`switchboard.commerce.demo`) and an HTTP client of the shop's own API
(:mod:`switchboard.commerce.http`), chosen by configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Commerce", "CustomerProfile", "Order", "Product"]


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price: str  # decimal as text, e.g. "19.90", to avoid float rounding
    currency: str
    image: str  # URL
    url: str


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    placed_at: str  # ISO 8601
    status: str
    total: str
    currency: str
    items: list[dict[str, str | int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    external_id: str
    name: str
    email: str
    orders: list[Order] = field(default_factory=list)


class Commerce(Protocol):
    async def search_products(self, query: str, limit: int = 20) -> list[Product]:
        """Products whose name or SKU contains ``query`` (case-insensitive)."""

    async def product(self, sku: str) -> Product | None: ...

    async def customer(self, external_id: str) -> CustomerProfile | None:
        """The shop's customer with recent orders, newest first."""

    async def close(self) -> None: ...
