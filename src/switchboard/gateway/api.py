"""The HTTP API under ``/api``, described by the OpenAPI document.

Agents authenticate with ``Authorization: Bearer <token>`` from
``POST /api/login``. Customers may use their own token for the endpoints
that concern them (their conversation's messages, leaving a message).
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field

from ..auth import Identity, hash_password, verify_password
from ..chat import Hub
from ..chat.users import agent_user, customer_user
from ..errors import NotFound
from ..protocol.frames import printable
from ..store import ConversationState
from .throttle import Throttle

__all__ = ["router"]

router = APIRouter()


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]


async def identity(
    hub: HubDep, authorization: Annotated[str | None, Header()] = None
) -> Identity:
    scheme, _, token = (authorization or "").partition(" ")
    found = hub.signer.verify(token) if scheme.lower() == "bearer" else None
    if found is None:
        raise HTTPException(401, "a valid bearer token is required")
    return found


async def agent_identity(
    hub: HubDep, who: Annotated[Identity, Depends(identity)]
) -> int:
    if who.kind != "agent":
        raise HTTPException(403, "only agents may do this")

    # A token outlives the agent it names: the record has the last word.
    try:
        await hub.store.agent(who.id)
    except NotFound:
        raise HTTPException(401, "no such agent") from None
    return who.id


AgentId = Annotated[int, Depends(agent_identity)]
# Database ids: out-of-range numbers are the client's error (422), not a
# query for the database to refuse.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# Body text: printable, like the text of the wire protocol.
Printable = AfterValidator(printable)


# -- health ---------------------------------------------------------------


@router.get("/healthz", tags=["health"])
async def healthz(hub: HubDep) -> dict[str, Any]:
    """Liveness: 200 while the process serves; says which backends degrade."""
    # Still 200 when degraded: restarting a server for an outage it shares
    # with every other would drop its connections and fix nothing.
    return {
        "status": "degraded" if hub.degraded or not hub.ready else "ok",
        "server": hub.server_id,
        "connections": len(hub.connections),
        "degraded": sorted(hub.degraded),
        "ready": hub.ready,
    }


@router.get("/readyz", tags=["health"])
async def readyz(hub: HubDep) -> JSONResponse:
    """Readiness: 503 while the backplane is resubscribing."""
    body = {"ready": hub.ready, "server": hub.server_id}
    return JSONResponse(body, status_code=200 if hub.ready else 503)


# -- agents ---------------------------------------------------------------


@functools.cache
def _unknown_login_hash() -> str:
    # Checked for logins that do not exist, so they cost what a wrong
    # password costs; no password hashes to it. Made on first use, not at
    # import, since an Argon2 hash is slow on purpose.
    return hash_password(secrets.token_hex(16))


class Login(BaseModel):
    login: Annotated[str, Field(min_length=1, max_length=100), Printable]
    password: str = Field(min_length=1, max_length=200)


@router.post("/api/login", tags=["agents"])
async def login(request: Request, hub: HubDep, body: Login) -> dict[str, Any]:
    # Counted before the password is checked, so that guesses sent all at
    # once are limited too; a success clears the count.
    throttle: Throttle = request.app.state.login_throttle
    name = body.login.casefold()
    wait = throttle.attempt(name)
    if wait:
        raise HTTPException(
            429, "too many login attempts", headers={"Retry-After": str(wait)}
        )

    # One answer, after one Argon2 hash, for an unknown login and a wrong
    # password, so that neither the answer nor its timing reveals logins.
    found = await hub.store.agent_by_login(body.login)
    password_hash = _unknown_login_hash() if found is None else found[1]
    if not await verify_password(password_hash, body.password) or found is None:
        raise HTTPException(401, "wrong login or password")
    throttle.forget(name)
    agent = found[0]
    return {
        "token": hub.signer.agent(agent.id),
        "agent": {"id": agent.id, "login": agent.login, "name": agent.name},
    }


@router.get("/api/me", tags=["agents"])
async def me(hub: HubDep, agent_id: AgentId) -> dict[str, Any]:
    agent = await hub.store.agent(agent_id)
    return _agent(agent)


@router.get("/api/agents", tags=["agents"])
async def agents(hub: HubDep, agent_id: AgentId) -> dict[str, Any]:
    """The status board: every agent's status, load and presence."""
    connected = await hub.connected_agents()
    return {
        "agents": [
            {**_agent(a), "connected": a.id in connected}
            for a in await hub.store.agents()
        ]
    }


