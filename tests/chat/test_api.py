"""The HTTP API: login, canned responses, left messages, look-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from switchboard.client import Client
from tests.chat.conftest import Clients, Server
from tests.harness import PASSWORD, agent_token, customer_token


def auth(agent_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent_token(agent_id)}"}


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


def test_failed_logins_are_throttled_per_login(
    server: Server, agent_ids: list[int]
) -> None:
    login = server.get("/api/me", headers=auth(agent_ids[0])).json()["login"]
    other = server.get("/api/me", headers=auth(agent_ids[1])).json()["login"]

    # Ten attempts a login per app server; twenty exhaust a cluster of two,
    # whose nginx hands requests to its servers in turn.
    codes = [
        server.post("/api/login", json={"login": login, "password": "no"}).status_code
        for _ in range(20)
    ]
    refused = codes.count(401)
    assert refused in (10, 20)  # one server, or two taking turns
    assert codes == [401] * refused + [429] * (20 - refused)

    # Now even the right password waits, and says for how long.
    locked = server.post("/api/login", json={"login": login, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_requests"
    assert int(locked.headers["Retry-After"]) >= 1

    # Other agents are not locked out by someone guessing at one.
    fine = server.post("/api/login", json={"login": other, "password": PASSWORD})
    assert fine.status_code == 200


async def test_guesses_sent_all_at_once_are_throttled_too(
    server: Server, agent_ids: list[int]
) -> None:
    login = server.get("/api/me", headers=auth(agent_ids[2])).json()["login"]
    guess = {"login": login, "password": "no"}

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/api/login", json=guess) for _ in range(40))
        )

    # Each is counted before its password is checked, so no burst gets
    # more than ten guesses past each app server.
    codes = [answer.status_code for answer in answers]
    assert set(codes) == {401, 429}
    assert codes.count(401) <= 20


def test_a_message_left_with_a_stale_token_is_kept(server: Server) -> None:
    left = server.post(
        "/api/left-messages",
        json={"name": "Ann", "email": "a@b.c", "body": "call me back"},
        headers={"Authorization": "Bearer long-expired"},
    )
    assert left.status_code == 201
    assert left.json()["body"] == "call me back"


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


@dataclass
class TwoChats:
    """An open chat with a visitor and a closed one with a shop's customer."""

    visitor: Client
    open_id: int
    shopper: Client
    closed_id: int


CONTEXT = {
    "url": "https://shop.example/product/SB-1001",
    "title": "Kettle",
    "cart": [{"sku": "SB-1001", "name": "Kettle", "quantity": 2, "price": "39.00"}],
}


async def two_chats(clients: Clients, agent_id: int) -> TwoChats:
    """Two chats with agent ``agent_id``, older first.

    The visitor wrote three messages, of which the agent read one and then
    answered; the shop's customer wrote once and the agent closed that chat.
    """
    agent = await clients.agent(agent_id)
    visitor = await clients.customer()
    open_id = (await visitor.start(context=CONTEXT))["id"]
    await visitor.receive("assigned")
    for n in range(3):
        await visitor.send(open_id, f"question {n}")
    read = {"type": "read", "conversation": open_id, "seq": 1}
    await agent.request(read, answer="read")
    await agent.send(open_id, "answer")

    shopper = await clients.customer(token=customer_token("shop-7", "Kim"))
    closed_id = (await shopper.start())["id"]
    await shopper.receive("assigned")
    await shopper.send(closed_id, "thanks, bye")
    close = {"type": "close", "conversation": closed_id}
    await agent.request(close, answer="closed")
    return TwoChats(visitor, open_id, shopper, closed_id)


def listed(server: Server, agent_id: int, query: str = "") -> list[tuple[Any, ...]]:
    response = server.get(f"/api/conversations{query}", headers=auth(agent_id))
    assert response.status_code == 200, response.text
    return [
        (c["id"], c["state"], c["unread"]) for c in response.json()["conversations"]
    ]


