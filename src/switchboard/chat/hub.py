"""The hub: one app server's live connections and how frames reach them.

The hub owns the local connections (user -> connections on this server),
authenticates them, dispatches their frames to the chat services and
delivers frames to users wherever their connections are: directly to local
ones, and with one backplane publish per *other server* that holds an
address of theirs.

It also runs the housekeeping that keeps ghosts from piling up: once per
heartbeat period it closes connections that went silent, refreshes the
addresses of the rest in one batch, and reconciles agent presence; more
often when needed, it refreshes this server's liveness key within its TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ..addressbook import AddressBook, make_address, server_of
from ..auth import TokenSigner
from ..backplane import Backplane
from ..commerce import Commerce
from ..config import Settings
from ..errors import (
    AddressBookError,
    BackplaneError,
    CommerceError,
    NotFound,
    ProtocolError,
    StoreError,
)
from ..protocol import frames as client
from ..protocol import server as frames
from ..protocol.codes import CloseCode, ErrorCode
from ..store import Store, StoredMessage
from .board import StatusBoard
from .connection import Connection, ConnectionState, Role, Transport
from .conversations import Conversations
from .users import AGENT_PREFIX, agent_user
from .writer import MessageWriter

__all__ = ["Hub"]

logger = logging.getLogger("switchboard.hub")

# Published payloads stay under the backplane's limit (256 KiB): a large
# batch of long messages is split into several publishes to one server.
PAYLOAD_BUDGET = 192 * 1024


def _chunks(
    entries: list[tuple[list[str], str]], budget: int
) -> list[list[tuple[list[str], str]]]:
    """Split ``entries`` into runs whose encoded size stays within budget."""
    chunks: list[list[tuple[list[str], str]]] = [[]]
    size = 0
    for users, text in entries:
        # JSON escaping at most doubles the text (quotes, backslashes);
        # non-ASCII is sent as is, up to 4 bytes per character.
        cost = 4 * len(text) + sum(len(u) + 4 for u in users) + 8
        if chunks[-1] and size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append((users, text))
        size += cost
    return chunks


# Errors that only a broken or hostile client causes.
ABUSE = frozenset(
    {
        ErrorCode.BAD_JSON,
        ErrorCode.BAD_FRAME,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.AUTH_FAILED,
        ErrorCode.ALREADY_AUTHENTICATED,
    }
)


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        addressbook: AddressBook,
        backplane: Backplane,
        commerce: Commerce,
        *,
        clustered: bool,
    ) -> None:
        self.settings = settings
        self.store = store
        self.addressbook = addressbook
        self.backplane = backplane
        self.commerce = commerce
        self.clustered = clustered
        self.server_id = secrets.token_hex(6)
        self.signer = TokenSigner(settings.secret_key.get_secret_value())
        self.max_frame = client.max_frame_size(settings.max_body)

        self.connections: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = defaultdict(set)
        self.board = StatusBoard(settings.board_interval, self._push_to_agents)
        self.writer = MessageWriter(store, self._on_stored, settings.write_batch)
        self.chats = Conversations(self)
        self.degraded: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        await self.addressbook.start(self.server_id, self.settings.server_ttl)
        await self.backplane.start(
            self.server_id, self._on_delivery, self._on_status, self.resync
        )
        self.writer.start()
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        logger.info(
            "server %s started (%s)",
            self.server_id,
            "cluster" if self.clustered else "standalone",
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

        # Going away: clients reconnect (with backoff) to another server.
        for conn in list(self.connections.values()):
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        await self.writer.close()
        self.board.close()
        await self.backplane.close()
        await self.addressbook.close()
        logger.info("server %s stopped", self.server_id)

    async def resync(self) -> None:
        """Catch up after every backplane (re)subscription.

        Redis may have restarted empty, so this server's addresses are
        published again; status events and cache drops may have been
        missed meanwhile, so the board is reloaded and the cache emptied.
        """
        await self._republish_addresses()
        agents = await self.store.agents()
        connected = await self._connected_agents([a.id for a in agents])
        self.board.load(agents, connected)
        self.chats.forget_all()

    async def _republish_addresses(self) -> None:
        # A refresh never recreates an address (so it cannot resurrect a
        # closed one); after an outage the live ones must be added again.
        for conn in list(self.connections.values()):
            if conn.state is ConnectionState.OPEN:
                await self._publish_address(conn)

    @property
    def ready(self) -> bool:
        return self.backplane.ready

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until done."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- connections ------------------------------------------------------

    def accept(self, transport: Transport) -> Connection:
        connection_id = secrets.token_hex(8)
        conn = Connection(
            connection_id,
            make_address(self.server_id, connection_id),
            transport,
            self.settings.max_outbox,
        )
        self.connections[connection_id] = conn
        return conn

    async def disconnect(self, conn: Connection) -> None:
        """Forget a connection whose transport has ended."""
        conn.set_state(ConnectionState.CLOSED)
        self.connections.pop(conn.id, None)
        local = self.by_user.get(conn.user)
        if local is None or conn not in local:
            return  # never authenticated, or already forgotten

        local.discard(conn)
        if not local:
            del self.by_user[conn.user]
        try:
            await self.addressbook.remove(conn.user, conn.address)
        except AddressBookError as exc:
            # The address expires by itself; removing it early is a courtesy.
            logger.debug("removing %s failed: %s", conn.address, exc)

        if conn.role is Role.AGENT:
            await self._update_presence([conn.agent_id])

    async def receive(self, conn: Connection, text: str | bytes) -> None:
        """Handle one frame from a client; never raises."""
        conn.last_heard = time.monotonic()
        ref: str | None = None
        try:
            frame = client.parse(text, self.max_frame)
            ref = frame.ref
            await self._dispatch(conn, frame)
        except ProtocolError as exc:
            self._protocol_error(conn, exc, ref)
        except NotFound:
            self._protocol_error(
                conn, ProtocolError(ErrorCode.NOT_FOUND, "not found"), ref
            )
        except (StoreError, AddressBookError, BackplaneError, CommerceError) as exc:
            logger.warning("%s: backend unavailable: %s", conn.address, exc)
            conn.push(frames.error(ErrorCode.UNAVAILABLE, "try again", ref))
        except Exception:
            logger.exception("%s: internal error", conn.address)
            conn.push(frames.error(ErrorCode.INTERNAL, "internal error", ref))

    def _protocol_error(
        self, conn: Connection, exc: ProtocolError, ref: str | None
    ) -> None:
        conn.push(frames.error(ErrorCode(exc.code), exc.message, ref))

        # Only frames no correct client would send count as abuse; a lost
        # race for a queued chat or a refused transfer is ordinary.
        if exc.code not in ABUSE:
            return
        conn.errors += 1
        if conn.errors >= self.settings.max_protocol_errors:
            logger.info("%s: too many protocol errors, closing", conn.address)
            conn.close(CloseCode.POLICY_VIOLATION, "too many protocol errors")

    async def _dispatch(self, conn: Connection, frame: client.ClientFrame) -> None:
        if isinstance(frame, client.Ping):
            conn.push(frames.pong())
            return
        if isinstance(frame, client.Hello):
            await self._hello(conn, frame)
            return
        if conn.state is not ConnectionState.OPEN:
            raise ProtocolError(ErrorCode.NOT_AUTHENTICATED, "send hello first")
        await self.chats.handle(conn, frame)

    async def _hello(self, conn: Connection, frame: client.Hello) -> None:
        if conn.state is ConnectionState.OPEN:
            raise ProtocolError(ErrorCode.ALREADY_AUTHENTICATED, "already said hello")
        if frame.v != client.PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {client.PROTOCOL_VERSION} is supported",
            )

        token = await self.chats.identify(conn, frame)
        if conn.state is ConnectionState.CLOSED:
            return

        # Register locally, then publish the address, then welcome: a
        # welcomed client is reachable from every server (a chat routed
        # right after an agent's welcome finds the agent). A frame sent to
        # the user meanwhile may be missed here; the client's start or join
        # replays it.
        conn.set_state(ConnectionState.OPEN)
        self.by_user[conn.user].add(conn)
        await self._publish_address(conn)
        conn.push(
            frames.welcome(
                user=conn.user,
                role=str(conn.role),
                name=conn.name,
                token=token,
                server=self.server_id,
                heartbeat_interval=self.settings.heartbeat_interval,
                heartbeat_timeout=self.settings.heartbeat_timeout,
                max_body=self.settings.max_body,
            )
        )

        if conn.role is Role.AGENT:
            conn.push(self.board.snapshot())
            conn.push(await self.chats.queue_frame())
            await self._update_presence([conn.agent_id])

    async def _publish_address(self, conn: Connection) -> None:
        try:
            dropped = await self.addressbook.add(
                conn.user, conn.address, self.settings.heartbeat_timeout
            )
        except AddressBookError as exc:
            # Local delivery still works; the next refresh cannot recreate
            # the address, so say so loudly once per outage.
            self._degrade("addressbook", exc)
            return
        self._recover("addressbook")

        for address in dropped:
            await self._evict(address)

    async def _evict(self, address: str) -> None:
        server, _, connection_id = address.partition("/")
        if server == self.server_id:
            conn = self.connections.get(connection_id)
            if conn is not None:
                conn.close(CloseCode.EVICTED, "too many connections")
            return
        await self._publish_to_server(server, {"close": [connection_id]})

    # -- delivery ---------------------------------------------------------

    async def deliver(self, items: Sequence[tuple[Iterable[str], str]]) -> None:
        """Deliver each ``(users, text)`` to every connection of those users.

        Local connections get the text directly. Each other server holding
        an address of any of the users gets one publish carrying all the
        items meant for it: one per server, never one per address.
        """
        batch = [(list(dict.fromkeys(users)), text) for users, text in items]
        for users, text in batch:
            for user in users:
                for conn in self.by_user.get(user, ()):
                    conn.push(text)
        if not self.clustered:
            return

        everyone = sorted({user for users, _ in batch for user in users})
        try:
            addresses = await self.addressbook.lookup(everyone)
        except AddressBookError as exc:
            self._degrade("addressbook", exc)
            return
        self._recover("addressbook")

        servers_of = {
            user: {server_of(a) for a in found} - {self.server_id}
            for user, found in addresses.items()
        }
        remote: dict[str, list[tuple[list[str], str]]] = defaultdict(list)
        for users, text in batch:
            for server in set().union(*(servers_of.get(u, set()) for u in users)):
                remote[server].append((users, text))

        for server, entries in remote.items():
            for chunk in _chunks(entries, PAYLOAD_BUDGET):
                await self._publish_to_server(server, {"d": chunk})

    async def _publish_to_server(self, server: str, body: dict[str, Any]) -> None:
        try:
            await self.backplane.deliver(
                server, json.dumps(body, ensure_ascii=False).encode()
            )
        except BackplaneError as exc:
            self._degrade("backplane", exc)
        else:
            self._recover("backplane")

    async def _on_delivery(self, payload: bytes) -> None:
        body = json.loads(payload)
        for users, text in body.get("d", ()):
            for user in users:
                for conn in self.by_user.get(user, ()):
                    conn.push(text)
        for connection_id in body.get("close", ()):
            evicted = self.connections.get(connection_id)
            if evicted is not None:
                evicted.close(CloseCode.EVICTED, "too many connections")

    async def _on_stored(self, stored: Sequence[StoredMessage]) -> None:
        # A resent message (new=False) is delivered again on purpose: the
        # server that first stored it may have died before delivering it,
        # and clients drop a seq they already have.
        await self.deliver(await self.chats.message_frames(stored))

    def _push_to_agents(self, text: str) -> None:
        for user, conns in self.by_user.items():
            if user.startswith(AGENT_PREFIX):
                for conn in conns:
                    conn.push(text)

    # -- status events ----------------------------------------------------

    async def publish_status(self, event: dict[str, Any]) -> None:
        """One publish on the status channel, whatever the cluster's size."""
        try:
            await self.backplane.publish_status(json.dumps(event).encode())
        except BackplaneError as exc:
            # Apply locally at least; the periodic resync heals the others.
            self._degrade("backplane", exc)
            await self._on_status(json.dumps(event).encode())
        else:
            self._recover("backplane")

    async def _on_status(self, payload: bytes) -> None:
        event = json.loads(payload)
        kind = event.get("k")
        if kind == "agent":
            self.board.apply(event)
        elif kind == "conversation":
            self.chats.forget(int(event["id"]))
        elif kind == "queue":
            self.chats.queue_changed_elsewhere()

    async def _connected_agents(self, agent_ids: Sequence[int]) -> set[int]:
        """Agents with at least one live connection anywhere."""
        if not self.clustered:
            return {a for a in agent_ids if self.by_user.get(agent_user(a))}
        users = [agent_user(a) for a in agent_ids]
        try:
            found = await self.addressbook.lookup(users)
        except AddressBookError as exc:
            self._degrade("addressbook", exc)
            return {a for a in agent_ids if self.by_user.get(agent_user(a))}
        return {a for a, u in zip(agent_ids, users, strict=True) if found.get(u)}

    async def connected_agents(self) -> set[int]:
        return await self._connected_agents(self.board.agent_ids())

    async def _update_presence(self, agent_ids: Sequence[int]) -> None:
        connected = await self._connected_agents(agent_ids)
        came = False
        for agent_id in agent_ids:
            now = agent_id in connected
            if now != self.board.connected(agent_id):
                came = came or now
                await self.publish_status(
                    {"k": "agent", "id": agent_id, "connected": now}
                )
        if came:
            await self.chats.drain()

    # -- housekeeping -----------------------------------------------------

    async def _housekeeping(self) -> None:
        # The liveness key must be refreshed well within its TTL even when
        # heartbeats are slow, so the loop ticks at the faster of the two
        # and does the full sweep once per heartbeat period.
        interval = self.settings.heartbeat_interval
        tick = min(interval, self.settings.server_ttl / 3)
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            try:
                if time.monotonic() - last_sweep >= interval - tick / 2:
                    last_sweep = time.monotonic()
                    await self.sweep()
                else:
                    await self._refresh({})
            except Exception:
                logger.exception("housekeeping failed")

    async def _refresh(self, live: dict[str, list[str]]) -> None:
        try:
            await self.addressbook.refresh(live, self.settings.heartbeat_timeout)
        except AddressBookError as exc:
            self._degrade("addressbook", exc)
        else:
            self._recover("addressbook")

    async def sweep(self) -> None:
        """Close silent connections, refresh live addresses, fix presence."""
        deadline = time.monotonic() - self.settings.heartbeat_timeout
        live: dict[str, list[str]] = defaultdict(list)
        hello_deadline = time.monotonic() - self.settings.heartbeat_timeout
        for conn in list(self.connections.values()):
            if conn.state is ConnectionState.HELLO and conn.opened < hello_deadline:
                # Pings are allowed before hello, so only the age of the
                # connection shows a client that never identifies itself.
                conn.close(CloseCode.HELLO_TIMEOUT, "no hello")
                await self.disconnect(conn)
            elif conn.last_heard < deadline:
                # A half-open TCP connection never reports its close, so
                # silence is the only sign; close it and drop its address.
                logger.debug("%s: heartbeat timeout", conn.address)
                conn.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                await self.disconnect(conn)
            elif conn.state is ConnectionState.OPEN:
                live[conn.user].append(conn.address)

        await self._refresh(live)

        try:
            await self._update_presence(self.board.agent_ids())
            await self.chats.drain()
        except (StoreError, AddressBookError, BackplaneError) as exc:
            logger.warning("presence or queue check failed: %s", exc)

    # -- health -----------------------------------------------------------

    def _degrade(self, part: str, exc: Exception) -> None:
        if part not in self.degraded:
            self.degraded.add(part)
            logger.warning("%s degraded: %s", part, exc)

    def _recover(self, part: str) -> None:
        if part in self.degraded:
            self.degraded.discard(part)
            logger.info("%s recovered", part)
            if part == "addressbook":
                self.spawn(self._republish_addresses())
