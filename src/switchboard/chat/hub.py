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
import contextlib
import enum
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Iterator, Sequence
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
    InvalidInput,
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
from .users import agent_user
from .writer import MessageWriter

__all__ = ["Backend", "Hub"]

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


# Seconds between rebuilds of the board and caches from the record.
RELOAD_PERIOD = 30.0


class Backend(enum.StrEnum):
    """A shared backend whose outage degrades this server without stopping it.

    The values are what ``/healthz`` lists under "degraded".
    """

    ADDRESSBOOK = "addressbook"
    BACKPLANE = "backplane"


# The error each backend's calls raise when it is unavailable.
BACKEND_ERRORS: dict[Backend, type[Exception]] = {
    Backend.ADDRESSBOOK: AddressBookError,
    Backend.BACKPLANE: BackplaneError,
}

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
    """One app server: its connections, its backends and its chat services.

    The gateway hands each new transport to :meth:`accept`, each frame to
    :meth:`receive` and each end to :meth:`disconnect`; everything else
    (delivery, status events, housekeeping, health) happens in here.
    ``degraded`` names the backends that are failing, for ``/healthz``;
    local connections keep working meanwhile.
    """

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
        customer_key = settings.customer_key
        self.signer = TokenSigner(
            settings.secret_key.get_secret_value(),
            None if customer_key is None else customer_key.get_secret_value(),
        )
        self.max_frame = client.max_frame_size(settings.max_body)

        self.connections: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = defaultdict(set)
        self.board = StatusBoard(settings.board_interval, self.push_to_agents)
        self.writer = MessageWriter(store, self._on_stored, settings.write_batch)
        self.chats = Conversations(self)
        # Local agent connections, which get the board and the queue.
        self.agent_connections: set[Connection] = set()

        self.degraded: set[Backend] = set()
        self._recovering = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        # The backends first: this server is alive, and subscribed, before
        # it stores or sweeps anything.
        await self.addressbook.start(self.server_id, self.settings.server_ttl)
        await self.backplane.start(
            self.server_id, self._on_delivery, self._on_status, self.resync
        )
        self.writer.start()

        self._tasks += [
            asyncio.create_task(self._housekeeping(), name="switchboard.sweep"),
            asyncio.create_task(self._liveness(), name="switchboard.liveness"),
        ]
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
        self.chats.stop()
        await self.backplane.close()
        await self.addressbook.close()
        logger.info("server %s stopped", self.server_id)

    async def resync(self) -> None:
        """Catch up after every backplane (re)subscription.

        Status events and cache drops may have been missed meanwhile, so
        the cache is emptied and the board reloaded; Redis may have
        restarted empty, and deliveries may have been lost, so addresses
        are published again and clients told to catch up. That last part
        runs in the background: the subscriber must not wait on it.
        """
        self.chats.forget_all()

        try:
            await self.reload_board()
        except StoreError as exc:
            # Redis is back even if the database is not; the periodic
            # reload will fill the board in.
            logger.warning("reloading the board failed: %s", exc)
        self.spawn(self._recover_addresses())

    async def reload_board(self) -> None:
        agents = await self.store.agents()
        connected = await self._connected_agents([a.id for a in agents])
        self.board.load(agents, connected)

    async def _recover_addresses(self) -> None:
        """Publish every live address again, then tell clients to catch up.

        A refresh never recreates an address (so it cannot resurrect a
        closed one); after an outage, or after this server's liveness key
        lapsed, the live ones must be added again. Frames meant for these
        clients may have been lost meanwhile (pub/sub keeps nothing), so
        each client is asked to replay its conversations.
        """
        # One recovery at a time: two at once (an outage ending just as a
        # lapse is noticed) would race to add and evict the same addresses.
        async with self._recovering:
            live = self._live_addresses()
            try:
                dropped = await self.addressbook.add_many(
                    live, self.settings.heartbeat_timeout
                )
            except AddressBookError as exc:
                # Still down: the call that notices it back spawns this
                # again. Success is not reported as a recovery here, since
                # that would spawn this once more.
                self._degrade(Backend.ADDRESSBOOK, exc)
                return
            for address in dropped:
                await self._evict(address)

            # Only once the addresses are back: a client that replays now
            # is reachable again for whatever follows its replay.
            text = frames.resync()
            for conn in list(self.connections.values()):
                if conn.state is ConnectionState.OPEN:
                    conn.push(text)

    def _live_addresses(self) -> dict[str, list[str]]:
        live: dict[str, list[str]] = defaultdict(list)
        for conn in self.connections.values():
            if conn.state is ConnectionState.OPEN:
                live[conn.user].append(conn.address)
        return live

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
        self.agent_connections.discard(conn)
        try:
            await self.addressbook.remove(conn.user, conn.address)
        except AddressBookError as exc:
            # The address expires by itself; removing it early is a courtesy.
            logger.debug("removing %s failed: %s", conn.address, exc)

        if conn.role is Role.AGENT:
            try:
                await self._update_presence([conn.agent_id])
            except (StoreError, AddressBookError, BackplaneError) as exc:
                # The next sweep reconciles presence; a closing connection
                # must never fail because a backend is down.
                logger.warning("presence update failed: %s", exc)

    async def receive(self, conn: Connection, text: str | bytes) -> None:
        """Handle one frame from a client; never raises."""
        # Frames read after the server decided to close are dropped: the
        # client resends what was not acknowledged when it reconnects.
        if conn.state is ConnectionState.CLOSED:
            return

        # Any frame, even a bad one, shows the connection is alive.
        conn.last_heard = time.monotonic()

        # A frame that does not parse has no ref to echo.
        try:
            frame = client.parse(text, self.max_frame)
        except ProtocolError as exc:
            self._protocol_error(conn, exc, None)
            return

        await self.answer(conn, frame.ref, self._dispatch(conn, frame))

    async def answer(
        self, conn: Connection, ref: str | None, work: Awaitable[None]
    ) -> None:
        """Run ``work`` for ``conn``, turning any failure into an error frame.

        Errors are translated here, in one place, for frames handled inline
        and for work finished later (a send waiting for its commit).
        """
        try:
            await work
        except ProtocolError as exc:
            self._protocol_error(conn, exc, ref)
        except NotFound:
            # A record gone meanwhile (deleted, or never there) reads to
            # the client like any other id it may not see.
            self._protocol_error(
                conn, ProtocolError(ErrorCode.NOT_FOUND, "not found"), ref
            )
        except InvalidInput:
            # Validation lets through only what the database should take;
            # anything it still refuses is the client's, not an outage.
            self._protocol_error(
                conn, ProtocolError(ErrorCode.BAD_FRAME, "value refused"), ref
            )
        except (StoreError, AddressBookError, BackplaneError, CommerceError) as exc:
            # An outage is never the client's fault and never closes its
            # connection: it retries (resends keep their client id).
            logger.warning("%s: backend unavailable: %s", conn.address, exc)
            conn.push(frames.error(ErrorCode.UNAVAILABLE, "try again", ref))
        except Exception:
            # A bug: the details go to the log, never to the peer.
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
        # Ping and hello are the frames a connection may send before its
        # hello succeeds; every other frame needs to know who sends it.
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
        if conn.role is Role.AGENT:
            # Likewise, a welcomed agent is on this server's board already,
            # so a transfer to them right after the welcome is accepted.
            self.agent_connections.add(conn)
            await self._update_presence([conn.agent_id])
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
                ref=frame.ref,
            )
        )

        if conn.role is Role.AGENT:
            conn.push(self.board.snapshot())
            conn.push(await self.chats.queue_frame())

    async def _publish_address(self, conn: Connection) -> None:
        # If this fails, local delivery still works; the next refresh cannot
        # recreate the address, but the recovery publishes it again.
        dropped: list[str] = []
        with self._health(Backend.ADDRESSBOOK):
            dropped = await self.addressbook.add(
                conn.user, conn.address, self.settings.heartbeat_timeout
            )

        # Over the per-user cap, the user's oldest connections give way.
        for address in dropped:
            await self._evict(address)

    async def _evict(self, address: str) -> None:
        # The connection may live on another server: only its owner can
        # close it, so that server is asked to.
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
        # Local connections first, before any await: they get the frames
        # in the order they were produced and without waiting on Redis, and
        # an address book outage cannot keep them from this server's users.
        batch = [(list(dict.fromkeys(users)), text) for users, text in items]
        for users, text in batch:
            self._push_local(users, text)
        if not self.clustered:
            return

        # One lookup for every recipient of the batch. Should it fail,
        # nothing goes out to other servers; their clients fill the gap by
        # seq when they next resume.
        everyone = sorted({user for users, _ in batch for user in users})
        addresses: dict[str, list[str]] = {}
        with self._health(Backend.ADDRESSBOOK):
            addresses = await self.addressbook.lookup(everyone)

        # Group by server: an item meant for several users who share a
        # server goes to it once, carrying all their names.
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
        payload = json.dumps(body, ensure_ascii=False).encode()
        with self._health(Backend.BACKPLANE):
            await self.backplane.deliver(server, payload)

    async def _on_delivery(self, payload: bytes) -> None:
        # Another server's publish: "d" carries frames for users with a
        # connection here, "close" the connections it evicted.
        body = json.loads(payload)
        for users, text in body.get("d", ()):
            self._push_local(users, text)
        for connection_id in body.get("close", ()):
            evicted = self.connections.get(connection_id)
            if evicted is not None:
                evicted.close(CloseCode.EVICTED, "too many connections")

    async def _on_stored(self, stored: Sequence[StoredMessage]) -> None:
        # A resent message (new=False) is delivered again on purpose: the
        # server that first stored it may have died before delivering it,
        # and clients drop a seq they already have.
        await self.deliver(await self.chats.message_frames(stored))

    def _push_local(self, users: Iterable[str], text: str) -> None:
        for user in users:
            for conn in self.by_user.get(user, ()):
                conn.push(text)

    def push_to_agents(self, text: str) -> None:
        """Push ``text`` to every agent connection of this server."""
        for conn in self.agent_connections:
            conn.push(text)

    # -- status events ----------------------------------------------------

    async def publish_status(self, event: dict[str, Any]) -> None:
        """One publish on the status channel, whatever the cluster's size.

        The event is applied here first, so this server's next decision
        (a drain right after an agent connected) already sees it; applying
        it again when it comes back from Redis changes nothing.
        """
        # Applied before publishing, not on the way back: the round trip
        # through Redis may be slow or, in an outage, never happen, and this
        # server must act on what it just did either way. Room for a chat
        # made here is used here too: the queue is drained by the server
        # that saw the change, not by every server at once.
        if self._apply(event):
            self.chats.request_drain()

        # If the publish fails, the other servers heal at their periodic
        # board reload.
        payload = json.dumps(event).encode()
        with self._health(Backend.BACKPLANE):
            await self.backplane.publish_status(payload)

    async def _on_status(self, payload: bytes) -> None:
        # Room made elsewhere is drained by the server that made it.
        self._apply(json.loads(payload))

    def _apply(self, event: dict[str, Any]) -> bool:
        """Apply a status event; True if it made room for a queued chat."""
        kind = event.get("k")
        if kind == "agent":
            return self.board.apply(event)
        if kind == "conversation":
            self.chats.forget(int(event["id"]))
        elif kind == "queue":
            self.chats.queue_changed_elsewhere()
        return False

    async def _connected_agents(self, agent_ids: Sequence[int]) -> set[int]:
        """Agents with at least one live connection anywhere."""
        # A success is not reported as a recovery here; the periodic
        # refresh does that.
        if self.clustered:
            users = [agent_user(a) for a in agent_ids]
            try:
                found = await self.addressbook.lookup(users)
            except AddressBookError as exc:
                self._degrade(Backend.ADDRESSBOOK, exc)
            else:
                return {
                    a for a, u in zip(agent_ids, users, strict=True) if found.get(u)
                }

        # Standalone, or without the address book: this server's own.
        return {a for a in agent_ids if self.by_user.get(agent_user(a))}

    async def is_connected(self, agent_id: int) -> bool:
        """Whether the agent has a live connection anywhere, right now."""
        return agent_id in await self._connected_agents([agent_id])

    async def connected_agents(self) -> set[int]:
        """Agents with a live connection, as the board knows them.

        The board follows every connect and disconnect through status
        events and is reconciled with the address book at every sweep, so
        routing needs no Redis round trip (which would grow with agents).
        """
        return {a for a in self.board.agent_ids() if self.board.connected(a)}

    async def _update_presence(self, agent_ids: Sequence[int]) -> None:
        # Only a change is published, so a sweep over a steady board
        # costs one lookup and no event.
        connected = await self._connected_agents(agent_ids)
        for agent_id in agent_ids:
            now = agent_id in connected
            if now != self.board.connected(agent_id):
                await self.publish_status(
                    {"k": "agent", "id": agent_id, "connected": now}
                )

    # -- housekeeping -----------------------------------------------------

    async def _housekeeping(self) -> None:
        interval = self.settings.heartbeat_interval
        # Every so often the board and the conversation cache are rebuilt
        # from the record, so a status event lost in an outage costs at
        # most this long.
        reload_every = max(1, round(RELOAD_PERIOD / interval))
        sweeps = 0

        while True:
            await asyncio.sleep(interval)
            sweeps += 1
            try:
                await self.sweep()
                if sweeps % reload_every == 0:
                    self.chats.forget_all()
                    await self.reload_board()
            except Exception:
                # Housekeeping must outlive any error: without it, ghosts
                # would pile up again.
                logger.exception("housekeeping failed")

    async def _liveness(self) -> None:
        # Its own task, at a third of the TTL: a slow sweep (a mass of
        # timed-out connections, a slow database) must never let this
        # server's liveness lapse and its users' addresses be dropped.
        while True:
            await asyncio.sleep(self.settings.server_ttl / 3)
            await self._refresh({})

    async def _refresh(self, live: dict[str, list[str]]) -> None:
        lapsed = False
        with self._health(Backend.ADDRESSBOOK):
            lapsed = await self.addressbook.refresh(
                live, self.settings.heartbeat_timeout
            )

        if lapsed:
            # Other servers dropped our addresses meanwhile: add them back.
            logger.warning("liveness of server %s lapsed", self.server_id)
            self.spawn(self._recover_addresses())

    async def sweep(self) -> None:
        """Close silent connections, refresh live addresses, fix presence."""
        # Anything not heard from since this moment has missed its
        # heartbeats.
        now = time.monotonic()
        silent = now - self.settings.heartbeat_timeout
        stale = []
        for conn in list(self.connections.values()):
            if conn.state is ConnectionState.HELLO and conn.opened < silent:
                # Pings are allowed before hello, so only the age of the
                # connection shows a client that never identifies itself.
                conn.close(CloseCode.HELLO_TIMEOUT, "no hello")
                stale.append(conn)
            elif conn.last_heard < silent:
                # A half-open TCP connection never reports its close, so
                # silence is the only sign; close it and drop its address.
                logger.debug("%s: heartbeat timeout", conn.address)
                conn.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                stale.append(conn)

        # Concurrently: after a network blip there may be thousands. The
        # refresh comes after, so it carries only the addresses still live.
        await asyncio.gather(*(self.disconnect(conn) for conn in stale))
        await self._refresh(self._live_addresses())

        # Presence events lost in an outage, or disconnects this server
        # never saw (another server died), are corrected here; the drain
        # catches room a failed drain left unused.
        try:
            await self._update_presence(self.board.agent_ids())
            await self.chats.drain()
        except (StoreError, AddressBookError, BackplaneError) as exc:
            logger.warning("presence or queue check failed: %s", exc)

    # -- health -----------------------------------------------------------

    @contextlib.contextmanager
    def _health(self, backend: Backend) -> Iterator[None]:
        """Report the outcome of the calls to ``backend`` in the block.

        The backend's error is logged and swallowed: the caller carries on
        without it, which is what keeps an outage from taking the server
        down. Success, after a failure, is the recovery.
        """
        try:
            yield
        except BACKEND_ERRORS[backend] as exc:
            self._degrade(backend, exc)
        else:
            self._recover(backend)

    def _degrade(self, backend: Backend, exc: Exception) -> None:
        # Once per outage: a failing backend fails every call, and one
        # line says all an operator needs until it recovers.
        if backend not in self.degraded:
            self.degraded.add(backend)
            logger.warning("%s degraded: %s", backend, exc)

    def _recover(self, backend: Backend) -> None:
        if backend in self.degraded:
            self.degraded.discard(backend)
            logger.info("%s recovered", backend)
            # Addresses may be missing and deliveries lost meanwhile.
            self.spawn(self._recover_addresses())