async def test_conversations_are_listed_newest_first_with_unread_counts(
    server: Server, clients: Clients, agent_ids: list[int]
) -> None:
    me, other = agent_ids[:2]
    chats = await two_chats(clients, me)
    newer, older = chats.closed_id, chats.open_id

    # Unread: messages after my read cursor that I did not write myself.
    assert listed(server, me) == [(newer, "closed", 1), (older, "open", 2)]
    assert listed(server, other) == [(newer, "closed", 1), (older, "open", 4)]

    # Filters: by state, assigned to me (a closed chat is nobody's), a limit.
    assert listed(server, me, "?state=open") == [(older, "open", 2)]
    assert listed(server, me, "?state=closed") == [(newer, "closed", 1)]
    assert listed(server, me, "?state=queued") == []
    assert listed(server, me, "?mine=true") == [(older, "open", 2)]
    assert listed(server, other, "?mine=true") == []
    assert listed(server, me, "?limit=1") == [(newer, "closed", 1)]


async def test_one_conversation_comes_with_context_history_and_read_cursors(
    server: Server, clients: Clients, agent_ids: list[int]
) -> None:
    me = agent_ids[0]
    chats = await two_chats(clients, me)

    response = server.get(f"/api/conversations/{chats.open_id}", headers=auth(me))
    assert response.status_code == 200, response.text
    found = response.json()
    assert (found["id"], found["state"], found["agent"]["id"]) == (
        chats.open_id,
        "open",
        me,
    )
    assert found["customer"]["id"] == int(chats.visitor.welcome["user"][2:])
    assert found["last_seq"] == 4
    assert found["context"] == CONTEXT
    assert [(h["agent_id"], h["reason"]) for h in found["history"]] == [
        (me, "least_loaded")
    ]
    assert found["read"] == {f"a:{me}": 1}

    closed = server.get(f"/api/conversations/{chats.closed_id}", headers=auth(me))
    history = closed.json()["history"]
    assert [(h["agent_id"], h["reason"]) for h in history] == [
        (me, "least_loaded"),
        (me, "close"),
    ]


def page(
    server: Server, headers: dict[str, str], conv: int, query: str
) -> tuple[list[int], int | None]:
    response = server.get(f"/api/conversations/{conv}/messages{query}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return [m["seq"] for m in body["messages"]], body["next_after_seq"]


async def test_messages_are_paged_by_seq_until_next_after_seq_is_null(
    server: Server, clients: Clients, agent_ids: list[int]
) -> None:
    me = agent_ids[0]
    conv = (await two_chats(clients, me)).open_id
    headers = auth(me)

    assert page(server, headers, conv, "") == ([1, 2, 3, 4], None)
    assert page(server, headers, conv, "?limit=3") == ([1, 2, 3], 3)
    assert page(server, headers, conv, "?after_seq=3&limit=3") == ([4], None)
    assert page(server, headers, conv, "?after_seq=1&limit=2") == ([2, 3], 3)

    # A page that ends on the last message is the last page.
    assert page(server, headers, conv, "?limit=4") == ([1, 2, 3, 4], None)
    assert page(server, headers, conv, "?after_seq=2&limit=2") == ([3, 4], None)
    assert page(server, headers, conv, "?after_seq=4") == ([], None)


async def test_a_customer_reads_the_messages_of_their_own_conversations_only(
    server: Server, clients: Clients, agent_ids: list[int]
) -> None:
    chats = await two_chats(clients, agent_ids[0])
    visitor = bearer(chats.visitor.token)
    shopper = bearer(customer_token("shop-7", "Kim"))

    # Their own messages, with a visitor token or the shop's.
    assert page(server, visitor, chats.open_id, "") == ([1, 2, 3, 4], None)
    assert page(server, shopper, chats.closed_id, "") == ([1], None)

    # Another customer's conversation reads like one that does not exist.
    for headers, conv in (
        (visitor, chats.closed_id),
        (shopper, chats.open_id),
        (visitor, 999999),
    ):
        response = server.get(f"/api/conversations/{conv}/messages", headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"

    # The rest of the conversations API is for agents.
    for path in ("/api/conversations", f"/api/conversations/{chats.open_id}"):
        response = server.get(path, headers=visitor)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
