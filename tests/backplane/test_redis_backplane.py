"""What only the Redis backplane does: several servers, losses, outages.

Tests that kill, pause or restart Redis do it to a server of their own.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio
from redis.exceptions import RedisError

from switchboard.errors import BackplaneError
from tests.backplane.conftest import Recorder, RedisBackplaneFactory
from tests.backplane.support import UNIT, RedisProcess, eventually
from tests.conftest import free_port

# Several servers.


async def test_delivery_reaches_only_the_named_server(
    make_redis_backplane: RedisBackplaneFactory,
) -> None:
    servers = {name: Recorder() for name in ("s1", "s2", "s3")}
    for name, server in servers.items():
        await server.start(await make_redis_backplane(), name)
    sender = servers["s1"].backplane
    assert sender is not None

    await sender.deliver("s2", b"for s2")
    # The markers follow on the same connection: once they are in, the
    # delivery to s2 would have reached the others too.
    await sender.deliver("s1", b"marker")
    await sender.deliver("s3", b"marker")

    assert await servers["s2"].next_delivery() == b"for s2"
    assert await servers["s1"].next_delivery() == b"marker"
    assert await servers["s3"].next_delivery() == b"marker"
    assert all(server.deliveries.empty() for server in servers.values())


async def test_status_reaches_every_server_including_the_sender(
    make_redis_backplane: RedisBackplaneFactory,
) -> None:
    servers = [Recorder() for _ in range(3)]
    for n, server in enumerate(servers):
        await server.start(await make_redis_backplane(), f"s{n}")
    sender = servers[0].backplane
    assert sender is not None

    await sender.publish_status(b"agent 7 away")

    for server in servers:
        assert await server.next_status() == b"agent 7 away"


# Losing the subscriber.


async def test_backplane_resubscribes_after_its_connection_is_killed(
    make_redis_backplane: RedisBackplaneFactory,
    own_redis: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backplane = await make_redis_backplane(own_redis.url)
    server = Recorder()
    await server.start(backplane, "s1")
    admin = redis.asyncio.Redis.from_url(own_redis.url)

    with caplog.at_level(logging.INFO, logger="switchboard.backplane"):
        await admin.client_kill_filter(_type="pubsub")  # CLIENT KILL TYPE pubsub
        await eventually(lambda: server.resyncs == 2 and backplane.ready)
    await admin.aclose()

    # It was not ready while it resynced, and it hears messages again.
    assert server.ready_during_resync == [False, False]
    await backplane.deliver("s1", b"after the kill")
    assert await server.next_delivery() == b"after the kill"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("backplane degraded") for m in messages)
    assert "backplane recovered" in messages


async def test_backplane_notices_a_connection_gone_silent(
    make_redis_backplane: RedisBackplaneFactory, own_redis: RedisProcess
) -> None:
    backplane = await make_redis_backplane(
        own_redis.url, timeout=UNIT, ping_interval=UNIT, ping_timeout=2 * UNIT
    )
    server = Recorder()
    await server.start(backplane, "s1")

    # A frozen server keeps the TCP connection open and answers nothing,
    # like a half-open connection: only the missing pong gives it away.
    own_redis.pause()
    try:
        await eventually(lambda: not backplane.ready)
    finally:
        own_redis.resume()

    await eventually(lambda: backplane.ready)
    assert server.resyncs == 2
    await backplane.deliver("s1", b"after the silence")
    assert await server.next_delivery() == b"after the silence"


async def test_failed_resync_is_retried_before_turning_ready(
    make_redis_backplane: RedisBackplaneFactory, caplog: pytest.LogCaptureFixture
) -> None:
    backplane = await make_redis_backplane()
    server = Recorder()
    server.fail_resyncs = 1

    with caplog.at_level(logging.ERROR, logger="switchboard.backplane"):
        await server.start(backplane, "s1")
        assert not backplane.ready
        await eventually(lambda: backplane.ready)

    assert server.resyncs == 2
    assert "backplane resync failed" in caplog.text


# Redis away.


async def test_unreachable_redis_raises_backplane_errors_and_never_crashes(
    make_redis_backplane: RedisBackplaneFactory,
) -> None:
    backplane = await make_redis_backplane(
        f"redis://127.0.0.1:{free_port()}/0", breaker_threshold=100
    )
    server = Recorder()

    await server.start(backplane, "s1")  # returns, not ready

    assert not backplane.ready
    for publish in (backplane.deliver("s1", b"x"), backplane.publish_status(b"x")):
        with pytest.raises(BackplaneError) as caught:
            await publish
        assert isinstance(caught.value.__cause__, RedisError)
    assert server.resyncs == 0


async def test_publish_breaker_fails_fast_after_repeated_failures(
    make_redis_backplane: RedisBackplaneFactory,
) -> None:
    backplane = await make_redis_backplane(
        f"redis://127.0.0.1:{free_port()}/0",
        breaker_threshold=2,
        breaker_cooldown=50 * UNIT,
    )
    for _ in range(2):
        with pytest.raises(BackplaneError):
            await backplane.publish_status(b"x")

    with pytest.raises(BackplaneError, match="not attempted") as caught:
        await backplane.publish_status(b"x")
    assert caught.value.__cause__ is None


async def test_backplane_started_while_redis_is_down_comes_up_with_it(
    make_redis_backplane: RedisBackplaneFactory, own_redis: RedisProcess
) -> None:
    await own_redis.stop()
    backplane = await make_redis_backplane(own_redis.url)
    server = Recorder()

    await server.start(backplane, "s1")
    assert not backplane.ready

    await own_redis.start()
    await eventually(lambda: backplane.ready)

    assert server.resyncs == 1
    await backplane.deliver("s1", b"hello")
    assert await server.next_delivery() == b"hello"


async def test_backplane_recovers_after_redis_restarts(
    make_redis_backplane: RedisBackplaneFactory, own_redis: RedisProcess
) -> None:
    backplane = await make_redis_backplane(
        own_redis.url, timeout=UNIT, breaker_threshold=2, breaker_cooldown=UNIT
    )
    server = Recorder()
    await server.start(backplane, "s1")

    await own_redis.stop()
    await eventually(lambda: not backplane.ready)
    with pytest.raises(BackplaneError):
        await backplane.deliver("s1", b"lost")

    await own_redis.start()
    await eventually(lambda: backplane.ready)
    assert server.resyncs == 2

    # The publish breaker lets a trial through after its cool-down.
    await asyncio.sleep(2 * UNIT)
    await backplane.deliver("s1", b"back")
    assert await server.next_delivery() == b"back"
