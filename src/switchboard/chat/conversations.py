"""Conversations: what each client frame does, and routing.

Routing follows the design page: a new or reopened chat goes to the
customer's previous agent if that agent is online, connected and below
capacity; otherwise to the eligible agent with the fewest open chats (ties:
idle longest); otherwise it waits in the queue, oldest first. The decision
and its bookkeeping happen in one store transaction, so concurrent requests
on any number of servers never assign a chat twice or overfill an agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    AddressBookError,
    BackplaneError,
    NotFound,
    ProtocolError,
    StoreError,
)
from ..protocol import frames as client
from ..protocol import server as frames
from ..protocol.codes import ErrorCode
from ..protocol.frames import check_body
from ..store import (
    AgentStatus,
    Assignment,
    Context,
    Conversation,
    ConversationState,
    Customer,
    NewMessage,
    StoredMessage,
)
from .board import agent_event
from .cache import LruCache
from .coalescer import Coalescer
from .connection import Connection, Role
from .users import AGENT_PREFIX, agent_user, customer_user

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Conversations"]

logger = logging.getLogger("switchboard.conversations")

REPLAY_PAGE = 500
CACHE_SIZE = 10_000


class Conversations:
    """The chat services of one app server, behind the hub.

    The hub hands over every frame of an authenticated connection; this
    class checks who may do what, writes through the store, and leaves
    delivery to the hub. It holds no connections and does no I/O of its
    own, so any number of servers can run it side by side: what must be
    decided once cluster-wide is decided in a store transaction.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.store = hub.store
        # Conversations and customers read on the hot path. A conversation
        # changes state rarely, and every change is announced on the status
        # channel, which drops it here on every server.
        self._conversations: LruCache[int, Conversation] = LruCache(CACHE_SIZE)
        self._customers: LruCache[int, Customer] = LruCache(CACHE_SIZE)

        self._drain_lock = asyncio.Lock()
        self._drain_wanted = False
        self._drainer: asyncio.Task[None] | None = None

        # A drain assigns many chats in a row; queued customers and agents
        # hear about the queue once for the lot.
        interval = hub.settings.board_interval
        self._queue_announcer = Coalescer(
            interval, lambda: hub.spawn(self._announce_queue())
        )
        self._queue_pusher = Coalescer(interval, lambda: hub.spawn(self._push_queue()))

    def stop(self) -> None:
        """Cancel pending queue announcements (the server is stopping)."""
        self._queue_announcer.close()
        self._queue_pusher.close()

    # -- caches -----------------------------------------------------------

    def forget(self, conversation_id: int) -> None:
        self._conversations.pop(conversation_id)

    def forget_all(self) -> None:
        self._conversations.clear()

    async def conversation(self, conversation_id: int) -> Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = await self.store.conversation(conversation_id)
            self._conversations.put(conversation_id, conv)
        return conv

    async def customer(self, customer_id: int) -> Customer:
        found = self._customers.get(customer_id)
        if found is None:
            found = await self.store.customer(customer_id)
            self._customers.put(customer_id, found)
        return found

    def participants(self, conv: Conversation) -> list[str]:
        users = [customer_user(conv.customer_id)]
        if conv.agent_id is not None:
            users.append(agent_user(conv.agent_id))
        return users

    async def info(self, conv: Conversation) -> dict[str, Any]:
        """What a console or widget shows about ``conv``."""
        customer = await self.customer(conv.customer_id)

        # The place in the queue is not stored anywhere: it is read from the
        # queue itself, so it cannot go stale. Only queued chats pay for it.
        position = None
        if conv.state is ConversationState.QUEUED:
            queue = await self.store.queue()
            position = next(
                (i for i, c in enumerate(queue, 1) if c.id == conv.id), None
            )

        # The agent's name comes from the board, which every server keeps
        # in memory, rather than from one more query.
        agent_name = None
        if conv.agent_id is not None:
            agent_name = self.hub.board.name(conv.agent_id)
        return frames.conversation_info(
            conv,
            agent_name=agent_name,
            customer={
                "id": customer.id,
                "name": customer.name,
                "email": customer.email,
                "external_id": customer.external_id,
            },
            position=position,
        )

    # -- identity ---------------------------------------------------------

    async def identify(self, conn: Connection, hello: client.Hello) -> str | None:
        """Fill in who ``conn`` is; return a token for a new visitor."""
        # No token: a new visitor. The token handed back lets the next tab
        # or page load come back as the same customer.
        if hello.token is None:
            if self.hub.settings.require_prechat and not (hello.name and hello.email):
                raise ProtocolError(ErrorCode.BAD_FRAME, "name and email required")
            customer = await self.store.create_visitor(hello.name, hello.email)
            self._identified(conn, customer)
            return self.hub.signer.visitor(customer.id)

        identity = self.hub.signer.verify(hello.token)
        if identity is None:
            raise ProtocolError(ErrorCode.AUTH_FAILED, "bad or expired token")

        if identity.kind == "agent":
            try:
                agent = await self.store.agent(identity.id)
            except NotFound:
                raise ProtocolError(ErrorCode.AUTH_FAILED, "no such agent") from None
            conn.role = Role.AGENT
            conn.agent_id = agent.id
            conn.user = agent_user(agent.id)
            conn.name = agent.name
            return None

        if identity.kind == "visitor":
            customer = await self._returning_visitor(identity.id, hello)
            self._identified(conn, customer)
            return hello.token

        # A customer the shop signed in: the shop's profile is the truth, and
        # its token is the shop's to renew, so none is handed back.
        customer = await self.store.customer_by_external_id(
            identity.external_id, identity.name, identity.email
        )
        self._identified(conn, customer)
        return None

    async def _returning_visitor(
        self, customer_id: int, hello: client.Hello
    ) -> Customer:
        try:
            customer = await self.store.customer(customer_id)
        except NotFound:
            raise ProtocolError(ErrorCode.AUTH_FAILED, "no such visitor") from None

        # A visitor who skipped the pre-chat form may fill it in later; what
        # was given first is never overwritten.
        if hello.name and hello.email and not customer.email:
            await self.store.update_customer(customer.id, hello.name, hello.email)
            customer = dataclasses.replace(customer, name=hello.name, email=hello.email)
        return customer

    def _identified(self, conn: Connection, customer: Customer) -> None:
        # Cached now: the customer's first start or message reads it again.
        self._customers.put(customer.id, customer)
        conn.role = Role.CUSTOMER
        conn.customer_id = customer.id
        conn.user = customer_user(customer.id)
        conn.name = customer.name

    # -- dispatch ---------------------------------------------------------

    async def handle(self, conn: Connection, frame: client.ClientFrame) -> None:
        """Do what ``frame`` asks; the hub has already authenticated ``conn``.

        Each handler checks the role and the conversation itself, so this
        is only a table. Errors propagate: the hub turns them into frames.
        """
        match frame:
            # Messages, by either side.
            case client.Send():
                await self.send(conn, frame)
            case client.Typing():
                await self.typing(conn, frame)
            case client.Read():
                await self.read(conn, frame)

            # Starting and resuming a conversation.
            case client.Start():
                await self.start(conn, frame)
            case client.Join():
                await self.join(conn, frame)
            case client.ContextUpdate():
                await self.context(conn, frame)

            # Agents only.
            case client.Status():
                await self.status(conn, frame)
            case client.Take():
                await self.take(conn, frame)
            case client.Transfer():
                await self.transfer(conn, frame)
            case client.Close():
                await self.close(conn, frame)
            case client.Reopen():
                await self.reopen(conn, frame)
            case _:  # pragma: no cover - hello and ping never get here
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown frame type")

    def _require(self, conn: Connection, role: Role) -> None:
        if conn.role is not role:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"only for {role}s")

    async def _readable(self, conn: Connection, conversation_id: int) -> Conversation:
        """The conversation, if ``conn`` may see it (its customer, any agent)."""
        try:
            conv = await self.conversation(conversation_id)
        except NotFound:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation") from None

        if conn.role is Role.CUSTOMER and conv.customer_id != conn.customer_id:
            # Same answer as a missing id: do not reveal which ids exist.
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
        return conv

    async def _writable(self, conn: Connection, conversation_id: int) -> Conversation:
        """The conversation, if ``conn`` takes part (its customer, its agent)."""
        conv = await self._readable(conn, conversation_id)
        if conn.role is not Role.AGENT or self._holds(conn, conv):
            return conv

        # The cached copy may predate an assignment made on another server;
        # read the record before refusing (refusals are rare, reads cheap).
        conv = await self.store.conversation(conversation_id)
        self._conversations.put(conv.id, conv)
        if not self._holds(conn, conv):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "conversation is not assigned to you"
            )
        return conv

    @staticmethod
    def _holds(conn: Connection, conv: Conversation) -> bool:
        return conv.agent_id == conn.agent_id and conv.state is ConversationState.OPEN

    # -- messages ---------------------------------------------------------

    async def send(self, conn: Connection, frame: client.Send) -> None:
        """Queue a message for storage; its ack follows once it is sent on."""
        body = check_body(frame, self.hub.settings.max_body)
        conv = await self._writable(conn, frame.conversation)

        # A product card is stored with the product's data as the shop
        # describes it now, so the card reads the same in any later replay.
        data = None
        if frame.kind == "product":
            self._require(conn, Role.AGENT)
            product = await self.hub.commerce.product(frame.sku or "")
            if product is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such product")
            data = dataclasses.asdict(product)
            body = product.name

        # Queue now, in the order this connection sent its messages, and
        # wait for the commit in the background: the connection's next
        # frames (a ping, the next message) are read meanwhile.
        stored = await self.hub.writer.enqueue(
            NewMessage(conv.id, frame.client_id, conn.user, frame.kind, body, data)
        )
        self.hub.spawn(
            self.hub.answer(conn, frame.ref, self._sent(conn, conv, frame, stored))
        )

    async def _sent(
        self,
        conn: Connection,
        conv: Conversation,
        frame: client.Send,
        stored: asyncio.Future[StoredMessage],
    ) -> None:
        """Acknowledge a stored message; reopen its conversation if closed."""
        # The ack goes out once the message is stored and delivered (the
        # writer resolves the future then), before the reopen: routing (a
        # transaction, deliveries, status events) must not hold it back. If
        # the reopen fails, the error frame that follows says so, yet the
        # message stays stored and acknowledged; a reopened chat whose
        # routing failed waits in the queue for the next drain.
        record = await stored
        conn.push(frames.ack(conv.id, frame.client_id, record.seq, frame.ref))

        # Writing into a closed conversation reopens it. reopen() is true
        # for exactly one caller cluster-wide, which routes it.
        reopens = conv.state is ConversationState.CLOSED and conn.role is Role.CUSTOMER
        if reopens and await self.store.reopen(conv.id):
            await self._changed(conv.id)
            await self.route(conv.id)

    async def message_frames(
        self, stored: Sequence[StoredMessage]
    ) -> list[tuple[list[str], str]]:
        """(recipients, frame) for each stored message, in order."""
        # Names come from the board and the caches, so a batch of hundreds
        # of messages costs no query per message in the common case.
        items = []
        for record in stored:
            conv = await self.conversation(record.conversation_id)
            _, _, raw_id = record.sender.partition(":")
            if record.sender.startswith(AGENT_PREFIX):
                name = self.hub.board.name(int(raw_id))
            else:
                name = (await self.customer(int(raw_id))).name
            items.append((self.participants(conv), frames.message(record, name)))
        return items

    async def typing(self, conn: Connection, frame: client.Typing) -> None:
        conv = await self._writable(conn, frame.conversation)
        others = [u for u in self.participants(conv) if u != conn.user]
        text = frames.typing(conv.id, conn.user, conn.name, frame.active)
        await self.hub.deliver([(others, text)])

    async def read(self, conn: Connection, frame: client.Read) -> None:
        conv = await self._readable(conn, frame.conversation)
        seq = await self.store.mark_read(conv.id, conn.user, frame.seq)
        text = frames.read(conv.id, conn.user, seq)
        await self.hub.deliver([([*self.participants(conv), conn.user], text)])

    async def context(self, conn: Connection, frame: client.ContextUpdate) -> None:
        self._require(conn, Role.CUSTOMER)
        conv = await self._readable(conn, frame.conversation)
        await self._set_context(conv, frame.context)

    async def _set_context(self, conv: Conversation, fields: Any) -> None:
        ctx = Context(
            url=fields.url,
            title=fields.title,
            cart=[item.model_dump() for item in fields.cart],
        )
        await self.store.set_context(conv.id, ctx)

        # The customer's page and cart are for the agent's eyes; the
        # customer's own tabs have no use for them.
        agents = [u for u in self.participants(conv) if u.startswith(AGENT_PREFIX)]
        if agents:
            text = frames.context(conv.id, dataclasses.asdict(ctx))
            await self.hub.deliver([(agents, text)])

    # -- starting and resuming --------------------------------------------

    async def start(self, conn: Connection, frame: client.Start) -> None:
        self._require(conn, Role.CUSTOMER)

        # Two tabs starting at once, on any servers, must not open two
        # conversations: the store decides under a lock of the customer.
        conv, created = await self.store.latest_or_create_conversation(conn.customer_id)
        self._conversations.put(conv.id, conv)

        if frame.context is not None:
            await self._set_context(conv, frame.context)

        # The replay comes before routing, so the widget knows the
        # conversation before an assignment for it arrives. A conversation
        # resumed keeps its agent, or its place in the queue.
        await self._replay(conn, conv, frame.after_seq, frame.ref)
        if created:
            await self.route(conv.id)

    async def join(self, conn: Connection, frame: client.Join) -> None:
        conv = await self._readable(conn, frame.conversation)
        await self._replay(conn, conv, frame.after_seq, frame.ref)

    async def _replay(
        self, conn: Connection, conv: Conversation, after: int, ref: str | None
    ) -> None:
        """Snapshot, every message after ``after``, read cursors, synced."""
        # The cached copy is good for permissions but its last_seq is not
        # kept current; the snapshot reads the record.
        conv = await self.store.conversation(conv.id)
        conn.push(frames.conversation(await self.info(conv), ref))

        # Page by seq, not by offset: messages stored meanwhile land after
        # the last page and are replayed too (or delivered live; the client
        # drops a seq it already has).
        seq = after
        while True:
            page = await self.store.messages(conv.id, seq, REPLAY_PAGE)
            for _, text in await self.message_frames(page):
                conn.push(text)
            if page:
                seq = page[-1].seq
            if len(page) < REPLAY_PAGE:
                break

            # A long history must not overflow the outbox of a slow link
            # (which would close it, and the resume would start over).
            if not await conn.drained():
                return

        # Synced comes last: it tells the client that everything up to that
        # seq is here, so it may stop showing a gap.
        for user, cursor in (await self.store.read_cursors(conv.id)).items():
            conn.push(frames.read(conv.id, user, cursor))
        conn.push(frames.synced(conv.id, max(seq, after), ref))

    # -- agents -----------------------------------------------------------

    async def status(self, conn: Connection, frame: client.Status) -> None:
        self._require(conn, Role.AGENT)
        agent = await self.store.set_agent_status(
            conn.agent_id, AgentStatus(frame.status)
        )
        # Going online makes room; publishing the change drains the queue.
        await self.hub.publish_status({"k": "agent", **agent_event(agent)})

    async def take(self, conn: Connection, frame: client.Take) -> None:
        self._require(conn, Role.AGENT)
        conv = await self._readable(conn, frame.conversation)
        await self._claim(conn, conv.id, self.store.take, ConversationState.QUEUED)

    async def transfer(self, conn: Connection, frame: client.Transfer) -> None:
        self._require(conn, Role.AGENT)
        conv = await self._writable(conn, frame.conversation)
        try:
            await self.store.agent(frame.agent)
        except NotFound:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such agent") from None
        if frame.agent == conn.agent_id:
            raise ProtocolError(ErrorCode.BAD_STATE, "already assigned to you")

        # Nobody would see a chat handed to an agent with no console open.
        # Asked of the address book, not the board: the target may have
        # connected to another server a moment ago.
        if not await self.hub.is_connected(frame.agent):
            raise ProtocolError(ErrorCode.BAD_STATE, "that agent is not connected")

        assignment = await self.store.transfer(conv.id, conn.agent_id, frame.agent)
        if assignment is None:
            raise ProtocolError(ErrorCode.AT_CAPACITY, "that agent is at capacity")

        await self._changed(conv.id)
        fresh = await self.conversation(conv.id)
        text = frames.transferred(await self.info(fresh), conn.agent_id)
        await self.hub.deliver([([*self.participants(fresh), conn.user], text)])
        await self._announce_agents(conn.agent_id, frame.agent)

    async def close(self, conn: Connection, frame: client.Close) -> None:
        self._require(conn, Role.AGENT)
        conv = await self._readable(conn, frame.conversation)
        if not await self.store.close_conversation(conv.id, conn.agent_id):
            raise ProtocolError(ErrorCode.BAD_STATE, "conversation is not yours")

        await self._changed(conv.id)
        text = frames.closed(conv.id, conn.user)
        await self.hub.deliver([(self.participants(conv), text)])

        # The agent's lower load, once announced, drains the queue.
        await self._announce_agents(conn.agent_id)

    async def reopen(self, conn: Connection, frame: client.Reopen) -> None:
        """Reopen a closed conversation and assign it to the agent asking."""
        self._require(conn, Role.AGENT)
        conv = await self._readable(conn, frame.conversation)

        # One transaction from closed to open with this agent: the chat is
        # never queued in between, so no drain elsewhere can route it away.
        await self._claim(conn, conv.id, self.store.reopen_to, ConversationState.CLOSED)

    async def _claim(
        self,
        conn: Connection,
        conversation_id: int,
        claim: Callable[[int, int], Awaitable[Assignment | None]],
        state: ConversationState,
    ) -> None:
        """Give a conversation in ``state`` to the agent of ``conn``."""
        assignment = await claim(conversation_id, conn.agent_id)

        # The store only says no; a fresh read tells a chat that changed
        # meanwhile (another agent was first) from an agent with no room.
        if assignment is None:
            fresh = await self.store.conversation(conversation_id)
            if fresh.state is not state:
                raise ProtocolError(ErrorCode.BAD_STATE, f"conversation is not {state}")
            raise ProtocolError(ErrorCode.AT_CAPACITY, "you are at capacity")
        await self._assigned(assignment)

    async def _announce_agents(self, *agent_ids: int) -> None:
        for agent_id in agent_ids:
            agent = await self.store.agent(agent_id)
            await self.hub.publish_status({"k": "agent", **agent_event(agent)})

    async def _changed(self, conversation_id: int) -> None:
        """Drop a changed conversation from every server's cache."""
        self.forget(conversation_id)
        await self.hub.publish_status({"k": "conversation", "id": conversation_id})

    # -- routing ----------------------------------------------------------

    async def route(self, conversation_id: int) -> None:
        """Assign a new or reopened chat, or leave it in the queue."""
        # Candidates are the agents connected anywhere, as the board knows
        # them; the store checks status and capacity inside its transaction,
        # so a stale board can cost a queued chat, never a double assignment.
        conv = await self.store.conversation(conversation_id)
        candidates = sorted(await self.hub.connected_agents())
        assignment = None
        if candidates:
            assignment = await self.store.assign(
                conv.id, candidates, conv.last_agent_id
            )

        # A chat left queued still changes the queue: its customer learns
        # their place, and agents see one more waiting.
        if assignment is not None:
            await self._assigned(assignment)
        else:
            self.queue_changed()

    def request_drain(self) -> None:
        """Drain the queue soon; requests made while one runs are merged."""
        self._drain_wanted = True
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain_while_wanted())

    async def _drain_while_wanted(self) -> None:
        while self._drain_wanted:
            self._drain_wanted = False
            try:
                await self.drain()
            except (StoreError, AddressBookError, BackplaneError) as exc:
                # The next sweep drains again.
                logger.warning("draining the queue failed: %s", exc)

    async def drain(self) -> None:
        """Assign queued conversations while any agent can take one."""
        # One drain at a time on this server; other servers may drain at
        # once, and the store's transaction keeps them from colliding.
        async with self._drain_lock:
            queue = await self.store.queue()
            if not queue:
                return
            candidates = sorted(await self.hub.connected_agents())
            if not candidates:
                return

            # Oldest first, as the store returns the queue.
            for conv in queue:
                assignment = await self.store.assign(
                    conv.id, candidates, conv.last_agent_id
                )
                if assignment is None:
                    # Either nobody has room, or another server took this
                    # one; the next one may still fit.
                    if not await self._anyone_has_room(candidates):
                        break
                    continue
                await self._assigned(assignment)

    async def _anyone_has_room(self, candidates: Sequence[int]) -> bool:
        # The board, not the record, answers: it is in memory, and it only
        # decides when to stop trying, never who gets a chat (the store does
        # that in its transaction). It may lag the record by one event; a
        # wrong "yes" costs one more assign attempt, a wrong "no" waits for
        # the next drain, which the event that made room requests anyway.
        return any(self.hub.board.has_room(agent_id) for agent_id in candidates)

    async def _assigned(self, assignment: Assignment) -> None:
        """Announce an assignment the store has made."""
        logger.debug(
            "conversation %d assigned to agent %d (%s)",
            assignment.conversation_id,
            assignment.agent_id,
            assignment.reason,
        )

        # Every server drops its cached copy before the news goes out, so
        # the agent's first message finds the assignment wherever it lands.
        await self._changed(assignment.conversation_id)
        conv = await self.conversation(assignment.conversation_id)
        text = frames.assigned(await self.info(conv), assignment.reason)
        await self.hub.deliver([(self.participants(conv), text)])

        # Then the agent's new load on every board, and the shorter queue.
        await self._announce_agents(assignment.agent_id)
        self.queue_changed()

    # -- the queue --------------------------------------------------------

    def queue_changed(self) -> None:
        """Tell queued customers their positions, coalesced."""
        self._queue_announcer.request()

    async def _announce_queue(self) -> None:
        # Customers hear from the server that changed the queue (one
        # delivery each, wherever they are); agents hear from their own
        # server, through the status event published here.
        #
        # This runs from a timer, where no caller would see an error: it is
        # logged, and the next change of the queue announces it again.
        try:
            queue = await self.store.queue()
            items = [
                ([customer_user(c.customer_id)], frames.queued(c.id, position))
                for position, c in enumerate(queue, 1)
            ]
            await self.hub.deliver(items)
            await self.hub.publish_status({"k": "queue"})
        except Exception as exc:
            logger.warning("announcing the queue failed: %s", exc)

    def queue_changed_elsewhere(self) -> None:
        """The queue changed somewhere: push it to this server's agents."""
        self._queue_pusher.request()

    async def _push_queue(self) -> None:
        # From a timer too: an error is logged, and the next change heals.
        try:
            self.hub.push_to_agents(await self.queue_frame())
        except Exception as exc:
            logger.warning("pushing the queue failed: %s", exc)

    async def queue_frame(self) -> str:
        """The queue as agents see it, oldest first."""
        entries = []
        for position, conv in enumerate(await self.store.queue(), 1):
            customer = await self.customer(conv.customer_id)
            entries.append(
                {
                    "id": conv.id,
                    "position": position,
                    "customer": {"id": customer.id, "name": customer.name},
                    "queued_at": conv.queued_at,
                }
            )
        return frames.queue(entries)
