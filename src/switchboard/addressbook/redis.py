"""The address book in Redis, shared by every app server.

Layout, with ``prefix`` (``sb:`` by default) in front of every key::

    {prefix}addr:{<user>}      sorted set: member = address,
                               score = expiry in Unix ms on Redis's clock
    {prefix}server:{<id>}      a token while app server <id> is alive (PX TTL)

The braces are Redis Cluster hash tags: every key of one user hashes on the
user id alone, so a user's keys stay in one slot whatever the prefix. A
sorted set also carries a key TTL equal to its highest score, so the set of
a user who never comes back vanishes by itself.

Time is Redis's, never the app server's: the Lua scripts read ``TIME``
themselves. A refresh is a plain pipeline, which cannot read ``TIME`` before
writing, so it computes scores from an estimate of Redis's clock: an offset
to our monotonic clock, measured at :meth:`RedisAddressBook.start` and again
by the ``TIME`` at the head of every refresh. Wall clocks of app servers
never matter, and an estimate off by a round trip only moves expiries by
that much.

:meth:`RedisAddressBook.lookup` is one Lua script per call, for all users: it
drops expired addresses, reads the rest, checks the liveness key of each
distinct server once, and removes the addresses of servers that are gone.
Finding liveness keys from addresses means the script touches keys it was
not handed in ``KEYS``, in several slots. A single Redis (with or without
replicas and Sentinel) allows that, and a single Redis is what this class
talks to. Redis Cluster refuses it: a cluster variant would run the prune
and range per slot and check liveness keys in a second round trip. The
other calls touch one user's key at a time and are cluster-safe as they are.

Should a server's liveness key lapse (an event loop too slow to refresh in
time, an eviction, a Redis restart), the next lookup of any server removes
that server's addresses, and a refresh, which only updates addresses still
present, cannot bring them back. So each refresh writes a new random token
into the liveness key with ``SET ... GET`` (Redis 6.2 or later) and checks
that the value it replaced is the token it wrote last. Finding nothing
there, or something else, means that the key lapsed (or may have), and
:meth:`RedisAddressBook.refresh` returns True for the caller to add its
addresses again with :meth:`RedisAddressBook.add_many`.

Errors of redis-py are translated into :class:`~switchboard.errors.
AddressBookError`. Calls have socket timeouts and retry transient connection
errors with jittered exponential backoff. Every call is idempotent, so a
retry after a lost reply does no harm, with one blind spot: if the reply to
an add that dropped addresses over the cap is lost, the retry reports none
dropped, and those connections learn of it only when they reconnect. (A
refresh retried after a lost reply finds its own token in the liveness key,
which it reports as a lapse: adding the addresses again costs little.) A
:class:`~switchboard.breaker.Breaker` makes calls fail fast while Redis
keeps failing.

Logging (``switchboard.addressbook``): WARNING when the breaker opens
("degraded"), INFO when it closes ("recovered"), when
:meth:`RedisAddressBook.start` cannot announce the server or
:meth:`RedisAddressBook.close` cannot withdraw it, and when a refresh finds
that this server's liveness lapsed.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoScriptError, RedisError

from ..breaker import Breaker, BreakerState
from ..errors import AddressBookError

__all__ = ["RedisAddressBook"]

logger = logging.getLogger("switchboard.addressbook")

T = TypeVar("T")

# Both scripts compute "now" the same way: Unix ms on the Redis server.
# An address whose expiry equals "now" is already expired.

# KEYS[1] is a user's key; ARGV is the TTL in ms, the cap, then the
# addresses to add, without repeats.
ADD_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local new = {}
for i = 3, #ARGV do
    redis.call('ZADD', key, now + ttl, ARGV[i])
    new[ARGV[i]] = true
end

-- Over the cap, drop the soonest-expiring addresses, but not the ones
-- just added: their connections are about to be used. Reading as many
-- extra members as were added leaves enough others to choose from. Only
-- when the new addresses alone are too many do the first of them go.
local dropped = {}
local excess = redis.call('ZCARD', key) - cap
if excess > 0 then
    local added = #ARGV - 2
    for _, old in ipairs(redis.call('ZRANGE', key, 0, excess + added - 1)) do
        if not new[old] and #dropped < excess then
            dropped[#dropped + 1] = old
        end
    end
    for i = 3, #ARGV do
        if #dropped == excess then
            break
        end
        dropped[#dropped + 1] = ARGV[i]
    end
    redis.call('ZREM', key, unpack(dropped))
end

local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return dropped
"""

