"""Pages: the demo shop, the agent console, product images, demo tokens."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from ..chat import Hub

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_web = resources.files("switchboard") / "web"


def _page(name: str) -> FileResponse:
    return FileResponse(str(_web / name), media_type="text/html")


@router.get("/")
async def shop() -> FileResponse:
    return _page("shop.html")


@router.get("/shop/product/{sku}")
async def shop_product(sku: str) -> FileResponse:
    return _page("shop.html")


@router.get("/console")
async def console() -> FileResponse:
    return _page("console.html")


@router.get("/widget.js")
async def widget() -> FileResponse:
    return FileResponse(str(_web / "widget.js"), media_type="text/javascript")


@router.get("/static/products/{name}.svg")
async def product_image(name: str) -> Response:
    from ..commerce.demo import product_svg

    try:
        svg = product_svg(name)
    except KeyError:
        raise HTTPException(404, "no such product") from None
    return Response(svg, media_type="image/svg+xml")


@router.get("/demo/customers")
async def demo_customers(request: Request) -> dict[str, Any]:
    """Demo only: sign in as one of the demo shop's customers."""
    if not request.app.state.demo:
        raise HTTPException(404, "not found")
    from ..commerce.demo import DEMO_CUSTOMERS

    hub: Hub = request.app.state.hub
    return {
        "customers": [
            {
                "external_id": c.external_id,
                "name": c.name,
                "token": hub.signer.customer(c.external_id, c.name, c.email),
            }
            for c in DEMO_CUSTOMERS
        ]
    }


@router.get("/demo/products")
async def demo_products(request: Request) -> dict[str, Any]:
    """Demo only: the demo shop's catalogue, for the shop page to list."""
    if not request.app.state.demo:
        raise HTTPException(404, "not found")
    from dataclasses import asdict

    from ..commerce.demo import DEMO_PRODUCTS

    return {"products": [asdict(p) for p in DEMO_PRODUCTS]}


@router.get("/api/availability", include_in_schema=True, tags=["widget"])
async def availability(request: Request) -> dict[str, Any]:
    """How many agents are online and connected: the widget's "leave a
    message" form shows when there are none."""
    hub: Hub = request.app.state.hub
    connected = await hub.connected_agents()
    online = [
        a for a in connected if (hub.board.entry(a) or {}).get("status") == "online"
    ]
    return {"agents_online": len(online)}
