"""Commerce data from the shop's own HTTP API.

The JSON contract is documented in ``docs/commerce-api.md``. Every failure
(the shop unreachable or slow, an error status, a body that breaks the
contract) surfaces as :class:`~switchboard.errors.CommerceError`; only a 404
on a single product or customer means "no such thing" and returns None.
"""

from __future__ import annotations

import logging
from typing import Annotated, TypeVar
from urllib.parse import quote

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from switchboard.commerce import CustomerProfile, Order, Product
from switchboard.errors import CommerceError

__all__ = ["HttpCommerce"]

logger = logging.getLogger("switchboard.commerce")

# Search results are shown in a side panel; more than this is never useful
# and would let one query pull the whole catalogue.
MAX_SEARCH_LIMIT = 100

DecimalText = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    # Shops may send more than we read; extra fields are not an error.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Product(_Model):
    sku: NonEmpty
    name: NonEmpty
    price: DecimalText
    currency: Currency
    image: str
    url: str

    def to_product(self) -> Product:
        return Product(
            self.sku, self.name, self.price, self.currency, self.image, self.url
        )


class _ProductList(_Model):
    products: list[_Product]


class _Item(_Model):
    sku: NonEmpty
    name: str
    quantity: Annotated[int, Field(ge=0)]


class _Order(_Model):
    id: NonEmpty
    placed_at: AwareDatetime
    status: NonEmpty
    total: DecimalText
    currency: Currency
    items: list[_Item] = []

    def to_order(self) -> Order:
        items: list[dict[str, str | int]] = [
            {"sku": item.sku, "name": item.name, "quantity": item.quantity}
            for item in self.items
        ]
        return Order(
            self.id,
            self.placed_at.isoformat(),
            self.status,
            self.total,
            self.currency,
            items,
        )


class _Customer(_Model):
    external_id: NonEmpty
    name: str
    email: str
    orders: list[_Order] = []

    def to_profile(self) -> CustomerProfile:
        # The contract promises newest first; don't trust the shop's order.
        orders = sorted(self.orders, key=lambda order: order.placed_at, reverse=True)
        return CustomerProfile(
            self.external_id,
            self.name,
            self.email,
            [order.to_order() for order in orders],
        )


_M = TypeVar("_M", bound=_Model)


def _segment(value: str) -> str | None:
    """``value`` as one URL path segment, or None if it can't be one."""
    # "." and ".." would be resolved away and name another resource.
    if value in ("", ".", ".."):
        return None
    return quote(value, safe="")


class HttpCommerce:
    """:class:`~switchboard.commerce.Commerce` over the shop's HTTP API.

    ``base_url`` is the API root, e.g. ``https://shop.example/api/switchboard``;
    ``token``, when given, is sent as a Bearer token with every request.
    ``timeout`` bounds each request in seconds: an agent waits on it.
    """

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 3.0
    ) -> None:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def search_products(self, query: str, limit: int = 20) -> list[Product]:
        limit = min(limit, MAX_SEARCH_LIMIT)
        if limit <= 0:
            return []

        params = {"q": query.strip(), "limit": str(limit)}
        found = await self._get("/products", _ProductList, params=params)
        assert found is not None  # the product list is never "not found"
        return [product.to_product() for product in found.products[:limit]]

    async def product(self, sku: str) -> Product | None:
        segment = _segment(sku.strip())
        if segment is None:
            return None

        found = await self._get(f"/products/{segment}", _Product, missing_ok=True)
        return found.to_product() if found is not None else None

    async def customer(self, external_id: str) -> CustomerProfile | None:
        segment = _segment(external_id)
        if segment is None:
            return None

        found = await self._get(f"/customers/{segment}", _Customer, missing_ok=True)
        return found.to_profile() if found is not None else None

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(
        self,
        path: str,
        model: type[_M],
        *,
        params: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> _M | None:
        """GET ``path`` under the API root and validate the body as ``model``.

        A 404 returns None when ``missing_ok``; every other failure raises
        :class:`CommerceError`. Messages name the path, never the token.
        """
        url = self._base_url + path
        logger.debug("GET %s", url)
        try:
            response = await self._client.get(url, params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CommerceError(f"shop api unreachable at {path}: {exc!r}") from exc

        if response.status_code == httpx.codes.NOT_FOUND and missing_ok:
            return None
        if not response.is_success:
            raise CommerceError(f"shop api answered {response.status_code} for {path}")

        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CommerceError(
                f"shop api sent an invalid body for {path}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}"
            ) from exc
