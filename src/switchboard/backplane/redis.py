"""The backplane over Redis pub/sub, for a cluster of app servers.

Channels, with ``prefix`` (``sb:`` by default) in front::

    {prefix}deliver:<server id>    deliveries to one server
    {prefix}status                 status events, heard by every server

Publishing and subscribing use separate connections. Publishes go through a
small pool, behind socket timeouts, a retry of connection errors and a
:class:`~switchboard.breaker.Breaker`. Only connection errors are retried: a
publish whose reply timed out may have gone through, and sending it again
would deliver it twice.

The subscriber is one connection read by one task. Pub/sub has no memory: a
message published while the subscriber is away is lost for good. So the
task treats any doubt about its connection as a loss: a read error, a
server that closed the connection (a restart, ``CLIENT KILL``, the pubsub
output buffer limit) or a connection gone silent, which the task detects by
sending a PING after ``ping_interval`` seconds without traffic and expecting
the pong within ``ping_timeout``. On a loss, :attr:`RedisBackplane.ready`
turns false, the task subscribes again on a fresh connection with full-jitter
exponential backoff, awaits ``on_resync`` so the server can reload what it
may have missed, and only then turns ready again.

Logging (``switchboard.backplane``): INFO when the subscriber is lost
("degraded") and back ("recovered"), and when the publish breaker opens and
closes; ERROR with a traceback when a handler or ``on_resync`` raises, since
no caller is there to handle it; DEBUG for state changes and each failed
attempt to subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..breaker import Breaker
from ..errors import BackplaneError
from . import Handler

__all__ = ["BackplaneState", "RedisBackplane"]

logger = logging.getLogger("switchboard.backplane")


class BackplaneState(enum.Enum):
    """Where the subscriber stands."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    READY = "ready"
    DEGRADED = "degraded"


async def _nothing() -> None:
    pass


class SubscriberLost(Exception):
    """The subscriber connection can no longer be trusted."""


