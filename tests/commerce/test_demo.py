"""The demo shop: a fixed catalogue, customers with orders, product cards."""

from __future__ import annotations

import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from switchboard.commerce import Commerce
from switchboard.commerce.demo import (
    DEMO_CUSTOMERS,
    DEMO_PRODUCTS,
    DemoCommerce,
    product_svg,
)


@pytest.fixture
def demo() -> DemoCommerce:
    return DemoCommerce()


def test_demo_commerce_implements_the_commerce_interface() -> None:
    commerce: Commerce = DemoCommerce()
    assert commerce is not None


def test_catalogue_has_about_fifty_well_formed_products() -> None:
    assert 45 <= len(DEMO_PRODUCTS) <= 60
    assert len({product.sku for product in DEMO_PRODUCTS}) == len(DEMO_PRODUCTS)

    for product in DEMO_PRODUCTS:
        assert re.fullmatch(r"SB-\d{4}", product.sku)
        assert Decimal(product.price) > 0
        assert re.fullmatch(r"\d+\.\d{2}", product.price)
        assert product.currency == "EUR"
        assert product.image == f"/static/products/{product.sku}.svg"
        assert product.url == f"/shop/product/{product.sku}"


async def test_search_matches_name_case_insensitively(demo: DemoCommerce) -> None:
    found = await demo.search_products("GRINDER")

    assert [product.name for product in found] == ["Burr Coffee Grinder"]


async def test_search_matches_sku_case_insensitively(demo: DemoCommerce) -> None:
    found = await demo.search_products("sb-1013")

    assert [product.sku for product in found] == ["SB-1013"]


async def test_search_returns_at_most_limit_products(demo: DemoCommerce) -> None:
    assert len(await demo.search_products("sb-10", limit=5)) == 5
    assert await demo.search_products("tea", limit=0) == []


async def test_search_without_a_match_is_empty(demo: DemoCommerce) -> None:
    assert await demo.search_products("submarine") == []


async def test_product_is_found_by_sku(demo: DemoCommerce) -> None:
    product = await demo.product("SB-1001")

    assert product is not None
    assert product.name == "Espresso Roast Whole Beans 1 kg"
    assert product.price == "24.90"


async def test_unknown_product_is_none(demo: DemoCommerce) -> None:
    assert await demo.product("SB-9999") is None


async def test_customer_has_orders_newest_first(demo: DemoCommerce) -> None:
    customer = await demo.customer("cust-1")

    assert customer is not None
    assert customer.name == "Anna Schmidt"
    assert customer.email == "anna.schmidt@example.com"
    placed = [order.placed_at for order in customer.orders]
    assert placed == sorted(placed, reverse=True)
    assert customer.orders[0].items[0]["sku"] == "SB-1006"


async def test_unknown_customer_is_none(demo: DemoCommerce) -> None:
    assert await demo.customer("cust-404") is None


async def test_changing_a_returned_customer_leaves_the_data_set_alone(
    demo: DemoCommerce,
) -> None:
    customer = await demo.customer("cust-2")
    assert customer is not None

    customer.orders.clear()

    again = await demo.customer("cust-2")
    assert again is not None
    assert again.orders


def test_every_customer_has_one_to_four_orders_that_add_up() -> None:
    prices = {product.sku: Decimal(product.price) for product in DEMO_PRODUCTS}
    assert [c.external_id for c in DEMO_CUSTOMERS] == [f"cust-{i}" for i in range(1, 6)]

    for customer in DEMO_CUSTOMERS:
        assert 1 <= len(customer.orders) <= 4
        for order in customer.orders:
            total = sum(
                prices[str(item["sku"])] * int(item["quantity"]) for item in order.items
            )
            assert Decimal(order.total) == total


def test_product_svg_is_a_card_with_the_initials() -> None:
    svg = product_svg("SB-1006")  # Burr Coffee Grinder

    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["BC"]


def test_product_svg_is_deterministic() -> None:
    assert product_svg("SB-1042") == product_svg("SB-1042")
    assert product_svg("SB-1042") != product_svg("SB-1043")


def test_product_svg_of_an_unknown_sku_raises_key_error() -> None:
    with pytest.raises(KeyError):
        product_svg("SB-0000")


def test_every_product_has_a_parseable_svg() -> None:
    for product in DEMO_PRODUCTS:
        ElementTree.fromstring(product_svg(product.sku))
