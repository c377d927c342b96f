"""The HTTP API: login, canned responses, left messages, look-ups."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.chat.conftest import Server
from tests.harness import PASSWORD, agent_token


def auth(agent_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent_token(agent_id)}"}


def test_login_with_the_right_password_gives_a_working_token(
    server: Server, agent_ids: list[int]
) -> None:
    me = server.get("/api/me", headers=auth(agent_ids[0])).json()
    response = server.post(
        "/api/login", json={"login": me["login"], "password": PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()["token"]
    again = server.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert again.json()["id"] == agent_ids[0]

    wrong = server.post("/api/login", json={"login": me["login"], "password": "no"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"


def test_canned_responses_are_created_edited_and_deleted(
    server: Server, agent_ids: list[int]
) -> None:
    headers = auth(agent_ids[0])
    created = server.post(
        "/api/canned", headers=headers, json={"shortcut": "hi", "body": "Hello!"}
    )
    assert created.status_code == 201
    response_id = created.json()["id"]

    taken = server.post(
        "/api/canned", headers=headers, json={"shortcut": "hi", "body": "Again"}
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict"

    edited = httpx_put(server, f"/api/canned/{response_id}", headers, "hi", "Hey!")
    assert edited["body"] == "Hey!"
    listed = server.get("/api/canned", headers=headers).json()["responses"]
    assert [(r["shortcut"], r["body"]) for r in listed] == [("hi", "Hey!")]

    # Another agent neither sees nor deletes it.
    other = auth(agent_ids[1])
    assert server.get("/api/canned", headers=other).json()["responses"] == []
    gone = httpx.delete(f"{server.url}/api/canned/{response_id}", headers=other)
    assert gone.status_code == 404
    mine = httpx.delete(f"{server.url}/api/canned/{response_id}", headers=headers)
    assert mine.status_code == 200
    assert server.get("/api/canned", headers=headers).json()["responses"] == []


def httpx_put(
    server: Server, path: str, headers: dict[str, str], shortcut: str, body: str
) -> dict[str, object]:
    response = httpx.put(
        f"{server.url}{path}",
        headers=headers,
        json={"shortcut": shortcut, "body": body},
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_left_messages_reach_agents_and_can_be_handled(
    server: Server, agent_ids: list[int]
) -> None:
    left = server.post(
        "/api/left-messages",
        json={"name": "Pat", "email": "pat@example.com", "body": "Call me"},
    )
    assert left.status_code == 201
    headers = auth(agent_ids[0])
    listed = server.get("/api/left-messages", headers=headers).json()["messages"]
    assert [(m["name"], m["body"]) for m in listed] == [("Pat", "Call me")]

    handled = server.post(
        f"/api/left-messages/{listed[0]['id']}/handled", headers=headers
    )
    assert handled.status_code == 200
    assert server.get("/api/left-messages", headers=headers).json()["messages"] == []


def test_products_are_searched_by_name_or_sku(
    server: Server, agent_ids: list[int]
) -> None:
    headers = auth(agent_ids[0])
    found = server.get("/api/products?q=SB-1001", headers=headers).json()["products"]
    assert [p["sku"] for p in found] == ["SB-1001"]
    name = found[0]["name"].split()[0]
    by_name = server.get(f"/api/products?q={name}", headers=headers).json()
    assert "SB-1001" in [p["sku"] for p in by_name["products"]]


def test_openapi_document_describes_the_api(server: Server) -> None:
    document = server.get("/api/openapi.json").json()
    assert "/api/login" in document["paths"]
    assert "/api/conversations/{conversation_id}/messages" in document["paths"]


def test_shops_listed_in_cors_origins_may_embed_the_widget(
    server_factory: Callable[..., Server], agent_ids: list[int]
) -> None:
    server = server_factory(SWITCHBOARD_CORS_ORIGINS='["https://shop.example"]')
    allowed = server.get(
        "/api/availability", headers={"Origin": "https://shop.example"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = server.get("/api/availability", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
