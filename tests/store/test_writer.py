"""The message writer: batches, order, and acks that follow delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from switchboard.chat import writer as writer_module
from switchboard.chat.writer import MessageWriter
from switchboard.errors import NotFound, StoreError
from switchboard.store import NewMessage, StoredMessage
from switchboard.store.sql import SqlStore


class Delivery:
    """An ``on_stored`` that records batches and can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self, stored: Sequence[StoredMessage]) -> None:
        await self.gate.wait()
        self.batches.append([record.seq for record in stored])
        if self.fail:
            raise RuntimeError("delivery broke")


@pytest.fixture
def delivery() -> Delivery:
    return Delivery()


@pytest.fixture
async def writer(store: SqlStore, delivery: Delivery) -> AsyncIterator[MessageWriter]:
    writer = MessageWriter(store, delivery, batch_size=50)
    writer.start()
    try:
        yield writer
    finally:
        await writer.close()


async def conversation(store: SqlStore) -> int:
    customer = await store.create_visitor("Visitor", "")
    return (await store.create_conversation(customer.id)).id


def message(conv: int, n: int) -> NewMessage:
    return NewMessage(conv, f"c{n}", "c:1", "text", f"m{n}", None)


async def test_the_ack_waits_for_delivery(
    store: SqlStore, writer: MessageWriter, delivery: Delivery
) -> None:
    conv = await conversation(store)
    delivery.gate.clear()
    future = await writer.enqueue(message(conv, 1))

    # Stored, but not yet handed on: the sender must not hear of it yet.
    async with asyncio.timeout(5):
        while not await store.messages(conv):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert not future.done()

    delivery.gate.set()
    async with asyncio.timeout(5):
        assert (await future).seq == 1
    assert delivery.batches == [[1]]


async def test_messages_are_numbered_and_delivered_in_the_order_queued(
    store: SqlStore, writer: MessageWriter, delivery: Delivery
) -> None:
    conv = await conversation(store)
    futures = [await writer.enqueue(message(conv, n)) for n in range(120)]
    async with asyncio.timeout(10):
        records = await asyncio.gather(*futures)

    assert [record.seq for record in records] == list(range(1, 121))
    delivered = [seq for batch in delivery.batches for seq in batch]
    assert delivered == list(range(1, 121))
    # Under a burst the writer batches: fewer deliveries than messages.
    assert len(delivery.batches) < 120


async def test_a_failed_delivery_still_acks_the_stored_messages(
    store: SqlStore, writer: MessageWriter, delivery: Delivery
) -> None:
    conv = await conversation(store)
    delivery.fail = True
    async with asyncio.timeout(5):
        first = await writer.submit(message(conv, 1))
    delivery.fail = False
    async with asyncio.timeout(5):
        second = await writer.submit(message(conv, 2))
    assert (first.seq, second.seq) == (1, 2)
    assert delivery.batches == [[1], [2]]


async def test_one_refused_message_fails_alone(
    store: SqlStore, writer: MessageWriter, delivery: Delivery
) -> None:
    conv = await conversation(store)
    delivery.gate.clear()
    good = await writer.enqueue(message(conv, 1))
    bad = await writer.enqueue(message(conv + 1000, 2))
    also_good = await writer.enqueue(message(conv, 3))
    delivery.gate.set()

    async with asyncio.timeout(5):
        assert (await good).seq == 1
        with pytest.raises(NotFound):
            await bad
        assert (await also_good).seq == 2


async def test_a_stuck_delivery_gives_up_and_the_ack_goes_out(
    store: SqlStore, writer: MessageWriter, delivery: Delivery, monkeypatch: Any
) -> None:
    monkeypatch.setattr(writer_module, "DELIVERY_TIMEOUT", 0.2)
    conv = await conversation(store)
    delivery.gate.clear()  # never opened: the delivery hangs

    async with asyncio.timeout(10):
        first = await writer.submit(message(conv, 1))
        second = await writer.submit(message(conv, 2))
    assert (first.seq, second.seq) == (1, 2)


async def test_closing_answers_every_waiting_sender(
    store: SqlStore, delivery: Delivery
) -> None:
    writer = MessageWriter(store, delivery, batch_size=1)
    writer.start()
    conv = await conversation(store)
    delivery.gate.clear()  # the first delivery hangs, and everything queues

    # One message in delivery, 64 stored batches waiting for it, one more
    # held by the writer, four unstored in its queue: then senders block.
    futures: list[asyncio.Future[StoredMessage]] = []

    async def send_all() -> None:
        for n in range(80):
            futures.append(await writer.enqueue(message(conv, n)))

    sender = asyncio.create_task(send_all())
    async with asyncio.timeout(20):
        while len(futures) < 70:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await writer.close()
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender

    assert len(futures) == 70
    assert all(future.done() for future in futures)
    acked = [f.result().seq for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    # What was stored is acknowledged; the rest fails, to be resent.
    assert acked == list(range(1, 67))
    assert len(failed) == 4
    assert all(isinstance(exc, StoreError) for exc in failed)
    assert [m.seq for m in await store.messages(conv)] == acked
