"""The built-in demo shop: products and customers that need no shop API.

The data set is fixed and deterministic, so demos, screenshots and tests see
the same shop every time. Product images are not files: :func:`product_svg`
draws each one on request, and the web layer serves it under
``/static/products/<sku>.svg``.
"""

from __future__ import annotations

import copy
import itertools
import zlib
from decimal import Decimal
from xml.sax.saxutils import escape

from switchboard.commerce import CustomerProfile, Order, Product

__all__ = ["DEMO_CUSTOMERS", "DEMO_PRODUCTS", "DemoCommerce", "product_svg"]

CURRENCY = "EUR"

# (category, name, price), in SKU order from SB-1001.
_CATALOGUE: tuple[tuple[str, str, str], ...] = (
    ("Coffee & Tea", "Espresso Roast Whole Beans 1 kg", "24.90"),
    ("Coffee & Tea", "Colombia Decaf Ground Coffee 500 g", "12.50"),
    ("Coffee & Tea", "Darjeeling First Flush Tea 100 g", "14.90"),
    ("Coffee & Tea", "Sencha Green Tea 200 g", "11.90"),
    ("Coffee & Tea", "Ceramic Pour-Over Dripper", "29.00"),
    ("Coffee & Tea", "Burr Coffee Grinder", "89.00"),
    ("Coffee & Tea", "Gooseneck Kettle 1 l", "59.90"),
    ("Coffee & Tea", "Glass French Press 8 Cups", "34.90"),
    ("Coffee & Tea", "Paper Filters Size 02 (100)", "4.90"),
    ("Coffee & Tea", "Milk Frothing Pitcher 350 ml", "16.90"),
    ("Kitchen", "Chef's Knife 20 cm", "79.00"),
    ("Kitchen", "Oak Cutting Board", "39.90"),
    ("Kitchen", "Cast Iron Skillet 26 cm", "49.90"),
    ("Kitchen", "Nonstick Frying Pan 28 cm", "44.90"),
    ("Kitchen", "Stainless Saucepan 2 l", "36.00"),
    ("Kitchen", "Digital Kitchen Scale", "22.90"),
    ("Kitchen", "Silicone Spatula Set (3)", "13.90"),
    ("Kitchen", "Linen Tea Towels (2)", "18.00"),
    ("Kitchen", "Glass Storage Jars (4)", "27.50"),
    ("Kitchen", "Stoneware Dinner Plates (4)", "54.00"),
    ("Home Office", "Ergonomic Office Chair", "249.00"),
    ("Home Office", "Standing Desk Frame", "329.00"),
    ("Home Office", "Walnut Monitor Stand", "69.00"),
    ("Home Office", "LED Desk Lamp", "45.90"),
    ("Home Office", "Wool Felt Desk Mat", "32.00"),
    ("Home Office", "Mechanical Keyboard", "119.00"),
    ("Home Office", "Wireless Mouse", "39.90"),
    ("Home Office", "USB-C Docking Station", "149.00"),
    ("Home Office", "A5 Dotted Notebook", "9.90"),
    ("Home Office", "Cable Organiser Box", "19.90"),
    ("Audio", "Wireless Noise-Cancelling Headphones", "229.00"),
    ("Audio", "True Wireless Earbuds", "99.00"),
    ("Audio", "Bluetooth Bookshelf Speakers", "199.00"),
    ("Audio", "Portable Waterproof Speaker", "69.90"),
    ("Audio", "USB Podcast Microphone", "129.00"),
    ("Audio", "Turntable with Preamp", "279.00"),
    ("Audio", "Headphone Stand", "24.90"),
    ("Audio", "Braided Audio Cable 1.5 m", "12.90"),
    ("Audio", "Clip-On Radio", "49.00"),
    ("Audio", "Smart Speaker Mini", "59.00"),
    ("Outdoor", "Two-Person Hiking Tent", "189.00"),
    ("Outdoor", "Down Sleeping Bag", "219.00"),
    ("Outdoor", "Trail Running Shoes", "129.90"),
    ("Outdoor", "Insulated Water Bottle 750 ml", "27.90"),
    ("Outdoor", "Daypack 25 l", "79.90"),
    ("Outdoor", "Trekking Poles (Pair)", "64.00"),
    ("Outdoor", "Rechargeable Headlamp", "34.90"),
    ("Outdoor", "Camping Stove", "54.90"),
    ("Outdoor", "Merino Base Layer Top", "74.00"),
    ("Outdoor", "Packable Rain Jacket", "119.00"),
)

# Card colours per category: background and text.
_COLOURS = {
    "Coffee & Tea": ("#6f4e37", "#fdf6ec"),
    "Kitchen": ("#b5473a", "#fff4f0"),
    "Home Office": ("#2f5d8a", "#eef5fc"),
    "Audio": ("#3d3d5c", "#f0f0ff"),
    "Outdoor": ("#3f7a4a", "#f0faf1"),
}


def _sku(index: int) -> str:
    return f"SB-{1001 + index}"


_CATEGORY = {_sku(i): entry[0] for i, entry in enumerate(_CATALOGUE)}

DEMO_PRODUCTS: tuple[Product, ...] = tuple(
    Product(
        sku=_sku(i),
        name=name,
        price=price,
        currency=CURRENCY,
        image=f"/static/products/{_sku(i)}.svg",
        url=f"/shop/product/{_sku(i)}",
    )
    for i, (_, name, price) in enumerate(_CATALOGUE)
)

