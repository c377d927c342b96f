"""Error answers of the HTTP API, on a tiny app of their own."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from switchboard.gateway.app import _install_error_handlers


async def test_a_bug_answers_json_500_without_its_details() -> None:
    app = FastAPI()
    _install_error_handlers(app)

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("secret internals")

    # The server still logs the traceback; the client sees only the code.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        answer = await http.get("/broken")
    assert answer.status_code == 500
    assert answer.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret" not in answer.text