class RedisBackplane:
    """Backplane over Redis pub/sub.

    ``timeout`` bounds socket operations, the wait for a pooled publish
    connection and the wait for subscription replies. Resubscription waits
    a random time up to ``min(backoff_cap, backoff_base * 2**attempt)``.
    The publish breaker opens after ``breaker_threshold`` consecutive
    failures for ``breaker_cooldown`` seconds.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "sb:",
        max_payload: int = 256 * 1024,
        timeout: float = 1.0,
        retries: int = 2,
        max_connections: int = 16,
        ping_interval: float = 5.0,
        ping_timeout: float = 2.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 10.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
    ) -> None:
        self.prefix = prefix
        self.max_payload = max_payload
        self.timeout = timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

        pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(
                ExponentialWithJitterBackoff(cap=0.5, base=0.05),
                retries,
                supported_errors=(RedisConnectionError,),
            ),
        )
        self._redis = Redis.from_pool(pool)
        self._breaker = Breaker(
            "backplane publishing",
            threshold=breaker_threshold,
            cooldown=breaker_cooldown,
            logger=logger,
        )

        # The subscriber's pool is only a factory of connections configured
        # from the URL; the task makes a fresh connection for every attempt
        # and never retries inside redis-py, so that every loss reaches it.
        self._subscriber_pool = ConnectionPool.from_url(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )

        self._state = BackplaneState.STOPPED
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._channels: dict[bytes, Handler] = {}
        self._on_resync: Callable[[], Awaitable[None]] = _nothing

    @property
    def ready(self) -> bool:
        return self._state is BackplaneState.READY

    @property
    def state(self) -> BackplaneState:
        return self._state

    async def start(
        self,
        server_id: str,
        on_delivery: Handler,
        on_status: Handler,
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        """Subscribe, or keep trying in the background if Redis is down.

        Returns after the first attempt either way; :attr:`ready` tells
        which. A server must come up even while Redis is away.
        """
        if self._task is not None:
            raise RuntimeError("backplane already started")
        self._channels = {
            self._deliver_channel(server_id).encode(): on_delivery,
            self._status_channel().encode(): on_status,
        }
        self._on_resync = on_resync

        self._started.clear()
        self._set_state(BackplaneState.CONNECTING)
        self._task = asyncio.create_task(self._run(), name="backplane subscriber")
        await self._started.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(BackplaneState.STOPPED)
        await self._redis.aclose()
        await self._subscriber_pool.aclose()

    async def deliver(self, server_id: str, payload: bytes) -> None:
        await self._publish(self._deliver_channel(server_id), payload)

    async def publish_status(self, payload: bytes) -> None:
        await self._publish(self._status_channel(), payload)

    def _deliver_channel(self, server_id: str) -> str:
        return f"{self.prefix}deliver:{server_id}"

    def _status_channel(self) -> str:
        return f"{self.prefix}status"

    # Publishing.

    async def _publish(self, channel: str, payload: bytes) -> None:
        # Truncating would hand a broken frame to every receiver.
        if len(payload) > self.max_payload:
            raise BackplaneError(
                f"payload of {len(payload)} bytes exceeds {self.max_payload} bytes"
            )
        if not self._breaker.allow():
            raise BackplaneError("backplane unavailable, publish not attempted")

        try:
            await self._redis.publish(channel, payload)
        except RedisError as exc:
            self._breaker.record_failure()
            raise BackplaneError(f"publish to {channel} failed: {exc}") from exc
        self._breaker.record_success()

    # Subscribing.

    async def _run(self) -> None:
        failures = 0
        while True:
            connection: AbstractConnection | None = None
            try:
                connection, early = await self._subscribe()
                await self._resync()
                self._set_state(BackplaneState.READY)
                self._started.set()
                failures = 0

                # Messages that arrived between two subscription replies come
                # after the resync, in the order Redis sent them.
                for message in early:
                    await self._dispatch(message)
                await self._listen(connection)
            except (RedisError, OSError, SubscriberLost) as exc:
                reason = str(exc) or type(exc).__name__
            except Exception as exc:
                # A bug here must not end the task: the server would never
                # hear from the other servers again.
                logger.exception("backplane subscriber failed")
                reason = type(exc).__name__
            finally:
                if connection is not None:
                    await connection.disconnect(nowait=True)

            self._set_state(BackplaneState.DEGRADED, reason)
            self._started.set()

            # Full jitter spreads the servers of a cluster over the whole
            # window, so a restarted Redis is not hit by all of them at once.
            failures += 1
            window = min(self.backoff_cap, self.backoff_base * 2**failures)
            delay = random.uniform(0, window)
            logger.debug("backplane resubscribing in %.2f s (%s)", delay, reason)
            await asyncio.sleep(delay)

    async def _subscribe(self) -> tuple[AbstractConnection, list[Any]]:
        """Open a connection and subscribe to both channels.

        Returns the connection and any message that came in before the last
        subscription reply.
        """
        pool = self._subscriber_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        try:
            # redis-py leaves Connection.connect unannotated.
            await connection.connect()  # type: ignore[no-untyped-call]
            await connection.send_command("SUBSCRIBE", *self._channels)

            pending = set(self._channels)
            early: list[Any] = []
            while pending:
                response = await self._read(connection, self.timeout)
                if response is None:
                    raise SubscriberLost("no reply to SUBSCRIBE")
                if response[0] == b"subscribe":
                    pending.discard(response[1])
                else:
                    early.append(response)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        return connection, early

    async def _resync(self) -> None:
        try:
            await self._on_resync()
        except Exception as exc:
            # Ready means "nothing missed"; without a resync that is not
            # true, so this counts as a failed subscription and is retried.
            logger.exception("backplane resync failed")
            raise SubscriberLost("resync failed") from exc

    async def _listen(self, connection: AbstractConnection) -> None:
        """Dispatch messages until the connection is lost or goes silent."""
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        ping_sent: float | None = None

        while True:
            now = loop.time()
            if ping_sent is None and now - last_heard >= self.ping_interval:
                await connection.send_command("PING")
                ping_sent = now
            if ping_sent is None:
                wait = last_heard + self.ping_interval - now
            else:
                wait = ping_sent + self.ping_timeout - now

            response = await self._read(connection, max(wait, 0.001))

            # Silence only counts when the read found nothing at all: a slow
            # handler delays reading the pong, not its arrival.
            now = loop.time()
            if response is None:
                if ping_sent is not None and now - ping_sent >= self.ping_timeout:
                    raise SubscriberLost(f"no pong within {self.ping_timeout} s")
                continue

            last_heard = now
            if response[0] == b"pong":
                ping_sent = None
            else:
                await self._dispatch(response)

    async def _read(self, connection: AbstractConnection, wait: float) -> Any:
        """Read one reply, or None when ``wait`` seconds pass first."""
        return await connection.read_response(
            timeout=wait, disconnect_on_error=False, push_request=True
        )

    async def _dispatch(self, response: Any) -> None:
        if response[0] != b"message":
            return
        handler = self._channels.get(response[1])
        if handler is None:
            return
        try:
            await handler(response[2])
        except Exception:
            # One bad payload must not stop the delivery of the next ones.
            logger.exception("backplane handler failed")

    def _set_state(self, state: BackplaneState, reason: str = "") -> None:
        previous, self._state = self._state, state
        if previous is state:
            return
        logger.debug("backplane %s -> %s", previous.value, state.value)
        if state is BackplaneState.DEGRADED:
            logger.warning("backplane degraded: %s", reason)
        elif state is BackplaneState.READY and previous is BackplaneState.DEGRADED:
            logger.info("backplane recovered")
