"""An async Python client for the Switchboard wire protocol.

Tests, bots and the load generator use it::

    async with await Client.connect("ws://127.0.0.1:8000/ws") as me:
        conversation = await me.start()
        await me.send(conversation["id"], "hello")
        frame = await me.receive("message")

A :class:`Client` keeps what it needs to resume: its token, the last
``seq`` it saw per conversation, and sends not yet acknowledged. After a
lost connection, :meth:`Client.reconnect` says hello again, replays what it
missed and resends the unacknowledged messages with their original client
ids, so the server stores each exactly once. A gap in a conversation, or a
``resync`` frame from the server, makes it replay in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

__all__ = ["Client", "ClientError", "backoff_delay"]

# How long a background replay refused as ``unavailable`` waits to retry.
RETRY_DELAY = 1.0


class ClientError(Exception):
    """The server answered a request with an error frame."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code = str(frame.get("code"))
        self.frame = frame


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff; the cap applies before the jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


@dataclass(eq=False)
class _Waiter:
    """A request waiting for one frame of type ``answer``.

    The frame is recognised by its ``ref``. Frames that carry none (``pong``,
    ``board``; every answer from servers older than the ``ref`` echo) go to
    the oldest waiter for their type, in ``conversation`` if one is given.
    """

    ref: str
    answer: str
    future: asyncio.Future[dict[str, Any]]
    conversation: int | None = None