_BY_SKU = {product.sku: product for product in DEMO_PRODUCTS}


def _order(
    order_id: str, placed_at: str, status: str, lines: tuple[tuple[str, int], ...]
) -> Order:
    # Totals come from the catalogue, so they always add up.
    total = sum(
        (Decimal(_BY_SKU[sku].price) * quantity for sku, quantity in lines),
        Decimal("0"),
    )
    items: list[dict[str, str | int]] = [
        {"sku": sku, "name": _BY_SKU[sku].name, "quantity": quantity}
        for sku, quantity in lines
    ]
    return Order(order_id, placed_at, status, f"{total:.2f}", CURRENCY, items)


# Orders newest first, as the Commerce contract promises.
DEMO_CUSTOMERS: tuple[CustomerProfile, ...] = (
    CustomerProfile(
        "cust-1",
        "Anna Schmidt",
        "anna.schmidt@example.com",
        [
            _order(
                "SO-10452",
                "2024-11-28T09:14:00+00:00",
                "processing",
                (("SB-1006", 1), ("SB-1009", 2)),
            ),
            _order(
                "SO-10311",
                "2024-10-03T17:40:00+00:00",
                "delivered",
                (("SB-1001", 2),),
            ),
            _order(
                "SO-10007",
                "2024-06-21T11:02:00+00:00",
                "delivered",
                (("SB-1005", 1), ("SB-1009", 1), ("SB-1003", 1)),
            ),
        ],
    ),
    CustomerProfile(
        "cust-2",
        "Lucas Martin",
        "lucas.martin@example.com",
        [
            _order(
                "SO-10433",
                "2024-11-20T14:25:00+00:00",
                "shipped",
                (("SB-1031", 1),),
            ),
        ],
    ),
    CustomerProfile(
        "cust-3",
        "Sofia Rossi",
        "sofia.rossi@example.com",
        [
            _order(
                "SO-10460",
                "2024-11-30T08:05:00+00:00",
                "processing",
                (("SB-1021", 1), ("SB-1023", 1)),
            ),
            _order(
                "SO-10398",
                "2024-11-02T19:51:00+00:00",
                "cancelled",
                (("SB-1022", 1),),
            ),
            _order(
                "SO-10250",
                "2024-09-12T10:30:00+00:00",
                "delivered",
                (("SB-1026", 1), ("SB-1027", 1)),
            ),
            _order(
                "SO-10102",
                "2024-07-30T16:12:00+00:00",
                "returned",
                (("SB-1024", 1),),
            ),
        ],
    ),
    CustomerProfile(
        "cust-4",
        "Jan de Vries",
        "jan.devries@example.com",
        [
            _order(
                "SO-10417",
                "2024-11-12T07:45:00+00:00",
                "delivered",
                (("SB-1041", 1), ("SB-1047", 2), ("SB-1044", 2)),
            ),
            _order(
                "SO-10199",
                "2024-08-26T12:18:00+00:00",
                "delivered",
                (("SB-1043", 1),),
            ),
        ],
    ),
    CustomerProfile(
        "cust-5",
        "Emma Johansson",
        "emma.johansson@example.com",
        [
            _order(
                "SO-10445",
                "2024-11-25T21:33:00+00:00",
                "shipped",
                (("SB-1011", 1), ("SB-1013", 1), ("SB-1012", 1)),
            ),
            _order(
                "SO-10288",
                "2024-09-29T13:09:00+00:00",
                "delivered",
                (("SB-1016", 1), ("SB-1017", 1)),
            ),
        ],
    ),
)

_CUSTOMERS = {customer.external_id: customer for customer in DEMO_CUSTOMERS}


def _initials(name: str) -> str:
    words = [word for word in name.split() if word[:1].isalpha()]
    return "".join(word[0] for word in words[:2]).upper()


def product_svg(sku: str) -> str:
    """The product's picture: a card in its category's colour with initials.

    Raises :class:`KeyError` for a SKU that is not in the demo shop.
    """
    product = _BY_SKU[sku]
    background, foreground = _COLOURS[_CATEGORY[sku]]

    # A per-product tilt of the stripe tells cards of one category apart.
    tilt = zlib.crc32(sku.encode()) % 60 - 30
    initials = escape(_initials(product.name))
    title = escape(product.name)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" '
        f'viewBox="0 0 240 240" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<rect width="240" height="240" rx="24" fill="{background}"/>'
        f'<rect x="-60" y="150" width="360" height="36" fill="{foreground}" '
        f'opacity="0.15" transform="rotate({tilt} 120 168)"/>'
        f'<text x="120" y="138" text-anchor="middle" fill="{foreground}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="84" '
        f'font-weight="700">{initials}</text>'
        "</svg>"
    )


class DemoCommerce:
    """:class:`~switchboard.commerce.Commerce` over the built-in data set."""

    async def search_products(self, query: str, limit: int = 20) -> list[Product]:
        needle = query.strip().casefold()
        found = (
            product
            for product in DEMO_PRODUCTS
            if needle in product.name.casefold() or needle in product.sku.casefold()
        )
        return list(itertools.islice(found, max(limit, 0)))

    async def product(self, sku: str) -> Product | None:
        return _BY_SKU.get(sku.strip().upper())

    async def customer(self, external_id: str) -> CustomerProfile | None:
        # A copy: orders hold lists and dicts a caller could change.
        customer = _CUSTOMERS.get(external_id)
        return copy.deepcopy(customer) if customer is not None else None

    async def close(self) -> None:
        pass
