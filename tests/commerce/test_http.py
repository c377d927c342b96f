"""HttpCommerce against a real HTTP server that speaks the shop API contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard.commerce import Commerce, Product
from switchboard.commerce.demo import DEMO_PRODUCTS
from switchboard.commerce.http import HttpCommerce
from switchboard.errors import CommerceError
from tests.commerce.conftest import TOKEN, Shop
from tests.conftest import free_port


@pytest.fixture
async def commerce(shop: Shop) -> AsyncIterator[HttpCommerce]:
    client = HttpCommerce(shop.url, timeout=2.0)
    yield client
    await client.close()


async def test_http_commerce_implements_the_commerce_interface() -> None:
    commerce: Commerce = HttpCommerce("http://127.0.0.1:1")
    await commerce.close()


async def test_search_returns_the_shops_products(
    commerce: HttpCommerce, shop: Shop
) -> None:
    found = await commerce.search_products("  grinder ", limit=5)

    assert found == [p for p in DEMO_PRODUCTS if p.name == "Burr Coffee Grinder"]
    assert shop.requests[0].path == "/api/products?q=grinder&limit=5"


async def test_search_never_returns_more_than_limit(commerce: HttpCommerce) -> None:
    assert len(await commerce.search_products("SB-", limit=3)) == 3


async def test_search_with_zero_limit_asks_nothing(
    commerce: HttpCommerce, shop: Shop
) -> None:
    assert await commerce.search_products("tea", limit=0) == []
    assert shop.requests == []


async def test_product_is_found_by_sku(commerce: HttpCommerce) -> None:
    product = await commerce.product("SB-1001")

    assert product == Product(
        sku="SB-1001",
        name="Espresso Roast Whole Beans 1 kg",
        price="24.90",
        currency="EUR",
        image="/static/products/SB-1001.svg",
        url="/shop/product/SB-1001",
    )


async def test_unknown_product_is_none(commerce: HttpCommerce) -> None:
    assert await commerce.product("SB-9999") is None


async def test_path_parts_are_url_encoded(commerce: HttpCommerce, shop: Shop) -> None:
    assert await commerce.product("a b/c?d#e") is None
    assert await commerce.customer("x/../y") is None

    paths = [request.path for request in shop.requests]
    assert paths == ["/api/products/a%20b%2Fc%3Fd%23e", "/api/customers/x%2F..%2Fy"]


async def test_dot_segments_are_never_sent(commerce: HttpCommerce, shop: Shop) -> None:
    assert await commerce.product("..") is None
    assert await commerce.customer(".") is None
    assert shop.requests == []


async def test_customer_has_orders_newest_first(commerce: HttpCommerce) -> None:
    customer = await commerce.customer("cust-3")

    assert customer is not None
    assert (customer.name, customer.email) == ("Sofia Rossi", "sofia.rossi@example.com")
    assert [order.id for order in customer.orders] == [
        "SO-10460",
        "SO-10398",
        "SO-10250",
        "SO-10102",
    ]
    first = customer.orders[0]
    assert first.placed_at == "2024-11-30T08:05:00+00:00"
    assert (first.status, first.total, first.currency) == (
        "processing",
        "318.00",
        "EUR",
    )
    assert first.items == [
        {"sku": "SB-1021", "name": "Ergonomic Office Chair", "quantity": 1},
        {"sku": "SB-1023", "name": "Walnut Monitor Stand", "quantity": 1},
    ]


async def test_unknown_customer_is_none(commerce: HttpCommerce) -> None:
    assert await commerce.customer("cust-404") is None


async def test_no_authorization_header_without_a_token(
    commerce: HttpCommerce, shop: Shop
) -> None:
    await commerce.product("SB-1001")

    assert shop.requests[0].authorization is None


async def test_token_is_sent_as_bearer(private_shop: Shop) -> None:
    commerce = HttpCommerce(private_shop.url, token=TOKEN)
    try:
        assert await commerce.product("SB-1001") is not None
    finally:
        await commerce.close()

    assert private_shop.requests[0].authorization == f"Bearer {TOKEN}"


async def test_rejected_token_raises_without_revealing_it(private_shop: Shop) -> None:
    commerce = HttpCommerce(private_shop.url, token="wrong")
    try:
        with pytest.raises(CommerceError, match="401") as caught:
            await commerce.product("SB-1001")
    finally:
        await commerce.close()

    assert "wrong" not in str(caught.value)


async def test_server_error_raises(commerce: HttpCommerce, shop: Shop) -> None:
    shop.mode = "error"

    with pytest.raises(CommerceError, match="500"):
        await commerce.product("SB-1001")
    with pytest.raises(CommerceError, match="500"):
        await commerce.customer("cust-1")
    with pytest.raises(CommerceError, match="500"):
        await commerce.search_products("tea")


async def test_missing_search_endpoint_raises(
    commerce: HttpCommerce, shop: Shop
) -> None:
    # A 404 for a single product means "no such product"; for the product
    # list it means a wrong base URL, which must not look like "no results".
    shop.mode = "missing"

    with pytest.raises(CommerceError, match="404"):
        await commerce.search_products("tea")


async def test_invalid_json_raises(commerce: HttpCommerce, shop: Shop) -> None:
    shop.mode = "garbage"

    with pytest.raises(CommerceError, match="invalid body") as caught:
        await commerce.product("SB-1001")
    assert caught.value.__cause__ is not None


async def test_json_of_the_wrong_shape_raises(
    commerce: HttpCommerce, shop: Shop
) -> None:
    shop.mode = "wrong-shape"

    with pytest.raises(CommerceError, match="invalid body"):
        await commerce.customer("cust-1")
    with pytest.raises(CommerceError, match="invalid body"):
        await commerce.search_products("tea")


async def test_slow_shop_times_out(shop: Shop) -> None:
    shop.mode = "slow"
    commerce = HttpCommerce(shop.url, timeout=0.2)
    try:
        with pytest.raises(CommerceError, match="unreachable") as caught:
            await commerce.search_products("tea")
    finally:
        await commerce.close()

    assert caught.value.__cause__ is not None


async def test_unreachable_shop_raises() -> None:
    commerce = HttpCommerce(f"http://127.0.0.1:{free_port()}/api")
    try:
        with pytest.raises(CommerceError, match="unreachable"):
            await commerce.product("SB-1001")
    finally:
        await commerce.close()
