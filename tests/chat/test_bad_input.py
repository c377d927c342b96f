"""Bad input gets an error frame with a stable code and changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import websockets

from switchboard.client import Client, ClientError
from tests.chat.conftest import Clients, Server
from tests.harness import agent_token


async def error_for(client: Client, text: str) -> str:
    await client.send_raw(text)
    frame = await client.receive("error")
    return str(frame["code"])


async def chat(clients: Clients, agent_ids: list[int]) -> tuple[Client, Client, int]:
    """An agent and a customer in a chat assigned to that agent."""
    agent = await clients.agent(agent_ids[0])
    customer = await clients.customer()
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    return agent, customer, conv


async def started(clients: Clients, agent_ids: list[int]) -> tuple[Client, int]:
    _, customer, conv = await chat(clients, agent_ids)
    return customer, conv


async def only_this_was_stored_and_delivered(
    server: Server, agent_id: int, agent: Client, customer: Client, conv: int
) -> None:
    """The customer's next message is the chat's first, and the first heard.

    A refused frame that had been stored anyway would have taken seq 1; one
    delivered anyway would have reached the participants before this.
    """
    assert await customer.send(conv, "the real first") == 1
    for participant in (agent, customer):
        heard = await participant.receive("message")
        assert (heard["seq"], heard["body"]) == (1, "the real first")

    stored = server.get(
        f"/api/conversations/{conv}/messages",
        headers={"Authorization": f"Bearer {agent_token(agent_id)}"},
    ).json()["messages"]
    assert [m["body"] for m in stored] == ["the real first"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{nope", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "send", "conversation": 1}', "bad_frame"),
        ('{"type": "send", "conversation": "one", "client_id": "x"}', "bad_frame"),
        ('{"type": "hello", "v": 1}', "already_authenticated"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_connection_stays(
    clients: Clients, agent_ids: list[int], text: str, code: str
) -> None:
    customer, conv = await started(clients, agent_ids)
    assert await error_for(customer, text) == code
    assert await customer.send(conv, "still here") == 1


async def test_empty_and_over_long_bodies_are_refused_and_not_stored(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer, conv = await started(clients, agent_ids)
    for body, code in (
        ("", "body_empty"),
        ("  ", "body_empty"),
        ("x" * 4001, "body_too_long"),
    ):
        with pytest.raises(ClientError) as caught:
            await customer.send(conv, body)
        assert caught.value.code == code
    # Nothing was stored: the next message is the first.
    assert await customer.send(conv, "x" * 4000) == 1


# One server shows the setting travels from the environment to the
# welcome and the check; a cluster reads its settings the same way.
@pytest.mark.parametrize("topology", ["standalone"])
async def test_the_body_limit_is_configurable_end_to_end(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(SWITCHBOARD_MAX_BODY="50")
    customer = await Client.connect(server.ws_url)
    try:
        assert customer.welcome["limits"]["max_body"] == 50
        conv = (await customer.start())["id"]
        with pytest.raises(ClientError) as caught:
            await customer.send(conv, "x" * 51)
        assert caught.value.code == "body_too_long"
        assert await customer.send(conv, "x" * 50) == 1
    finally:
        await customer.close()


async def test_someone_elses_conversation_is_not_found(
    clients: Clients, agent_ids: list[int]
) -> None:
    _, conv = await started(clients, agent_ids)
    stranger = await clients.customer()
    await stranger.start()
    for frame in (
        {"type": "send", "conversation": conv, "client_id": "x", "body": "hi"},
        {"type": "join", "conversation": conv},
        {"type": "send", "conversation": 999999, "client_id": "y", "body": "hi"},
    ):
        with pytest.raises(ClientError) as caught:
            await stranger.request(frame, answer="ack")
        assert caught.value.code == "not_found"


async def test_a_send_into_someone_elses_conversation_is_not_stored_or_delivered(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    agent, customer, conv = await chat(clients, agent_ids)
    stranger = await clients.customer()
    await stranger.start()

    with pytest.raises(ClientError) as caught:
        await stranger.send(conv, "let me in")
    assert caught.value.code == "not_found"
    await only_this_was_stored_and_delivered(
        server, agent_ids[0], agent, customer, conv
    )


async def test_a_send_before_hello_is_not_stored_or_delivered(
    clients: Clients, agent_ids: list[int], server: Server
) -> None:
    agent, customer, conv = await chat(clients, agent_ids)
    frame = {"type": "send", "conversation": conv, "client_id": "x", "body": "hi"}
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({**frame, "ref": "early"}))
        error = json.loads(await ws.recv())
        assert (error["code"], error["ref"]) == ("not_authenticated", "early")
    await only_this_was_stored_and_delivered(
        server, agent_ids[0], agent, customer, conv
    )


async def test_frames_before_hello_are_refused(server: Server) -> None:
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "start"}))
        assert json.loads(await ws.recv())["code"] == "not_authenticated"
        await ws.send(json.dumps({"type": "hello", "v": 9}))
        assert json.loads(await ws.recv())["code"] == "unsupported_version"
        await ws.send(json.dumps({"type": "hello", "v": 1, "token": "forged"}))
        assert json.loads(await ws.recv())["code"] == "auth_failed"
        # Still open: a good hello now works.
        await ws.send(json.dumps({"type": "hello", "v": 1}))
        assert json.loads(await ws.recv())["type"] == "welcome"


async def test_customers_cannot_use_agent_frames(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer, conv = await started(clients, agent_ids)
    for frame in (
        {"type": "status", "status": "away"},
        {"type": "close", "conversation": conv},
        {"type": "take", "conversation": conv},
    ):
        with pytest.raises(ClientError) as caught:
            await customer.request(frame, answer="board")
        assert caught.value.code == "forbidden"


async def test_agent_cannot_write_into_a_chat_of_another_agent(
    clients: Clients, agent_ids: list[int]
) -> None:
    _, conv = await started(clients, agent_ids)
    other = await clients.agent(agent_ids[1])
    with pytest.raises(ClientError) as caught:
        await other.send(conv, "not mine")
    assert caught.value.code == "forbidden"


async def test_repeated_abuse_closes_the_connection_with_policy_violation(
    server: Server,
) -> None:
    errors = []
    async with websockets.connect(server.ws_url) as ws:
        # All at once, so frames past the limit are already on their way
        # when the server decides to close.
        for _ in range(60):
            await ws.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    errors.append(json.loads(await ws.recv())["code"])
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    # The limit's worth of answers, then nothing: frames read after the
    # decision to close are dropped, not answered (or logged) one by one.
    assert errors == ["bad_json"] * 20


def test_http_errors_are_json_4xx(server: Server, agent_ids: list[int]) -> None:
    auth = {"Authorization": f"Bearer {agent_token(agent_ids[0])}"}
    cases = [
        (server.post("/api/login", json={"login": "nobody", "password": "x"}), 401),
        (server.post("/api/login", content=b"{not json"), 422),
        (server.post("/api/login", json={"login": ""}), 422),
        (server.get("/api/conversations"), 401),
        (server.get("/api/conversations", headers={"Authorization": "Bearer x"}), 401),
        (server.get("/api/conversations/99999", headers=auth), 404),
        (server.get("/api/conversations/abc", headers=auth), 422),
        (server.get("/api/conversations?limit=0", headers=auth), 422),
        (server.get("/api/products/NOPE", headers=auth), 404),
        (server.get("/api/customers/424242", headers=auth), 404),
        (server.post("/api/left-messages", json={"name": "x"}), 422),
        (
            server.post(
                "/api/canned", headers=auth, json={"shortcut": "x", "body": "a\x00b"}
            ),
            422,
        ),
        (server.get("/api/conversations/1/messages?after_seq=2", headers=auth), 404),
        (
            server.get(
                f"/api/conversations/1/messages?after_seq={2**63}", headers=auth
            ),
            422,
        ),
        (
            server.post(
                "/api/login", json={"login": "a\x1b[2J", "password": "whatever"}
            ),
            422,
        ),
        (
            server.post(
                "/api/canned",
                headers={**auth, "Content-Type": "application/json"},
                content=b'{"shortcut": "s", "body": "a\\ud800"}',
            ),
            422,
        ),
        # Bodies past the bound, declared or streamed, are not read in full.
        (server.post("/api/login", content=b"x" * 300_000), 413),
        (server.post("/api/login", content=iter([b"x" * 100_000] * 3)), 413),
        (server.get("/api/nowhere"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert "error" in response.json()


async def test_a_connection_that_never_says_hello_is_closed(
    server: Server,
) -> None:
    async with websockets.connect(server.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:
                    # Pings alone do not identify a client.
                    await ws.send(json.dumps({"type": "ping"}))
                    await ws.recv()
                    await asyncio.sleep(0.2)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4003


async def test_ordinary_refusals_never_close_the_connection(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer, conv = await started(clients, agent_ids)
    for _ in range(40):  # twice the abuse limit
        with pytest.raises(ClientError) as caught:
            await customer.request({"type": "status", "status": "away"}, "board")
        assert caught.value.code == "forbidden"
    assert await customer.send(conv, "still welcome") == 1


async def test_a_body_at_the_limit_is_accepted_however_it_is_escaped(
    clients: Clients, agent_ids: list[int]
) -> None:
    customer, conv = await started(clients, agent_ids)
    # 4,000 emoji: at the limit in characters, and each escaped as a
    # surrogate pair is twelve characters on the wire.
    body = "\U0001f600" * 4000
    frame = {"type": "send", "conversation": conv, "client_id": "e", "body": body}
    await customer.send_raw(json.dumps(frame, ensure_ascii=True))
    # The sender's own tabs get the message before its ack.
    echoed = await customer.receive("message")
    assert echoed["body"] == body
    ack = await customer.receive("ack")
    assert ack["seq"] == 1
