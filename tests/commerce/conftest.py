"""A tiny real shop API for HttpCommerce tests, served by the standard library.

It speaks the contract of ``docs/commerce-api.md`` over the demo data set,
on a free loopback port, in a thread. ``Shop.mode`` switches it into one of
the ways a real shop fails, and ``Shop.requests`` records what it was sent.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from switchboard.commerce.demo import DEMO_CUSTOMERS, DEMO_PRODUCTS

__all__ = ["TOKEN", "Request", "Shop", "private_shop", "shop"]

TOKEN = "s3cret-token"


@dataclasses.dataclass(frozen=True)
class Request:
    path: str  # as sent, still percent-encoded, with the query
    authorization: str | None


class Shop:
    """State shared between a test and the server thread."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        # ok | error | garbage | wrong-shape | slow | missing
        self.mode = "ok"
        self.requests: list[Request] = []
        self.release = threading.Event()  # ends a "slow" response


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    shop: Shop

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A slow response released after the client gave up hits a closed
        # socket; that's the point of the test, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        shop = self.server.shop
        shop.requests.append(Request(self.path, self.headers.get("Authorization")))

        if shop.token is not None and (
            self.headers.get("Authorization") != f"Bearer {shop.token}"
        ):
            self._send(401, b'{"error": "unauthorized"}')
        elif shop.mode == "error":
            self._send(500, b'{"error": "database down"}')
        elif shop.mode == "garbage":
            self._send(200, b"<html>Maintenance</html>", "text/html")
        elif shop.mode == "wrong-shape":
            self._send(200, b'{"items": [], "name": 42}')
        elif shop.mode == "missing":
            self._send(404, b'{"error": "not found"}')
        elif shop.mode == "slow":
            shop.release.wait(10)
            self._send(200, b'{"products": []}')
        else:
            self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(part) for part in parts.path.split("/")[1:]]

        if segments == ["api", "products"]:
            query = parse_qs(parts.query)
            needle = query.get("q", [""])[0].casefold()
            limit = int(query.get("limit", ["20"])[0])
            found = [
                dataclasses.asdict(product)
                for product in DEMO_PRODUCTS
                if needle in product.name.casefold() or needle in product.sku.casefold()
            ]
            self._json({"products": found[:limit]})
        elif segments[:2] == ["api", "products"] and len(segments) == 3:
            products = {product.sku: product for product in DEMO_PRODUCTS}
            product = products.get(segments[2])
            self._json(dataclasses.asdict(product) if product else None)
        elif segments[:2] == ["api", "customers"] and len(segments) == 3:
            customers = {c.external_id: c for c in DEMO_CUSTOMERS}
            customer = customers.get(segments[2])
            self._json(self._customer(customer) if customer else None)
        else:
            self._json(None)

    @staticmethod
    def _customer(customer: Any) -> dict[str, Any]:
        body = dataclasses.asdict(customer)
        # Shops list orders in any order; the client must sort them.
        body["orders"].reverse()
        return body

    def _json(self, body: dict[str, Any] | None) -> None:
        if body is None:
            self._send(404, b'{"error": "not found"}')
        else:
            self._send(200, json.dumps(body).encode())

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(token: str | None) -> Iterator[Shop]:
    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.shop = Shop(f"http://127.0.0.1:{port}/api", token)
    # A short poll interval keeps shutdown, and so each test, fast.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield server.shop
    finally:
        server.shop.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def shop() -> Iterator[Shop]:
    """A shop API without authentication."""
    yield from _serve(None)


@pytest.fixture
def private_shop() -> Iterator[Shop]:
    """A shop API that requires the Bearer token ``TOKEN``."""
    yield from _serve(TOKEN)
