"""The backplane contract, run against every implementation."""

from __future__ import annotations

import logging

import pytest

from switchboard.errors import BackplaneError
from tests.backplane.conftest import BackplaneFactory, Recorder


async def test_start_resyncs_once_before_turning_ready(
    make_backplane: BackplaneFactory,
) -> None:
    backplane = await make_backplane()
    server = Recorder()
    assert not backplane.ready

    await server.start(backplane, "s1")

    assert backplane.ready
    assert server.resyncs == 1
    assert server.ready_during_resync == [False]


async def test_delivery_to_this_server_reaches_on_delivery(
    make_backplane: BackplaneFactory,
) -> None:
    backplane = await make_backplane()
    server = Recorder()
    await server.start(backplane, "s1")

    await backplane.deliver("s1", b'{"type":"message"}')

    assert await server.next_delivery() == b'{"type":"message"}'
    assert server.statuses.empty()


async def test_delivery_to_another_server_does_not_reach_this_one(
    make_backplane: BackplaneFactory,
) -> None:
    backplane = await make_backplane()
    server = Recorder()
    await server.start(backplane, "s1")

    await backplane.deliver("s2", b"for s2")
    # Published after it on the same connection: when this one is here, the
    # first one would have been too.
    await backplane.deliver("s1", b"for s1")

    assert await server.next_delivery() == b"for s1"
    assert server.deliveries.empty()


async def test_status_reaches_the_sender(make_backplane: BackplaneFactory) -> None:
    backplane = await make_backplane()
    server = Recorder()
    await server.start(backplane, "s1")

    await backplane.publish_status(b'{"agent":7,"status":"away"}')

    assert await server.next_status() == b'{"agent":7,"status":"away"}'
    assert server.deliveries.empty()


async def test_payloads_arrive_in_the_order_they_were_published(
    make_backplane: BackplaneFactory,
) -> None:
    backplane = await make_backplane()
    server = Recorder()
    await server.start(backplane, "s1")

    for n in range(100):
        await backplane.deliver("s1", str(n).encode())

    assert [await server.next_delivery() for _ in range(100)] == [
        str(n).encode() for n in range(100)
    ]


async def test_payload_over_the_limit_is_refused_not_truncated(
    make_backplane: BackplaneFactory,
) -> None:
    backplane = await make_backplane(max_payload=1024)
    server = Recorder()
    await server.start(backplane, "s1")

    with pytest.raises(BackplaneError, match="exceeds"):
        await backplane.deliver("s1", b"x" * 1025)
    with pytest.raises(BackplaneError, match="exceeds"):
        await backplane.publish_status(b"x" * 1025)

    await backplane.deliver("s1", b"x" * 1024)
    assert await server.next_delivery() == b"x" * 1024


async def test_failing_handler_does_not_stop_later_deliveries(
    make_backplane: BackplaneFactory, caplog: pytest.LogCaptureFixture
) -> None:
    backplane = await make_backplane()
    server = Recorder()
    received: list[bytes] = []

    async def on_delivery(payload: bytes) -> None:
        if payload == b"poison":
            raise ValueError("cannot decode")
        received.append(payload)
        await server.deliveries.put(payload)

    server.backplane = backplane
    await backplane.start("s1", on_delivery, server.on_status, server.on_resync)

    with caplog.at_level(logging.ERROR, logger="switchboard.backplane"):
        await backplane.deliver("s1", b"poison")
        await backplane.deliver("s1", b"fine")
        assert await server.next_delivery() == b"fine"

    assert received == [b"fine"]
    assert "backplane handler failed" in caplog.text
    assert backplane.ready


async def test_closed_backplane_is_not_ready(make_backplane: BackplaneFactory) -> None:
    backplane = await make_backplane()
    await Recorder().start(backplane, "s1")

    await backplane.close()

    assert not backplane.ready