def _agent(agent: Any) -> dict[str, Any]:
    return {
        "id": agent.id,
        "login": agent.login,
        "name": agent.name,
        "status": agent.status.value,
        "capacity": agent.capacity,
        "open_chats": agent.open_chats,
    }


# -- conversations --------------------------------------------------------


@router.get("/api/conversations", tags=["conversations"])
async def conversations(
    hub: HubDep,
    agent_id: AgentId,
    state: ConversationState | None = None,
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    found = await hub.store.conversations(
        agent_id=agent_id if mine else None,
        states=() if state is None else (state,),
        limit=limit,
    )

    # Unread counts for the whole page in one query, not one per row.
    unread = await hub.store.unread_counts(agent_user(agent_id), [c.id for c in found])
    items = []
    for conv in found:
        info = await hub.chats.info(conv)
        items.append({**info, "unread": unread.get(conv.id, 0)})
    return {"conversations": items}


@router.get("/api/conversations/{conversation_id}", tags=["conversations"])
async def conversation(
    hub: HubDep, agent_id: AgentId, conversation_id: RowId
) -> dict[str, Any]:
    conv = await hub.store.conversation(conversation_id)
    return {
        **await hub.chats.info(conv),
        "context": dataclasses.asdict(await hub.store.context(conv.id)),
        "history": await hub.store.history(conv.id),
        "read": await hub.store.read_cursors(conv.id),
    }


@router.get("/api/conversations/{conversation_id}/messages", tags=["conversations"])
async def messages(
    hub: HubDep,
    who: Annotated[Identity, Depends(identity)],
    conversation_id: RowId,
    after_seq: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Messages after ``after_seq`` in seq order; page with the last seq."""
    # A customer reads only their own conversation; any other id is "not
    # found", as over the WebSocket, so ids cannot be probed.
    conv = await hub.store.conversation(conversation_id)
    if who.kind != "agent" and conv.customer_id != await _customer_id(hub, who):
        raise HTTPException(404, "not found")

    # One message more than the page tells whether another page follows,
    # so a page ending on the last message says it is the last.
    found = await hub.store.messages(conv.id, after_seq, limit + 1)
    page = found[:limit]
    return {
        "messages": [dataclasses.asdict(m) for m in page],
        "next_after_seq": page[-1].seq if len(found) > limit else None,
    }


async def _customer_id(hub: Hub, who: Identity) -> int:
    if who.kind == "visitor":
        return who.id
    customer = await hub.store.customer_by_external_id(
        who.external_id, who.name, who.email
    )
    return customer.id


# -- commerce -------------------------------------------------------------


@router.get("/api/products", tags=["commerce"])
async def products(
    hub: HubDep,
    agent_id: AgentId,
    q: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    found = await hub.commerce.search_products(q, limit)
    return {"products": [dataclasses.asdict(p) for p in found]}


@router.get("/api/products/{sku}", tags=["commerce"])
async def product(hub: HubDep, agent_id: AgentId, sku: str) -> dict[str, Any]:
    found = await hub.commerce.product(sku)
    if found is None:
        raise HTTPException(404, "no such product")
    return dataclasses.asdict(found)


@router.get("/api/customers/{customer_id}", tags=["commerce"])
async def customer(
    hub: HubDep, agent_id: AgentId, customer_id: RowId
) -> dict[str, Any]:
    """Who the customer is, with recent orders when the shop knows them."""
    found = await hub.store.customer(customer_id)

    # Only a customer the shop signed in has a profile there; an anonymous
    # visitor is known by what they typed into the pre-chat form.
    profile = None
    if found.external_id is not None:
        shop = await hub.commerce.customer(found.external_id)
        profile = None if shop is None else dataclasses.asdict(shop)
    return {
        "id": found.id,
        "user": customer_user(found.id),
        "name": found.name,
        "email": found.email,
        "external_id": found.external_id,
        "anonymous": found.external_id is None,
        "profile": profile,
    }


# -- canned responses -----------------------------------------------------


class CannedBody(BaseModel):
    shortcut: str = Field(min_length=1, max_length=50, pattern=r"^[\w-]+$")
    body: Annotated[str, Field(min_length=1, max_length=4000), Printable]


@router.get("/api/canned", tags=["canned responses"])
async def canned(hub: HubDep, agent_id: AgentId) -> dict[str, Any]:
    found = await hub.store.canned_responses(agent_id)
    return {"responses": [dataclasses.asdict(r) for r in found]}


async def _check_shortcut_free(
    hub: Hub, agent_id: int, shortcut: str, response_id: int | None
) -> None:
    for existing in await hub.store.canned_responses(agent_id):
        if existing.shortcut == shortcut and existing.id != response_id:
            raise HTTPException(409, f"shortcut /{shortcut} is taken")


@router.post("/api/canned", tags=["canned responses"], status_code=201)
async def create_canned(
    hub: HubDep, agent_id: AgentId, body: CannedBody
) -> dict[str, Any]:
    await _check_shortcut_free(hub, agent_id, body.shortcut, None)
    saved = await hub.store.save_canned_response(agent_id, body.shortcut, body.body)
    return dataclasses.asdict(saved)


@router.put("/api/canned/{response_id}", tags=["canned responses"])
async def update_canned(
    hub: HubDep, agent_id: AgentId, response_id: RowId, body: CannedBody
) -> dict[str, Any]:
    await _check_shortcut_free(hub, agent_id, body.shortcut, response_id)
    saved = await hub.store.save_canned_response(
        agent_id, body.shortcut, body.body, response_id
    )
    return dataclasses.asdict(saved)


@router.delete("/api/canned/{response_id}", tags=["canned responses"])
async def delete_canned(
    hub: HubDep, agent_id: AgentId, response_id: RowId
) -> dict[str, Any]:
    if not await hub.store.delete_canned_response(agent_id, response_id):
        raise HTTPException(404, "no such canned response")
    return {"deleted": response_id}


# -- messages left while no agent was online ------------------------------


class LeaveMessage(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200), Printable]
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    body: Annotated[str, Field(min_length=1, max_length=4000), Printable]


@router.post("/api/left-messages", tags=["left messages"], status_code=201)
async def leave_message(
    hub: HubDep,
    body: LeaveMessage,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """A customer leaves a message when no agent is online (token optional)."""
    # A customer we know leaves the message under their own record; anyone
    # else (no token, an agent's, or a bad or expired one) becomes a new
    # visitor: the shopper typed a name and an email, and a stale widget
    # must never lose what they wrote.
    _, _, token = (authorization or "").partition(" ")
    who = hub.signer.verify(token) if token else None
    if who is not None and who.kind in ("visitor", "customer"):
        customer_id = await _customer_id(hub, who)
    else:
        customer_id = (await hub.store.create_visitor(body.name, body.email)).id
    left = await hub.store.leave_message(customer_id, body.name, body.email, body.body)

    # Consoles refresh their list of left messages with the queue, on every
    # server.
    await hub.publish_status({"k": "queue"})
    return dataclasses.asdict(left)


@router.get("/api/left-messages", tags=["left messages"])
async def left_messages(
    hub: HubDep, agent_id: AgentId, include_handled: bool = False
) -> dict[str, Any]:
    found = await hub.store.left_messages(include_handled=include_handled)
    return {"messages": [dataclasses.asdict(m) for m in found]}


@router.post("/api/left-messages/{message_id}/handled", tags=["left messages"])
async def handle_left_message(
    hub: HubDep, agent_id: AgentId, message_id: RowId
) -> dict[str, Any]:
    if not await hub.store.mark_left_message_handled(message_id):
        raise HTTPException(404, "no such message")
    return {"handled": message_id}