LOOKUP_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local server_key = ARGV[1]
local alive = {}
local found = {}

for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local live, dead = {}, {}
    for _, address in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        local server = string.match(address, '^[^/]*')
        if alive[server] == nil then
            alive[server] = redis.call('EXISTS', server_key .. server .. '}') == 1
        end
        if alive[server] then
            live[#live + 1] = address
        else
            dead[#dead + 1] = address
        end
    end

    -- unpack() is bounded by Lua's stack; a set only grows this large if
    -- something bypassed the cap, but a lookup must still clean it up.
    for first = 1, #dead, 500 do
        redis.call('ZREM', key, unpack(dead, first, math.min(first + 499, #dead)))
    end
    found[i] = live
end
return found
"""


def _ms(seconds: float) -> int:
    """Convert a duration to whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))


class RedisAddressBook:
    """The address book of a cluster of app servers, in one Redis.

    ``max_per_user`` caps the addresses of one user (the oldest go first).
    ``timeout`` bounds each socket operation, ``retries`` the retries of a
    transient connection error, ``max_connections`` the connection pool (a
    caller waits up to ``timeout`` for a free connection). The breaker opens
    after ``breaker_threshold`` consecutive failures for ``breaker_cooldown``
    seconds.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        max_per_user: int = 20,
        prefix: str = "sb:",
        timeout: float = 1.0,
        retries: int = 2,
        max_connections: int = 32,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
    ) -> None:
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        # A brace in the prefix would become the hash tag of every key and
        # put the whole address book in one slot.
        if "{" in prefix or "}" in prefix:
            raise ValueError("prefix must not contain braces")
        self.max_per_user = max_per_user
        self.prefix = prefix

        pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries),
            decode_responses=True,
        )
        self._redis = Redis.from_pool(pool)
        self._add = self._redis.register_script(ADD_SCRIPT)
        self._lookup = self._redis.register_script(LOOKUP_SCRIPT)
        self._breaker = Breaker(
            "address book",
            threshold=breaker_threshold,
            cooldown=breaker_cooldown,
            logger=logger,
        )

        self._server_key: str | None = None
        self._server_ttl_ms = 0
        # The token this server last wrote into its liveness key, once known
        # to be there.
        self._token: str | None = None
        # Redis's clock in Unix ms minus our monotonic clock in ms, once known.
        self._clock_offset_ms: float | None = None

    @property
    def ready(self) -> bool:
        """False while the breaker refuses calls because Redis keeps failing."""
        return self._breaker.state is BreakerState.CLOSED

    async def start(self, server_id: str, server_ttl: float) -> None:
        """Announce this server, or leave that to the first refresh.

        A server must come up even while Redis is away (the backplane does
        the same), so an unreachable Redis is logged here, not raised: every
        refresh sets the liveness key again, and :attr:`ready` and the
        errors of the other calls tell the health check.
        """
        server_key = self._server_key = f"{self.prefix}server:{{{server_id}}}"
        self._server_ttl_ms = _ms(server_ttl)

        async def announce() -> None:
            token = secrets.token_hex(8)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.set(server_key, token, px=self._server_ttl_ms)
                sent = time.monotonic()
                replies = await pipe.execute()
            self._sync_clock(replies[0], sent)
            self._token = token

        try:
            await self._call("start", announce)
        except AddressBookError as exc:
            logger.info("address book unavailable at start: %s", exc)

    async def close(self) -> None:
        server_key, self._server_key = self._server_key, None
        try:
            if server_key is not None:
                await self._call("close", lambda: self._redis.delete(server_key))
        except AddressBookError as exc:
            # Nothing to do about it: the liveness key expires on its own
            # within the server TTL, and then lookups drop our addresses.
            logger.info("address book could not withdraw this server: %s", exc)
        finally:
            await self._redis.aclose()

    async def add(self, user: str, address: str, ttl: float) -> list[str]:
        keys = [self._user_key(user)]
        args: list[str | int] = [_ms(ttl), self.max_per_user, address]
        dropped = await self._call("add", lambda: self._add(keys, args))
        return list(dropped)

    async def add_many(
        self, entries: Mapping[str, Iterable[str]], ttl: float
    ) -> list[str]:
        """Add many addresses in one round trip: one script call per user."""
        batch = {user: list(dict.fromkeys(found)) for user, found in entries.items()}
        args: dict[str, list[str | int]] = {
            self._user_key(user): [_ms(ttl), self.max_per_user, *addresses]
            for user, addresses in batch.items()
            if addresses
        }
        if not args:
            return []

        async def push() -> list[list[str]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, values in args.items():
                    pipe.evalsha(self._add.sha, 1, key, *values)
                replies: list[list[str]] = await pipe.execute()
                return replies

        async def push_or_load() -> list[list[str]]:
            # A pipeline does not load scripts by itself (redis-py's own way
            # costs a round trip more on every call), and after a restart
            # Redis has forgotten them. Nothing ran then, so run it again.
            try:
                return await push()
            except NoScriptError:
                await self._redis.script_load(ADD_SCRIPT)
                return await push()

        replies = await self._call("add_many", push_or_load)
        return [address for dropped in replies for address in dropped]

    async def remove(self, user: str, address: str) -> None:
        key = self._user_key(user)
        await self._call("remove", lambda: self._redis.zrem(key, address))

    async def refresh(self, live: Mapping[str, Iterable[str]], ttl: float) -> bool:
        """See :meth:`AddressBook.refresh`.

        Also True when the liveness key held something else than what
        this server knows it wrote last, such as the token of a refresh
        whose reply was lost, or when start could not reach Redis: whether
        the key lapsed is unknown then, and adding again is harmless.
        """
        server_key = self._server_key
        if server_key is None:
            raise RuntimeError("refresh before start")
        batch = {user: list(addresses) for user, addresses in live.items()}
        ttl_ms = _ms(ttl)
        token = secrets.token_hex(8)

        async def push() -> bool:
            # Without any reading of Redis's clock yet (start could not reach
            # Redis), scores would be meaningless: read it first, this once.
            offset = self._clock_offset_ms
            if offset is None:
                sent = time.monotonic()
                offset = self._sync_clock(await self._redis.time(), sent)

            async with self._redis.pipeline(transaction=False) as pipe:
                # Re-measure Redis's clock for the next refresh; this one
                # goes by the previous estimate.
                pipe.time()
                now = round(time.monotonic() * 1000 + offset)
                expiry = now + ttl_ms

                # Drop what expired first, so that XX cannot revive an
                # address that no read happened to prune yet; GT keeps a
                # later expiry set by another caller.
                for user, addresses in batch.items():
                    if not addresses:
                        continue
                    key = self._user_key(user)
                    pipe.zremrangebyscore(key, "-inf", now)
                    pipe.zadd(key, dict.fromkeys(addresses, expiry), xx=True, gt=True)
                    pipe.pexpireat(key, expiry, gt=True)
                pipe.set(server_key, token, px=self._server_ttl_ms, get=True)

                sent = time.monotonic()
                replies = await pipe.execute()
            self._sync_clock(replies[0], sent)

            previous, self._token = self._token, token
            return previous is None or replies[-1] != previous

        lapsed = await self._call("refresh", push)
        if lapsed:
            logger.info("liveness of this server lapsed: %s", server_key)
        return lapsed

    async def lookup(self, users: Sequence[str]) -> dict[str, list[str]]:
        distinct = list(dict.fromkeys(users))
        if not distinct:
            return {}
        keys = [self._user_key(user) for user in distinct]
        args = [f"{self.prefix}server:{{"]

        found = await self._call("lookup", lambda: self._lookup(keys, args))
        return {
            user: list(addresses)
            for user, addresses in zip(distinct, found, strict=True)
        }

    def _user_key(self, user: str) -> str:
        return f"{self.prefix}addr:{{{user}}}"

    def _sync_clock(self, reply: tuple[int, int], sent: float) -> float:
        """Store and return the offset of Redis's clock to ours, in ms."""
        # The TIME reply was produced somewhere between sending and now;
        # the midpoint is the best guess, off by at most half a round trip.
        seconds, microseconds = reply
        redis_ms = seconds * 1000 + microseconds / 1000
        local_ms = (sent + time.monotonic()) / 2 * 1000
        self._clock_offset_ms = redis_ms - local_ms
        return self._clock_offset_ms

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` behind the breaker, translating redis-py's errors."""
        if not self._breaker.allow():
            raise AddressBookError(f"address book unavailable, {what} not attempted")

        try:
            result = await call()
        except RedisError as exc:
            self._breaker.record_failure()
            raise AddressBookError(f"address book {what} failed: {exc}") from exc

        self._breaker.record_success()
        return result
