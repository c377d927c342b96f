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
ids, so the server stores each exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

__all__ = ["Client", "ClientError", "backoff_delay"]


class ClientError(Exception):
    """The server answered a request with an error frame."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code = str(frame.get("code"))
        self.frame = frame


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff; the cap applies before the jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


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
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # The customer's own conversation, once started.
        self.conversation: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[dict[str, Any], asyncio.Future[int]]] = {}
        self._refs: dict[str, asyncio.Future[dict[str, Any]]] = {}

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
        self.welcome = await self.request(hello, answer="welcome")
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
        """Send ``frame`` and wait for the next ``answer`` frame or an error."""
        ref = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._refs[ref] = future
        self._refs[f"type:{answer}"] = future
        try:
            await self.send_frame({**frame, "ref": ref})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._refs.pop(ref, None)
            if self._refs.get(f"type:{answer}") is future:
                del self._refs[f"type:{answer}"]

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
        answer = await self.request(frame, answer="conversation")
        info: dict[str, Any] = answer["conversation"]
        self.conversation = int(info["id"])
        self.last_seq.setdefault(self.conversation, after_seq)
        await self.wait_synced(self.conversation)
        return info

    async def join(self, conversation: int, after_seq: int = 0) -> dict[str, Any]:
        """Replay ``conversation`` after ``after_seq``; wait until synced."""
        frame = {"type": "join", "conversation": conversation, "after_seq": after_seq}
        answer = await self.request(frame, answer="conversation")
        self.last_seq.setdefault(conversation, after_seq)
        await self.wait_synced(conversation)
        info: dict[str, Any] = answer["conversation"]
        return info

    async def wait_synced(self, conversation: int, timeout: float = 10.0) -> None:
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
            for future in list(self._refs.values()):
                if not future.done():
                    future.set_exception(error)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._on_message(frame)
        elif kind == "ack":
            entry = self._pending.pop(str(frame["client_id"]), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(int(frame["seq"]))

        ref = frame.get("ref")
        future = self._refs.get(ref) if isinstance(ref, str) else None
        if future is None and kind != "error":
            future = self._refs.get(f"type:{kind}")
        if future is not None and not future.done():
            if kind == "error":
                future.set_exception(ClientError(frame))
            else:
                future.set_result(frame)
        if kind == "error" and isinstance(ref, str) and ref in self._pending:
            _, pending = self._pending.pop(ref)
            if not pending.done():
                pending.set_exception(ClientError(frame))

    def _on_message(self, frame: dict[str, Any]) -> None:
        conversation = int(frame["conversation"])
        seq = int(frame["seq"])
        seen = self.messages.setdefault(conversation, {})
        seen[seq] = frame

        # Advance the contiguous mark; a gap means a message is missing
        # here, so ask for a replay from the last one we have in order.
        last = self.last_seq.get(conversation, 0)
        while last + 1 in seen:
            last += 1
        self.last_seq[conversation] = last
        if seq > last + 1 and self._ws is not None:
            replay = {"type": "join", "conversation": conversation, "after_seq": last}
            task = asyncio.get_running_loop().create_task(self.send_frame(replay))
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
