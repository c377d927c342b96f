"""What only the Redis address book does: server liveness, batching, outages.

Tests that count commands or kill Redis use a server of their own, since
``INFO commandstats`` counts every client of a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import RedisError

from switchboard.addressbook.redis import RedisAddressBook
from switchboard.errors import AddressBookError
from tests.addressbook.conftest import RedisBookFactory
from tests.backplane.support import UNIT, RedisProcess, eventually
from tests.conftest import free_port

TTL = 50 * UNIT


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def own_client(own_redis: RedisProcess) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    await client.aclose()


async def command_calls(client: redis.asyncio.Redis) -> dict[str, int]:
    """Return how often the server ran each command, by command name."""
    stats = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
    }


def difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two readings, without the INFO that read them."""
    delta = {name: after[name] - before.get(name, 0) for name in after}
    delta["info"] -= 1
    return {name: calls for name, calls in delta.items() if calls}


# Layout.


async def test_keys_carry_the_user_and_server_as_hash_tags(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    book = await make_redis_book("s1", server_ttl=TTL)

    await book.add("alice", "s1/c1", TTL)

    assert await client.zrange(f"{prefix}addr:{{alice}}", 0, -1) == ["s1/c1"]
    assert 0 < await client.pttl(f"{prefix}server:{{s1}}") <= TTL * 1000


async def test_prefix_with_braces_is_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisAddressBook(redis_url, prefix="{sb}:")


async def test_key_of_an_abandoned_user_expires_with_its_last_address(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    book = await make_redis_book()
    key = f"{prefix}addr:{{alice}}"

    await book.add("alice", "s1/c1", UNIT)
    assert 0 < await client.pttl(key) <= UNIT * 1000

    await asyncio.sleep(3 * UNIT)
    assert await client.exists(key) == 0


async def test_refresh_pushes_the_key_expiry_forward_too(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    book = await make_redis_book()
    await book.add("alice", "s1/c1", UNIT)

    await book.refresh({"alice": ["s1/c1"]}, TTL)

    assert await client.pttl(f"{prefix}addr:{{alice}}") > 10 * UNIT * 1000


# Server liveness.


async def test_address_of_a_server_without_liveness_key_disappears_at_once(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    book = await make_redis_book("s1")
    await book.add("alice", "s1/c1", TTL)
    # s2 never started, as if it had died long ago.
    await book.add("alice", "s2/c1", TTL)

    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}
    assert await client.zrange(f"{prefix}addr:{{alice}}", 0, -1) == ["s1/c1"]


async def test_addresses_of_a_closed_server_disappear_from_other_servers(
    make_redis_book: RedisBookFactory,
) -> None:
    one = await make_redis_book("s1")
    two = await make_redis_book("s2")
    await two.add("alice", "s2/c1", TTL)
    assert await one.lookup(["alice"]) == {"alice": ["s2/c1"]}

    await two.close()

    assert await one.lookup(["alice"]) == {"alice": []}


async def test_addresses_disappear_when_their_server_stops_refreshing(
    make_redis_book: RedisBookFactory,
) -> None:
    one = await make_redis_book("s1")
    two = await make_redis_book("s2", server_ttl=UNIT)
    await two.add("alice", "s2/c1", TTL)

    await asyncio.sleep(3 * UNIT)

    assert await one.lookup(["alice"]) == {"alice": []}


async def test_refresh_keeps_the_server_alive(
    make_redis_book: RedisBookFactory,
) -> None:
    one = await make_redis_book("s1")
    two = await make_redis_book("s2", server_ttl=3 * UNIT)
    await two.add("alice", "s2/c1", TTL)

    for _ in range(6):
        await asyncio.sleep(UNIT)
        await two.refresh({"alice": ["s2/c1"]}, TTL)

    assert await one.lookup(["alice"]) == {"alice": ["s2/c1"]}


async def test_refresh_after_a_lapse_says_so_and_add_many_makes_users_reachable(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    one = await make_redis_book("s1")
    two = await make_redis_book("s2")
    live = {"alice": ["s2/c1"], "bob": ["s2/c2"]}
    await two.add_many(live, TTL)

    # s2's liveness key lapses once (a slow event loop, an eviction), and a
    # lookup on s1 meanwhile removes s2's addresses.
    await client.delete(f"{prefix}server:{{s2}}")
    assert await one.lookup(["alice", "bob"]) == {"alice": [], "bob": []}

    # The refresh alone cannot bring them back, but it tells s2 to.
    assert await two.refresh(live, TTL) is True
    assert await one.lookup(["alice", "bob"]) == {"alice": [], "bob": []}
    assert await two.add_many(live, TTL) == []

    assert await one.lookup(["alice", "bob"]) == {
        "alice": ["s2/c1"],
        "bob": ["s2/c2"],
    }
    assert await two.refresh(live, TTL) is False


async def test_refresh_finding_another_value_in_the_liveness_key_reports_a_lapse(
    make_redis_book: RedisBookFactory, client: redis.asyncio.Redis, prefix: str
) -> None:
    book = await make_redis_book("s1")

    # What a refresh whose reply was lost, then retried, would find there.
    await client.set(f"{prefix}server:{{s1}}", "not what s1 wrote last")

    assert await book.refresh({}, TTL) is True
    assert await book.refresh({}, TTL) is False


async def test_refresh_before_start_is_a_programming_error(
    make_redis_book: RedisBookFactory,
) -> None:
    book = await make_redis_book(start=False)

    with pytest.raises(RuntimeError):
        await book.refresh({}, TTL)


# Cost.


async def test_refreshing_1000_addresses_is_one_pipeline_without_per_address_calls(
    make_redis_book: RedisBookFactory,
    own_redis: RedisProcess,
    own_client: redis.asyncio.Redis,
) -> None:
    book = await make_redis_book(url=own_redis.url)
    live = {f"u{u}": [f"s1/c{u}-{c}" for c in range(10)] for u in range(100)}
    for user, addresses in live.items():
        for address in addresses:
            await book.add(user, address, TTL)

    before = await command_calls(own_client)
    await book.refresh(live, TTL)
    after = await command_calls(own_client)

    # Per user: prune, update every address at once, push the key expiry.
    # Per call: the clock reading and the liveness key. Nothing per address.
    assert difference(before, after) == {
        "zremrangebyscore": 100,
        "zadd": 100,
        "pexpireat": 100,
        "time": 1,
        "set": 1,
    }


async def test_lookup_of_1000_ghost_addresses_returns_nothing_and_removes_them(
    make_redis_book: RedisBookFactory,
    own_redis: RedisProcess,
    own_client: redis.asyncio.Redis,
    prefix: str,
) -> None:
    book = await make_redis_book("s1", url=own_redis.url)
    await book.lookup(["warm-up"])  # loads the script

    # 1,000 addresses on 20 servers that died without a word, for 100
    # users, with expiries far ahead: only liveness can catch them.
    users = [f"u{u}" for u in range(100)]
    far = 2**42
    for u, user in enumerate(users):
        ghosts = {f"dead{(u + c) % 20}/c{u}-{c}": far for c in range(10)}
        await own_client.zadd(f"{prefix}addr:{{{user}}}", ghosts)
    await own_client.zadd(f"{prefix}addr:{{u0}}", {"s1/alive": far})

    before = await command_calls(own_client)
    found = await book.lookup(users)
    after = await command_calls(own_client)

    assert found == {"u0": ["s1/alive"]} | {user: [] for user in users[1:]}
    keys = [f"{prefix}addr:{{{user}}}" for user in users[1:]]
    assert await own_client.exists(*keys) == 0

    # One script for all users; each distinct server checked once.
    calls = difference(before, after)
    assert calls["evalsha"] == 1
    assert calls["exists"] == 21


async def test_add_many_is_one_script_call_per_user_whatever_the_addresses(
    make_redis_book: RedisBookFactory,
    own_redis: RedisProcess,
    own_client: redis.asyncio.Redis,
) -> None:
    book = await make_redis_book(url=own_redis.url)
    await book.add("warm-up", "s1/c0", TTL)  # loads the script
    entries = {f"u{u}": [f"s1/c{u}-{c}" for c in range(10)] for u in range(100)}

    before = await command_calls(own_client)
    assert await book.add_many(entries, TTL) == []
    after = await command_calls(own_client)

    # One script call per user, sent in one pipeline without a SCRIPT
    # EXISTS ahead of it. (The commands the script runs count too.)
    calls = difference(before, after)
    assert calls["evalsha"] == 100
    assert [name for name in calls if name.startswith("script")] == []
    found = await book.lookup(list(entries))
    assert all(len(addresses) == 10 for addresses in found.values())


async def test_add_many_loads_the_script_when_redis_forgot_it(
    make_redis_book: RedisBookFactory,
    own_redis: RedisProcess,
    own_client: redis.asyncio.Redis,
) -> None:
    book = await make_redis_book(url=own_redis.url)
    await book.add("alice", "s1/c1", TTL)
    await own_client.script_flush()

    assert await book.add_many({"alice": ["s1/c2"], "bob": ["s1/c3"]}, TTL) == []

    found = await book.lookup(["alice", "bob"])
    assert sorted(found["alice"]) == ["s1/c1", "s1/c2"]
    assert found["bob"] == ["s1/c3"]


# Outages.


async def test_unreachable_redis_raises_address_book_errors(
    make_redis_book: RedisBookFactory,
) -> None:
    book = await make_redis_book(
        url=f"redis://127.0.0.1:{free_port()}/0", start=False, breaker_threshold=100
    )

    await book.start("s1", TTL)  # logs, so that the server still comes up

    calls = [
        book.refresh({"alice": ["s1/c1"]}, TTL),
        book.add("alice", "s1/c1", TTL),
        book.remove("alice", "s1/c1"),
        book.lookup(["alice"]),
    ]
    for call in calls:
        with pytest.raises(AddressBookError) as caught:
            await call
        assert isinstance(caught.value.__cause__, RedisError)

    await book.close()  # withdraws nothing, raises nothing


async def test_breaker_fails_fast_after_repeated_failures(
    make_redis_book: RedisBookFactory,
) -> None:
    book = await make_redis_book(
        url=f"redis://127.0.0.1:{free_port()}/0",
        start=False,
        breaker_threshold=2,
        breaker_cooldown=TTL,
    )
    for _ in range(2):
        with pytest.raises(AddressBookError):
            await book.lookup(["alice"])
    assert not book.ready

    with pytest.raises(AddressBookError, match="not attempted") as caught:
        await book.lookup(["alice"])
    assert caught.value.__cause__ is None


async def test_address_book_recovers_when_redis_comes_back(
    make_redis_book: RedisBookFactory, own_redis: RedisProcess
) -> None:
    book = await make_redis_book(
        url=own_redis.url,
        timeout=UNIT,
        breaker_threshold=2,
        breaker_cooldown=2 * UNIT,
    )
    await book.add("alice", "s1/c1", TTL)

    await own_redis.stop()
    for _ in range(3):
        with pytest.raises(AddressBookError):
            await book.lookup(["alice"])
    assert not book.ready

    # The restarted server is empty: the liveness key comes back with the
    # next refresh, which reports the lapse, the addresses with add_many.
    await own_redis.start()
    await asyncio.sleep(3 * UNIT)
    assert await book.refresh({"alice": ["s1/c1"]}, TTL) is True
    assert await book.lookup(["alice"]) == {"alice": []}
    await book.add_many({"alice": ["s1/c1"]}, TTL)

    assert book.ready
    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_server_started_while_redis_is_down_is_announced_by_refresh(
    make_redis_book: RedisBookFactory,
    own_redis: RedisProcess,
    own_client: redis.asyncio.Redis,
    prefix: str,
) -> None:
    await own_redis.stop()
    book = await make_redis_book("s1", url=own_redis.url, timeout=UNIT)
    await own_redis.start()

    await book.add("alice", "s1/c1", 3 * UNIT)
    # Whether the key lapsed was never known: adding again is the safe side.
    assert await book.refresh({"alice": ["s1/c1"]}, TTL) is True
    await asyncio.sleep(4 * UNIT)

    # Announced, and refreshed on Redis's clock although start never read it.
    assert await own_client.exists(f"{prefix}server:{{s1}}") == 1
    assert await book.lookup(["alice"]) == {"alice": ["s1/c1"]}


async def test_calls_that_fail_during_an_outage_never_crash_the_caller_loop(
    make_redis_book: RedisBookFactory, own_redis: RedisProcess
) -> None:
    book = await make_redis_book(url=own_redis.url, timeout=UNIT)
    await own_redis.stop()

    # Many concurrent callers, as a busy server has: every one of them gets
    # an AddressBookError and nothing else escapes.
    results = await asyncio.gather(
        *(book.lookup([f"u{n}"]) for n in range(50)), return_exceptions=True
    )

    assert all(isinstance(result, AddressBookError) for result in results)
    await eventually(lambda: not book.ready)
