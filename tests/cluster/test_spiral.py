"""The tantrum spiral cannot start: each of its causes, counted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import httpx
import redis

from switchboard.addressbook import server_of
from switchboard.client import Client
from tests.cluster.conftest import (
    LONG_EXPIRY,
    ClusterClients,
    looked_up,
    wait_until_async,
)
from tests.cluster.monitor import Commands, monitor
from tests.harness import AppServer, agent_token


def addresses(redis_url: str, prefix: str, user: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.zrange(f"{prefix}addr:{{{user}}}", 0, -1))
    finally:
        client.close()


async def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def presence(client: Client, agent_id: int, connected: bool = True) -> None:
    """Wait until ``client``'s status board shows ``agent_id`` (dis)connected."""
    async with asyncio.timeout(10):
        while True:
            frame = await client.receive("board")
            for entry in frame["agents"]:
                if entry["id"] == agent_id and entry.get("connected") is connected:
                    return


# No housekeeping during a measurement: only the action itself counts.
SLOW = {
    "SWITCHBOARD_HEARTBEAT_INTERVAL": "60",
    "SWITCHBOARD_HEARTBEAT_TIMEOUT": "120",
    "SWITCHBOARD_SERVER_TTL": "180",
}

CLIENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from switchboard.client import Client

    async def main():
        client = await Client.connect(sys.argv[1], token=sys.argv[2])
        await client.start()
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def spawn_client(url: str, token: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, url, token],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def test_vanished_clients_leave_no_address(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    redis_url: str,
    prefix: str,
) -> None:
    a, b = two_servers
    customer = await clients.customer(a)
    await customer.start()
    user = customer.welcome["user"]
    token = str(customer.token)

    # One tab is killed (the kernel still sends a FIN), the other frozen:
    # a half-open connection that never reports its close.
    killed = spawn_client(b.ws_url, token)
    frozen = spawn_client(a.ws_url, token)
    try:
        assert len(addresses(redis_url, prefix, user)) == 3
        killed.kill()
        frozen.send_signal(signal.SIGSTOP)

        await wait_until(lambda: len(addresses(redis_url, prefix, user)) == 1)
        (survivor,) = addresses(redis_url, prefix, user)
        assert survivor.decode().startswith(customer.welcome["server"] + "/")
        assert customer.connected
    finally:
        for process in (killed, frozen):
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()


