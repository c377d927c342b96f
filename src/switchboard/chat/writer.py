"""Batched message writes: the store half of the hot path.

Senders hand messages to one writer task through a bounded queue. The task
stores whatever has accumulated (up to ``batch_size``) in one transaction
and hands the stored batch on, in order, to the delivery task, which
delivers it and only then resolves each sender's future. Under load one
commit serves hundreds of messages; when idle a message is stored alone at
once, so batching adds no latency.

Resolving after delivery is what keeps every tab's view in seq order across
servers: a sender's ack means its message has already gone to this server's
connections and to the backplane, so a reply sent after the ack (from any
server) is stored, and delivered, after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ..errors import InvalidInput, NotFound, StoreError
from ..store import NewMessage, Store, StoredMessage

__all__ = ["MessageWriter"]

logger = logging.getLogger("switchboard.writer")

OnStored = Callable[[Sequence[StoredMessage]], Awaitable[None]]

_Future = asyncio.Future[StoredMessage]
_Item = tuple[NewMessage, _Future]
_Stored = tuple[StoredMessage, _Future]

# Seconds one batch's delivery may take before its acks go out regardless.
DELIVERY_TIMEOUT = 10.0


class MessageWriter:
    """The one path by which this server stores messages.

    Two tasks: one writes batches, the other hands each stored batch to
    ``on_stored`` (delivery), in the order they were stored. They are apart
    so that the next commit need not wait for the last delivery.
    """

    def __init__(self, store: Store, on_stored: OnStored, batch_size: int) -> None:
        self._store = store
        self._on_stored = on_stored
        self._batch_size = batch_size
        # Bounded: when the database falls behind, senders wait here, which
        # stops reading from their sockets: back-pressure, not memory growth.
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(batch_size * 4)
        self._delivery: asyncio.Queue[list[_Stored]] = asyncio.Queue(64)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="switchboard.writer"),
            asyncio.create_task(self._deliver_loop(), name="switchboard.delivery"),
        ]

    async def close(self) -> None:
        """Stop; every sender waiting on this writer gets an answer."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

        # What was stored is acknowledged (it is safe); what was not fails,
        # and its sender resends it to another server with the same id.
        while not self._delivery.empty():
            _resolve(self._delivery.get_nowait())
        unstored = []
        while not self._queue.empty():
            unstored.append(self._queue.get_nowait())
        _fail(unstored, StoreError("server shutting down"))

    async def submit(self, message: NewMessage) -> StoredMessage:
        """Store ``message`` (or find its earlier copy); return the record."""
        return await (await self.enqueue(message))

    async def enqueue(self, message: NewMessage) -> asyncio.Future[StoredMessage]:
        """Queue ``message``; the future resolves once it is stored and sent.

        Returns as soon as there is room in the queue, so one connection's
        messages are queued (and numbered) in the order it sent them while
        its next frames are already being read.
        """
        future: asyncio.Future[StoredMessage] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put((message, future))
        return future

    async def _write_loop(self) -> None:
        while True:
            # Wait for one message, then take whatever queued up meanwhile:
            # alone when idle, in a full batch under load.
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())

            try:
                stored = await self._write(batch)
            except asyncio.CancelledError:
                # Closing mid-transaction: it may or may not have committed,
                # and a resend finds out without storing anything twice.
                _fail(batch, StoreError("server shutting down"))
                raise
            except Exception as exc:
                # A bug must cost this batch, never the writer: without it
                # every later send on this server would wait forever.
                logger.exception("storing %d messages failed", len(batch))
                _fail(batch, exc)
                continue

            # Waiting here when delivery lags slows the writer down too,
            # rather than letting stored batches pile up in memory.
            if stored:
                try:
                    await self._delivery.put(stored)
                except asyncio.CancelledError:
                    _resolve(stored)  # stored: safe to acknowledge
                    raise

    async def _write(self, batch: list[_Item]) -> list[_Stored]:
        try:
            records = await self._store.append([message for message, _ in batch])
        except (NotFound, InvalidInput) as exc:
            # One message the database refuses (a conversation deleted
            # meanwhile, a value it cannot store) must not cost the others:
            # store them one by one, and fail only the bad one.
            if len(batch) == 1:
                _fail(batch, exc)
                return []
            return [r for item in batch for r in await self._write([item])]
        except StoreError as exc:
            logger.warning("storing %d messages failed: %s", len(batch), exc)
            _fail(batch, exc)
            return []
        return [
            (record, future) for (_, future), record in zip(batch, records, strict=True)
        ]

    async def _deliver_loop(self) -> None:
        while True:
            stored = await self._delivery.get()
            records = [record for record, _ in stored]
            try:
                # Bounded: every ack of this server waits on this call, so
                # a delivery stuck on a backend must give up in time.
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    await self._on_stored(records)
            except Exception:
                # Delivery is best effort: clients fill any gap by seq on
                # their next resume, so one failure must not stop the loop.
                # The messages are stored, so they are acknowledged anyway.
                logger.exception("delivering %d messages failed", len(stored))
            finally:
                _resolve(stored)


def _resolve(stored: list[_Stored]) -> None:
    # A sender that gave up (its connection closed) left a cancelled
    # future; its message is stored and delivered all the same.
    for record, future in stored:
        if not future.done():
            future.set_result(record)


def _fail(batch: list[_Item], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
