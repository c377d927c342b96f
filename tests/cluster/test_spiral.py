"""The tantrum spiral cannot start: each of its causes, counted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import redis

from switchboard.client import Client
from tests.cluster.conftest import ClusterClients
from tests.cluster.monitor import monitor
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


async def test_a_killed_server_leaves_no_address_and_its_clients_resume(
    clients: ClusterClients,
    start_server: Callable[..., AppServer],
    agent_ids: list[int],
    redis_url: str,
    prefix: str,
) -> None:
    a, b = start_server(), start_server()
    agent = await clients.agent(a, agent_ids[0])
    customer = Client(b.ws_url)
    await customer.open()
    conv = (await customer.start())["id"]
    await customer.receive("assigned")
    user = customer.welcome["user"]
    for n in range(5):
        await customer.send(conv, f"before {n}")
    assert len(addresses(redis_url, prefix, user)) == 1

    # The heartbeat timeout is long here, so only the liveness TTL of the
    # dead server can explain the address going away.
    b.kill()
    await wait_until(lambda: not addresses(redis_url, prefix, user))

    await agent.send(conv, "while you were away")
    customer.url = a.ws_url
    try:
        await customer.reconnect()
        await customer.send(conv, "after the crash")
        expected = [f"before {n}" for n in range(5)]
        expected += ["while you were away", "after the crash"]
        async with asyncio.timeout(10):
            while len(agent.messages.get(conv, {})) < 7:
                await agent.receive("message")
        assert customer.bodies(conv) == expected
        assert agent.bodies(conv) == expected
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


async def test_killed_pubsub_connections_resubscribe_and_deliver_again(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
    redis_url: str,
) -> None:
    a, b = two_servers
    agent = await clients.agent(b, agent_ids[0])
    customer = await clients.customer(a)
    conv = (await customer.start())["id"]
    await customer.receive("assigned")

    admin = redis.Redis.from_url(redis_url)
    try:
        killed = admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    finally:
        admin.close()
    assert int(killed) >= 2

    for server in (a, b):
        await wait_until(
            lambda s=server: "backplane recovered" in s.log_path.read_text()
        )
        assert "backplane degraded" in server.log_path.read_text()
        assert server.get("/readyz").status_code == 200

    await customer.send(conv, "after the kill")
    assert (await agent.receive("message", body="after the kill"))["seq"] == 1
    await agent.send(conv, "and back")
    await customer.receive("message", body="and back")


async def test_a_message_sent_while_pubsub_is_down_reaches_its_recipient(
    clients: ClusterClients,
    two_servers: tuple[AppServer, AppServer],
    agent_ids: list[int],
    redis_url: str,
) -> None:
    a, b = two_servers
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
        admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    finally:
        admin.close()
    seq = await customer.send(conv, "during the outage")

    await agent.receive("resync", timeout=20)
    async with asyncio.timeout(10):
        while seq not in agent.messages.get(conv, {}):
            await agent.receive("message")
    assert agent.bodies(conv) == ["before", "during the outage"]