def redis_now_ms(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        seconds, microseconds = client.time()
    finally:
        client.close()
    return seconds * 1000 + microseconds // 1000


async def test_a_killed_server_leaves_no_address_and_its_clients_resume(
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    a, b = start_server(**LONG_EXPIRY), start_server(**LONG_EXPIRY)
    agent = await clients.agent(a, agent_ids[0])
    customer = Client(b.ws_url)
    await customer.open()
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    user = customer.welcome["user"]
    dead_server = customer.welcome["server"]
    for n in range(5):
        await customer.send(conv, f"before {n}")

    # The address on B would stay valid for most of a minute by itself.
    (address,) = await looked_up(redis_url, prefix, user)
    assert server_of(address) == dead_server
    raw = redis.Redis.from_url(redis_url)
    try:
        expiry = raw.zscore(f"{prefix}addr:{{{user}}}", address)
    finally:
        raw.close()
    assert expiry is not None
    assert expiry - redis_now_ms(redis_url) > 30_000

    # B dies without a word. Within a few server TTLs, and long before
    # the address's own expiry, no lookup finds it any more.
    b.kill()
    await wait_until_async(
        lambda: looked_up(redis_url, prefix, user), lambda found: not found
    )
    assert redis_now_ms(redis_url) < expiry
    assert not addresses(redis_url, prefix, user)  # removed, not just hidden

    await agent.send(conv, "while you were away")
    customer.url = a.ws_url
    try:
        await customer.reconnect()
        assert customer.welcome["server"] != dead_server
        await customer.send(conv, "after the crash")
        expected = [f"before {n}" for n in range(5)]
        expected += ["while you were away", "after the crash"]
        async with asyncio.timeout(10):
            while len(agent.messages.get(conv, {})) < 7:
                await agent.receive("message")
        assert customer.bodies(conv) == expected
        assert agent.bodies(conv) == expected
        assert sorted(customer.messages[conv]) == list(range(1, 8))
        (address,) = await looked_up(redis_url, prefix, user)
        assert server_of(address) == customer.welcome["server"]
    finally:
        await customer.close()


async def test_status_change_costs_the_same_with_a_thousand_ghosts(
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    slow = SLOW
    a, b = start_server(**slow), start_server(**slow)
    watcher = await Client.connect(b.ws_url, token=agent_token(agent_ids[0]))
    actor = await Client.connect(a.ws_url, token=agent_token(agent_ids[1]))
    try:

        async def change(status: str) -> list[str]:
            async with monitor(redis_url, prefix) as seen:
                await actor.send_frame({"type": "status", "status": status})
                await watcher.receive("board")
            return seen.seen

        await asyncio.sleep(0.5)
        clean = await change("away")

        ghosts = redis.Redis.from_url(redis_url)
        try:
            far = int(time.time() * 1000) + 3_600_000
            for n in range(1000):
                user = f"a:{agent_ids[n % 3]}" if n % 2 else f"c:{900000 + n}"
                ghosts.zadd(f"{prefix}addr:{{{user}}}", {f"ghost{n}/x{n}": far})
        finally:
            ghosts.close()

        haunted = await change("online")
        assert [c.split(" ")[0].upper() for c in clean] == ["PUBLISH"]
        assert [c.split(" ")[0].upper() for c in haunted] == ["PUBLISH"]
        assert f"{prefix}status" in haunted[0]
    finally:
        await watcher.close()
        await actor.close()


async def test_an_agent_reconnecting_costs_the_same_with_a_thousand_ghosts(
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    a, b = start_server(**SLOW), start_server(**SLOW)
    watcher = await Client.connect(b.ws_url, token=agent_token(agent_ids[0]))
    actor = await Client.connect(a.ws_url, token=agent_token(agent_ids[1]))
    try:

        async def reconnect() -> list[str]:
            watcher.drain()
            async with monitor(redis_url, prefix) as seen:
                await actor.close()
                await presence(watcher, agent_ids[1], connected=False)
                await actor.open()
                await presence(watcher, agent_ids[1], connected=True)
            return seen.seen

        await asyncio.sleep(0.5)
        clean = await reconnect()

        # Ghosts of everyone else: customers and the other agents. The
        # actor's own would change the action measured: a ghost of a live
        # server keeps it connected, and one of a dead server is pruned by
        # the first lookup, a one-off cleanup that is the intended cost.
        ghosts = redis.Redis.from_url(redis_url)
        try:
            far = int(time.time() * 1000) + 3_600_000
            others = [agent_ids[0], agent_ids[2]]
            for n in range(1000):
                user = f"a:{others[n % 4 // 2]}" if n % 2 else f"c:{900000 + n}"
                ghosts.zadd(f"{prefix}addr:{{{user}}}", {f"ghost{n}/x{n}": far})
        finally:
            ghosts.close()

        haunted = await reconnect()
        # The same commands on the same keys; only expiries and connection
        # ids differ.
        assert ("PUBLISH", f"{prefix}status") in map(shape, clean)
        assert sorted(map(shape, haunted)) == sorted(map(shape, clean))
    finally:
        await watcher.close()
        await actor.close()


def shape(command: str) -> tuple[str, ...]:
    """A command's name and first argument (its key, channel or script)."""
    return tuple(command.split(" ")[:2])


async def test_a_message_costs_one_publish_per_other_server_holding_the_user(
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    slow = SLOW
    a, b = start_server(**slow), start_server(**slow)
    opened = []
    try:
        agent_tabs = [
            await Client.connect(b.ws_url, token=agent_token(agent_ids[0]))
            for _ in range(3)
        ]
        customer = await Client.connect(a.ws_url)
        opened += [*agent_tabs, customer]
        conv = (await customer.start())["id"]
        await customer.receive("assigned")

        # Customer on A, the agent's three tabs all on B: a message from A
        # costs one publish (to B), however many tabs B holds.
        async with monitor(redis_url, prefix) as seen:
            await customer.send(conv, "to B")
            for tab in agent_tabs:
                await tab.receive("message", body="to B")
        assert len(seen.publishes_to("deliver:")) == 1

        # The agent answers from B: its own tabs are local there, the
        # customer is on A, so one publish (to A).
        async with monitor(redis_url, prefix) as seen:
            await agent_tabs[0].send(conv, "to A")
            await customer.receive("message", body="to A")
        assert len(seen.publishes_to("deliver:")) == 1

        # A conversation whose customer and agent are both only on A: its
        # messages cost no publish at all. The agent on B has a chat
        # already, so the new one goes to the idle agent.
        local_agent = await Client.connect(a.ws_url, token=agent_token(agent_ids[1]))
        opened.append(local_agent)
        await presence(local_agent, agent_ids[1])
        local_customer = await Client.connect(a.ws_url)
        opened.append(local_customer)
        local_conv = (await local_customer.start())["id"]
        assigned = await local_customer.receive("assigned")
        assert assigned["conversation"]["agent"]["id"] == agent_ids[1]
        await local_agent.receive("assigned")

        async with monitor(redis_url, prefix) as seen:
            await local_customer.send(local_conv, "stays on A")
            await local_agent.receive("message", body="stays on A")
            await local_agent.send(local_conv, "still on A")
            await local_customer.receive("message", body="still on A")
        assert seen.publishes_to("deliver:") == []
    finally:
        for client in opened:
            await client.close()


async def readiness(server: AppServer, status: int, timeout: float = 30) -> None:
    """Poll ``/readyz`` until it answers ``status``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        async with asyncio.timeout(timeout):
            while (await http.get("/readyz")).status_code != status:
                await asyncio.sleep(0.05)


async def test_killed_pubsub_connections_resubscribe_and_deliver_again(
    scoped_redis: tuple[str, str],
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    url, redis_user = scoped_redis
    a, b = start_server(redis=url), start_server(redis=url)
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a)
    conv = (await customer.start())["id"]
    await customer.receive("assigned")

    # A resubscription takes milliseconds, too short a window to catch by
    # polling. So the kill comes with a revocation of these servers'
    # channels, in one transaction: until they are given back, every
    # attempt to subscribe again is refused and the servers stay
    # not-ready. The USER filter spares other tests on this Redis.
    admin = redis.Redis.from_url(redis_url)
    try:
        with admin.pipeline(transaction=True) as pipe:
            pipe.client_kill_filter(_type="pubsub", user=redis_user)
            pipe.acl_setuser(redis_user, enabled=True, reset_channels=True)
            killed, _ = pipe.execute()
        assert int(killed) == 2  # one subscriber per server

        for server in (a, b):
            await readiness(server, 503)
            health = server.get("/healthz").json()
            assert health["ready"] is False
            assert health["status"] == "degraded"

        # Given back, the channels let the next attempt through.
        admin.acl_setuser(redis_user, enabled=True, channels=[f"{prefix}*"])
    finally:
        admin.close()
    for server in (a, b):
        await readiness(server, 200)
        log = server.log_path.read_text()
        assert "backplane degraded" in log
        assert "backplane recovered" in log

    await customer.send(conv, "after the kill")
    assert (await agent.receive("message", body="after the kill"))["seq"] == 1
    await agent.send(conv, "and back")
    await customer.receive("message", body="and back")


async def test_a_message_sent_while_pubsub_is_down_reaches_its_recipient(
    scoped_redis: tuple[str, str],
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
) -> None:
    url, redis_user = scoped_redis
    a, b = start_server(redis=url), start_server(redis=url)
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a)
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    await customer.send(conv, "before")

    # B hears nothing until it has subscribed again, so the delivery of a
    # message stored meanwhile is lost; B's resync frame makes the agent
    # join after its last seq, and the replay brings the message.
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.client_kill_filter(_type="pubsub", user=redis_user)
    finally:
        admin.close()
    seq = await customer.send(conv, "during the outage")

    await agent.receive("resync", timeout=20)
    async with asyncio.timeout(10):
        while seq not in agent.messages.get(conv, {}):
            await agent.receive("message")
    assert agent.bodies(conv) == ["before", "during the outage"]


# A heartbeat period long enough for many pings, and a liveness refresh
# (every third of the TTL) too rare to add many refreshes of its own.
COUNTED_HEARTBEATS = {
    "SWITCHBOARD_HEARTBEAT_INTERVAL": "1",
    "SWITCHBOARD_HEARTBEAT_TIMEOUT": "10",
    "SWITCHBOARD_SERVER_TTL": "60",
}


async def test_heartbeat_frames_cost_no_redis_command_each(
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    redis_url: str,
    prefix: str,
) -> None:
    server = start_server(**COUNTED_HEARTBEATS)
    customers = [await clients.customer(server, heartbeat=False) for _ in range(10)]
    keys = [f"{prefix}addr:{{{c.welcome['user']}}}" for c in customers]
    server_key = f"{prefix}server:{{{customers[0].welcome['server']}}}"

    async def ping(client: Client) -> None:
        await client.send_frame({"type": "ping"})
        await client.receive("pong")

    # Every refresh pipeline sets the liveness key once, so those SETs
    # count the refreshes. Ping as fast as the server answers, until it
    # has refreshed a few times and each client has pinged far more often.
    rounds = 0
    began = time.monotonic()
    async with monitor(redis_url, prefix) as seen:
        async with asyncio.timeout(60):
            while rounds < 200 or len(refreshes(seen, server_key)) < 3:
                await asyncio.gather(*(ping(c) for c in customers))
                rounds += 1
    watched = time.monotonic() - began
    pipelines = len(refreshes(seen, server_key))

    # The sweep sleeps a heartbeat period between refreshes, the liveness
    # task a third of the TTL, which bounds how many refreshes fit in the
    # time watched. An upper bound only: a slow machine cannot break it.
    interval = float(COUNTED_HEARTBEATS["SWITCHBOARD_HEARTBEAT_INTERVAL"])
    ttl = float(COUNTED_HEARTBEATS["SWITCHBOARD_SERVER_TTL"])
    assert 3 <= pipelines <= watched / interval + watched / (ttl / 3) + 2
    assert rounds >= 200

    # Each client's address is refreshed at most once per pipeline, by
    # the same three commands whatever the number of pings or clients.
    for key in keys:
        on_key = [c for c in seen.seen if c.split(" ")[1:2] == [key]]
        assert 1 <= len(seen_named(on_key, "ZADD")) <= pipelines
        assert {c.split(" ")[0].upper() for c in on_key} <= {
            "ZREMRANGEBYSCORE",
            "ZADD",
            "PEXPIREAT",
        }
        assert len(on_key) <= 3 * pipelines


def refreshes(seen: Commands, server_key: str) -> list[str]:
    return [c for c in seen.named("SET") if c.split(" ")[1:2] == [server_key]]


def seen_named(commands: list[str], name: str) -> list[str]:
    return [c for c in commands if c.split(" ", 1)[0].upper() == name]
