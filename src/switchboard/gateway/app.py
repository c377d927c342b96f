"""The ASGI application: wires the backends, the hub and the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..addressbook import AddressBook
from ..backplane import Backplane
from ..chat import Hub
from ..commerce import Commerce
from ..config import Settings
from ..errors import (
    CommerceError,
    InvalidInput,
    NotFound,
    StoreError,
    SwitchboardError,
)
from . import api, pages
from .limits import BodyLimit
from .throttle import Throttle
from .ws import serve_websocket

__all__ = ["create_app"]

logger = logging.getLogger("switchboard.gateway")


def _backends(settings: Settings) -> tuple[AddressBook, Backplane, bool]:
    """The address book and backplane, and whether they span a cluster."""
    # Imported only when chosen: a standalone server never loads the Redis
    # client, nor a clustered one the in-process backends.
    if settings.redis_url:
        from ..addressbook.redis import RedisAddressBook
        from ..backplane.redis import RedisBackplane

        addressbook = RedisAddressBook(
            settings.redis_url,
            max_per_user=settings.max_addresses_per_user,
            prefix=settings.redis_prefix,
        )
        backplane = RedisBackplane(settings.redis_url, prefix=settings.redis_prefix)
        return addressbook, backplane, True

    from ..addressbook.memory import MemoryAddressBook
    from ..backplane.memory import MemoryBackplane

    return (
        MemoryAddressBook(max_per_user=settings.max_addresses_per_user),
        MemoryBackplane(),
        False,
    )


def _commerce(settings: Settings) -> Commerce:
    if settings.commerce_url:
        from ..commerce.http import HttpCommerce

        token = settings.commerce_token
        return HttpCommerce(
            settings.commerce_url,
            token=None if token is None else token.get_secret_value(),
        )
    from ..commerce.demo import DemoCommerce

    return DemoCommerce()


def create_app(settings: Settings, *, demo: bool = False) -> FastAPI:
    """Build the app; backends connect when the ASGI lifespan starts."""
    if not settings.secret_key.get_secret_value():
        raise SwitchboardError("a secret key is required (SWITCHBOARD_SECRET_KEY)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ..store.sql import SqlStore

        # The store opens first, so a wrong URL or an old schema stops the
        # server before the hub starts and announces it to the cluster.
        store = SqlStore(settings.database_url)
        await store.open()
        addressbook, backplane, clustered = _backends(settings)
        commerce = _commerce(settings)
        hub = Hub(
            settings, store, addressbook, backplane, commerce, clustered=clustered
        )
        await hub.start()
        app.state.hub = hub

        # Closed in reverse: the hub's connections and writer still use
        # the store while they shut down.
        try:
            yield
        finally:
            await hub.close()
            await commerce.close()
            await store.close()

    app = FastAPI(
        title="Switchboard",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.demo = demo
    # Ten login attempts per login name in five minutes.
    app.state.login_throttle = Throttle(10, 300.0)

    if settings.cors_origins:
        # The widget's modules and its few HTTP calls (availability, left
        # messages) come from the shop's pages; tokens travel in headers,
        # never in cookies, so credentials stay off.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    web = resources.files("switchboard") / "web"
    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await serve_websocket(ws.app.state.hub, ws)

    return app


# Request bodies: a left message or canned response at its limit, escaped
# as JSON allows, fits many times over.
MAX_BODY_BYTES = 256 * 1024


def _error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status,
        headers=headers,
    )


def _install_error_handlers(app: FastAPI) -> None:
    # Every error answer is JSON with a stable code; internals stay in the log.

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            429: "too_many_requests",
        }.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return _error(422, "bad_request", "invalid request", details=details)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", "not found")

    @app.exception_handler(InvalidInput)
    async def refused(request: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, "bad_request", "a value was refused")

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        logger.warning("store error on %s: %s", request.url.path, exc)
        return _error(503, "unavailable", "the database is unavailable")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # A bug: the client gets the same JSON shape as for any error, and
        # the traceback goes to the log (the server logs it after this).
        return _error(500, "internal", "internal error")

    @app.exception_handler(CommerceError)
    async def shop_down(request: Request, exc: CommerceError) -> JSONResponse:
        logger.warning("commerce error on %s: %s", request.url.path, exc)
        return _error(502, "commerce_unavailable", "the shop's API is unavailable")