class Client:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        name: str = "",
        email: str = "",
        heartbeat: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.name = name
        self.email = email
        self.heartbeat = heartbeat
        self.welcome: dict[str, Any] = {}
        # conversation id -> seq -> message frame, and the highest
        # contiguous seq seen (what to resume after).
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}
        self.last_seq: dict[int, int] = {}
        # conversation id -> the seq of every message frame, in arrival
        # order, duplicates included: what dedupe hides from `messages`.
        self.arrivals: dict[int, list[int]] = {}
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # The customer's own conversation, once started.
        self.conversation: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[dict[str, Any], asyncio.Future[int]]] = {}
        self._waiters: list[_Waiter] = []
        # conversation id -> ref of the replay (start or join) running in it;
        # one at a time, so a burst of out-of-order messages costs one join.
        self._joining: dict[int, str] = {}
        # Conversations to replay again once their running replay ends.
        self._rejoin: set[int] = set()
        # Refs of the replays this client started by itself.
        self._catch_ups: set[str] = set()

    # -- connecting -------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, **options: Any) -> Client:
        client = cls(url, **options)
        await client.open()
        return client

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> dict[str, Any]:
        """Open a connection and say hello; return the welcome frame."""
        self._ws = await websockets.connect(self.url, max_size=2**22)
        self._reader = asyncio.create_task(self._read(self._ws))
        hello: dict[str, Any] = {"type": "hello", "v": 1, "token": self.token}
        if self.name or self.email:
            hello.update(name=self.name, email=self.email)
        try:
            self.welcome = await self.request(hello, answer="welcome")
        except BaseException:
            # A failed hello must not leave the socket and its reader behind.
            await self._drop()
            raise
        self.token = self.welcome.get("token") or self.token
        if self.heartbeat:
            interval = float(self.welcome["heartbeat"]["interval"])
            self._pinger = asyncio.create_task(self._ping(interval))
        return self.welcome

    async def reconnect(
        self, attempts: int = 10, base: float = 0.5, cap: float = 30.0
    ) -> None:
        """Connect again, catch up on every conversation, resend unacked.

        Attempts are spaced by full-jitter exponential backoff, so the
        clients of a restarted server spread out instead of stampeding.
        """
        await self._drop()
        for attempt in range(attempts):
            try:
                await self.open()
                break
            except (OSError, websockets.WebSocketException):
                # open() has closed what it opened: nothing leaks per try.
                await asyncio.sleep(backoff_delay(attempt, base, cap))
        else:
            raise ConnectionError(f"could not reconnect to {self.url}")

        for conversation, seq in list(self.last_seq.items()):
            await self.join(conversation, seq)
        for frame, _ in list(self._pending.values()):
            await self.send_frame(frame)

    async def close(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        for task in (self._pinger, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._pinger = self._reader = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None

        # Replays belong to the connection that asked for them.
        self._joining.clear()
        self._rejoin.clear()
        self._catch_ups.clear()

    async def wait_closed(self) -> None:
        """Return once the server has closed the connection."""
        if self._reader is not None:
            await asyncio.shield(self._reader)

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    # -- requests ---------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(json.dumps(frame, ensure_ascii=False))

    async def send_raw(self, text: str) -> None:
        """Send text as is (tests use this for malformed frames)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(text)

    async def request(
        self, frame: dict[str, Any], answer: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send ``frame`` and wait for its ``answer`` frame or its error."""
        ref = uuid.uuid4().hex
        waiter = self._expect(ref, answer)
        try:
            await self.send_frame({**frame, "ref": ref})
            return await asyncio.wait_for(waiter.future, timeout)
        finally:
            self._forget(waiter)

    async def start(
        self, after_seq: int | None = None, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start or resume the customer's conversation; wait until synced.

        ``after_seq`` defaults to the last seq seen in this client's
        conversation, so a resumed client is sent only what it missed.
        """
        if after_seq is None:
            after_seq = self.last_seq.get(self.conversation or 0, 0)
        frame: dict[str, Any] = {"type": "start", "after_seq": after_seq}
        if context is not None:
            frame["context"] = context
        info = await self._replay(frame, None)
        self.conversation = int(info["id"])
        self.last_seq.setdefault(self.conversation, after_seq)
        return info

    async def join(self, conversation: int, after_seq: int = 0) -> dict[str, Any]:
        """Replay ``conversation`` after ``after_seq``; wait until synced."""
        frame = {"type": "join", "conversation": conversation, "after_seq": after_seq}
        info = await self._replay(frame, conversation)
        self.last_seq.setdefault(conversation, after_seq)
        return info

    async def _replay(
        self, frame: dict[str, Any], conversation: int | None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send a start or join; return its snapshot once its own synced came.

        The replay's frames are taken off the queue, so a caller's next
        ``receive`` sees live frames only, those that overtook the replay
        (an assignment, say) included.
        """
        ref = uuid.uuid4().hex
        snapshot = self._expect(ref, "conversation")
        synced = self._expect(ref, "synced", conversation)
        if conversation is not None:
            self._joining[conversation] = ref
        try:
            await self.send_frame({**frame, "ref": ref})
            async with asyncio.timeout(timeout):
                answer = await snapshot.future
                done = await synced.future
        finally:
            self._forget(snapshot)
            self._forget(synced)
            # A replay that failed or timed out must not hold back the
            # gap joins of its conversation; one that ended is gone already.
            self._abandon(ref)

        self._consume_replay(answer, done)
        info: dict[str, Any] = answer["conversation"]
        return info

    async def wait_synced(self, conversation: int, timeout: float = 10.0) -> None:
        """Wait for the next ``synced`` of ``conversation``, whichever replay."""
        await self.receive("synced", timeout, conversation=conversation)

    async def send(
        self,
        conversation: int,
        body: str,
        *,
        client_id: str | None = None,
        kind: str = "text",
        sku: str | None = None,
        timeout: float = 10.0,
    ) -> int:
        """Send a message; return its ``seq`` once the server stored it."""
        client_id = client_id or uuid.uuid4().hex
        frame: dict[str, Any] = {
            "type": "send",
            "conversation": conversation,
            "client_id": client_id,
            "body": body,
            "kind": kind,
            "ref": client_id,
        }
        if sku is not None:
            frame["sku"] = sku
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[client_id] = (frame, future)
        try:
            await self.send_frame(frame)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if future.done():
                self._pending.pop(client_id, None)

    async def receive(
        self, type_: str | None = None, timeout: float = 10.0, **match: Any
    ) -> dict[str, Any]:
        """The next frame (of ``type_`` and with ``match`` fields, if given).

        Frames that do not match are dropped from the queue.
        """
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if type_ is not None and frame.get("type") != type_:
                    continue
                if all(frame.get(k) == v for k, v in match.items()):
                    return frame

    def drain(self) -> list[dict[str, Any]]:
        """Every frame received and not yet consumed."""
        found = []
        while not self.frames.empty():
            found.append(self.frames.get_nowait())
        return found

    def bodies(self, conversation: int) -> list[str]:
        """Message bodies seen in ``conversation``, in seq order, once each."""
        seen = self.messages.get(conversation, {})
        return [seen[s]["body"] for s in sorted(seen)]

    # -- answers ----------------------------------------------------------

    def _expect(
        self, ref: str, answer: str, conversation: int | None = None
    ) -> _Waiter:
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(ref, answer, future, conversation)
        self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        # An error fails every waiter of its ref; the one nobody awaited
        # any more must not be reported as a lost exception.
        if waiter.future.done() and not waiter.future.cancelled():
            waiter.future.exception()

    def _answer(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if "ref" in frame:
            ref = frame["ref"]
            found = [
                w for w in self._waiters if w.ref == ref and kind in (w.answer, "error")
            ]
        elif kind != "error":
            conversation = frame.get("conversation")
            found = [
                w
                for w in self._waiters
                if w.answer == kind and w.conversation in (None, conversation)
            ][:1]
        else:
            found = []

        for waiter in found:
            if waiter.future.done():
                continue
            if kind == "error":
                waiter.future.set_exception(ClientError(frame))
            else:
                waiter.future.set_result(frame)

    def _consume_replay(self, snapshot: dict[str, Any], synced: dict[str, Any]) -> None:
        # A live message or read up to the synced seq cannot be told from a
        # replayed one; it adds nothing the replay did not bring.
        conversation, seq = synced["conversation"], synced["seq"]

        def replayed(frame: dict[str, Any]) -> bool:
            if frame is snapshot or frame is synced:
                return True
            if frame.get("conversation") != conversation:
                return False
            kind = frame.get("type")
            return kind == "read" or (kind == "message" and frame["seq"] <= seq)

        queued = self.drain()
        end = next((n for n, f in enumerate(queued) if f is synced), -1)
        for n, frame in enumerate(queued):
            if n > end or not replayed(frame):
                self.frames.put_nowait(frame)

    # -- background -------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                self._on_frame(frame)
                self.frames.put_nowait(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            error = ConnectionError("connection closed")
            for waiter in self._waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._on_message(frame)
        elif kind == "conversation":
            self._on_snapshot(frame)
        elif kind == "synced":
            self._on_synced(frame)
        elif kind == "resync":
            self._on_resync()
        elif kind == "ack":
            entry = self._pending.pop(str(frame["client_id"]), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(int(frame["seq"]))
        elif kind == "error":
            self._on_error(frame)
        self._answer(frame)

    def _on_message(self, frame: dict[str, Any]) -> None:
        conversation = int(frame["conversation"])
        seq = int(frame["seq"])
        self.arrivals.setdefault(conversation, []).append(seq)
        seen = self.messages.setdefault(conversation, {})
        seen[seq] = frame

        # Advance the contiguous mark; a gap means a message is missing
        # here, so ask for a replay from the last one we have in order.
        # While a replay runs in this conversation, its end judges instead:
        # live frames overtaking a replay are not a gap.
        last = self.last_seq.get(conversation, 0)
        while last + 1 in seen:
            last += 1
        self.last_seq[conversation] = last
        if seq > last + 1 and conversation not in self._joining:
            self._catch_up(conversation)

    def _on_snapshot(self, frame: dict[str, Any]) -> None:
        # The first frame of a replay; a start names its conversation here.
        ref = frame.get("ref")
        if isinstance(ref, str):
            self._joining[int(frame["conversation"]["id"])] = ref

    def _on_synced(self, frame: dict[str, Any]) -> None:
        conversation = int(frame["conversation"])
        running = self._joining.get(conversation)
        ref = frame.get("ref", running)
        self._catch_ups.discard(ref)

        # A server that does not echo ref ends whichever replay is running;
        # the end of one superseded by a later replay changes nothing.
        if running is None or ref != running:
            return
        del self._joining[conversation]

        # One more replay if a resync came meanwhile (this one may have read
        # the store before the lost messages), or if a gap remains above
        # what this one reached.
        seen = self.messages.get(conversation, {})
        highest = max(seen, default=0)
        gap = highest > self.last_seq.get(conversation, 0)
        if conversation in self._rejoin or (gap and int(frame["seq"]) < highest):
            self._rejoin.discard(conversation)
            self._catch_up(conversation)

    def _on_resync(self) -> None:
        # The server may have lost frames for us: replay every conversation
        # after its mark. One already replaying replays again after, since
        # its replay may have read the store before the lost messages.
        for conversation in list(self.last_seq):
            if conversation in self._joining:
                self._rejoin.add(conversation)
            else:
                self._catch_up(conversation)

    def _on_error(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        if not isinstance(ref, str):
            return
        if ref in self._pending:
            _, pending = self._pending.pop(ref)
            if not pending.done():
                pending.set_exception(ClientError(frame))

        # A refused replay ends; one this client needs is tried again later
        # if the server was only unavailable (the next gap or resync would
        # otherwise be the only chance).
        for conversation in self._abandon(ref):
            needed = ref in self._catch_ups or conversation in self._rejoin
            self._rejoin.discard(conversation)
            if needed and frame.get("code") == "unavailable":
                loop = asyncio.get_running_loop()
                loop.call_later(RETRY_DELAY, self._catch_up, conversation)
        self._catch_ups.discard(ref)

    def _abandon(self, ref: str) -> list[int]:
        """Forget the replay ``ref``; return the conversations it ran in."""
        ended = [c for c, running in self._joining.items() if running == ref]
        for conversation in ended:
            del self._joining[conversation]
        return ended

    def _catch_up(self, conversation: int) -> None:
        """Replay ``conversation`` after its mark, in the background."""
        if self._ws is None:
            return  # the next reconnect joins every conversation anyway
        if conversation in self._joining:
            self._rejoin.add(conversation)
            return
        ref = uuid.uuid4().hex
        self._joining[conversation] = ref
        self._catch_ups.add(ref)
        after = self.last_seq.get(conversation, 0)
        frame = {
            "type": "join",
            "conversation": conversation,
            "after_seq": after,
            "ref": ref,
        }
        self._spawn(self._send_quietly(frame))

    async def _send_quietly(self, frame: dict[str, Any]) -> None:
        # A background frame on a connection closing meanwhile is moot: the
        # reconnect replays every conversation.
        with contextlib.suppress(ConnectionError, websockets.WebSocketException):
            await self.send_frame(frame)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ping(self, interval: float) -> None:
        with contextlib.suppress(ConnectionError, websockets.WebSocketException):
            while True:
                await asyncio.sleep(interval)
                await self.send_frame({"type": "ping"})


def message_bodies(frames: Iterable[dict[str, Any]]) -> list[str]:
    """Bodies of the message frames among ``frames``, in arrival order."""
    return [f["body"] for f in frames if f.get("type") == "message"]
