#!/usr/bin/env python
"""Cross-server chat benchmark of Switchboard: two app servers, Redis and a
fresh PostgreSQL database (every message is stored before it is acked).

Customers are on server A, their agents on server B, so every message goes
customer -> A -> PostgreSQL -> Redis -> B -> agent (and back to the
customer's own connection on A, as every tab of a user sees every message).

    .venv/bin/python bench/switchboard_bench.py            # defaults
    .venv/bin/python bench/switchboard_bench.py --help

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

SECRET = "bench-secret-key-" + secrets.token_hex(8)
log = bl.log_line


# -- database -----------------------------------------------------------------


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def make_agents(url: str, count: int, capacity: int) -> list[int]:
    """Agents b1..bN, online, like tests/harness.py's make_agents."""
    from switchboard.auth import hash_password
    from switchboard.store import AgentStatus
    from switchboard.store.sql import SqlStore

    store = SqlStore(url)
    await store.open()
    try:
        password = hash_password("bench-password")
        ids = []
        for n in range(1, count + 1):
            agent = await store.create_agent(f"b{n}", f"Agent {n}", password, capacity)
            await store.set_agent_status(agent.id, AgentStatus.ONLINE)
            ids.append(agent.id)
        return ids
    finally:
        await store.close()


async def pg_counters(admin_url: str, name: str) -> dict[str, float]:
    conn = await asyncpg.connect(admin_url)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database"
            " WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    return {
        "pg_commits": float(row["xact_commit"]),
        "pg_rows_inserted": float(row["tup_inserted"]),
        "pg_rows_updated": float(row["tup_updated"]),
    }


# -- clients ------------------------------------------------------------------


class Peer:
    """One Switchboard connection of the load: a customer or an agent."""

    def __init__(self, rec: bl.Recorder, role: str) -> None:
        self.rec = rec
        self.role = role
        self.link: bl.Link | None = None
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.conversation = 0
        self.assigned: set[int] = set()
        self.setup = True

    def on_text(self, link: bl.Link, text: str) -> None:
        # Cheap checks on the hot path: the server encodes frames with
        # "type" first and no spaces.
        if text.startswith('{"type":"message"'):
            if self.role == "agent":
                frame = json.loads(text)
                self.rec.delivered_one(*bl.parse_body(frame["body"]))
            return
        if text.startswith('{"type":"ack"'):
            self.rec.ack()
            return
        if text.startswith('{"type":"error"'):
            self.rec.error(text)
        if text.startswith('{"type":"assigned"'):
            self.assigned.add(json.loads(text)["conversation"]["id"])
        if self.setup:
            self.frames.put_nowait(json.loads(text))

    async def expect(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame["type"] == "error":
                    raise RuntimeError(f"server refused: {frame}")
                if frame["type"] == kind:
                    return frame

    async def hello(self, url: str, token: str, compression: bool) -> None:
        self.link = await bl.Link.open(url, self.on_text, compression)
        await self.link.send(json.dumps({"type": "hello", "v": 1, "token": token}))
        await self.expect("welcome")


async def heartbeat(peers: list[Peer], interval: float) -> None:
    """Ping every connection once per interval, spread over the interval."""
    while True:
        links = [p.link for p in peers if p.link is not None and not p.link.closed]
        pause = interval / max(len(links), 1)
        for link in links:
            try:
                await link.send('{"type":"ping"}')
            except Exception:
                pass
            await asyncio.sleep(pause)
        if not links:
            await asyncio.sleep(interval)


# -- the run ------------------------------------------------------------------


async def run(args: argparse.Namespace, source: dict[str, str]) -> dict[str, Any]:
    from switchboard.auth import TokenSigner

    signer = TokenSigner(SECRET)
    bl.raise_fd_limit()
    name = f"sbbench_{os.getpid()}_{secrets.token_hex(3)}"
    admin_url = f"{args.postgres}/postgres"
    db_url = f"{args.postgres}/{name}"
    prefix = f"sbbench{os.getpid()}:"
    log_dir = Path(tempfile.mkdtemp(prefix="sbbench-"))
    out: dict[str, Any] = {
        "system": "switchboard",
        "machine": {"cores": os.cpu_count()},
        "config": {k: v for k, v in vars(args).items() if k != "postgres"},
        "stores_messages": True,
        "code": source,
    }

    log(f"creating database {name}; logs in {log_dir}")
    await create_database(admin_url, name)
    servers: list[bl.Server] = []
    redis = Redis.from_url(args.redis)
    try:
        subprocess.run(
            [sys.executable, "-m", "switchboard", "db", "upgrade",
             "--database-url", db_url],
            check=True, stdout=subprocess.DEVNULL,
        )
        agent_ids = await make_agents(db_url, args.agents, args.capacity)

        ports = []
        profiles = [args.results / f"profile-switchboard-{label}.pstats" for label in "AB"]
        for label, profile in zip("AB", profiles, strict=True):
            port = bl.free_port()
            ports.append(port)
            server = bl.Server(
                f"switchboard-{label}",
                bl.profiled(
                    [sys.executable, "-m", "switchboard", "serve", "--host",
                     "127.0.0.1", "--port", str(port), "--database-url", db_url,
                     "--redis-url", args.redis, "--secret-key", SECRET,
                     "--no-migrate", "--log-level", "info"],
                    profile if args.profile else None,
                ),
                f"http://127.0.0.1:{port}/readyz",
                log_dir,
                env={"SWITCHBOARD_REDIS_PREFIX": prefix},
            )
            server.start()
            servers.append(server)
        for server in servers:
            server.wait_ready()
        url_a, url_b = (f"ws://127.0.0.1:{port}/ws" for port in ports)
        pids = [s.pid for s in servers]
        log(f"servers up: A pid {pids[0]}, B pid {pids[1]}")

        rec = bl.Recorder()
        probe = bl.CpuProbe({
            "servers": bl.procs_of(pids),
            "redis": bl.redis_procs,
            "postgres": bl.postgres_procs(name),
            "client": bl.procs_of([os.getpid()]),
        })

        # Idle connections first, on fresh servers.
        idle_peers: list[Peer] = []

        async def open_idle(i: int) -> bl.Link:
            peer = Peer(rec, "customer")
            token = signer.customer(f"idle-{i}-{time.monotonic_ns()}", f"Idle {i}", "")
            await peer.hello(url_a, token, args.compression)
            peer.setup = False
            idle_peers.append(peer)
            assert peer.link is not None
            return peer.link

        pinger = asyncio.create_task(heartbeat(idle_peers, args.heartbeat))
        idle, links = await bl.measure_idle(args.idle, open_idle, pids[0], log)
        log(f"idle: {idle.connections} connections, server A RSS "
            f"{idle.server_rss_before_mb} -> {idle.server_rss_after_mb} MiB = "
            f"{idle.per_connection_kib} KiB/connection (opened in "
            f"{idle.open_seconds} s)")
        out["idle"] = idle
        pinger.cancel()
        await bl.close_all(links)
        idle_peers.clear()
        await asyncio.sleep(2)

        # Agents on B, then customers on A; routing assigns each new
        # conversation to the connected agent with the fewest open chats.
        agents = [Peer(rec, "agent") for _ in agent_ids]
        await bl.bounded_gather(
            len(agents),
            lambda i: agents[i].hello(url_b, signer.agent(agent_ids[i]),
                                      args.compression),
        )
        customers = [Peer(rec, "customer") for _ in range(args.pairs)]

        async def start_customer(i: int) -> None:
            peer = customers[i]
            token = signer.customer(f"bench-{i}", f"Customer {i}", f"c{i}@example.com")
            await peer.hello(url_a, token, args.compression)
            assert peer.link is not None
            await peer.link.send('{"type":"start"}')
            peer.conversation = (await peer.expect("conversation"))["conversation"]["id"]
            await peer.expect("assigned")

        await bl.bounded_gather(len(customers), start_customer, concurrency=10)
        # The customer heard of its agent; the agent hears it via Redis.
        wanted = {c.conversation for c in customers}
        end = time.monotonic() + 10
        while time.monotonic() < end:
            missing = wanted - set().union(*(a.assigned for a in agents))
            if not missing:
                break
            await asyncio.sleep(0.05)
        if missing:
            raise RuntimeError(f"{len(missing)} conversations have no agent on B")
        for peer in [*agents, *customers]:
            peer.setup = False
            peer.frames = asyncio.Queue()
        log(f"{len(customers)} customers on A in conversations with "
            f"{len(agents)} agents on B")
        pinger = asyncio.create_task(heartbeat([*agents, *customers], args.heartbeat))

        async def send(index: int, message_id: int, intended: float) -> None:
            peer = customers[index]
            frame = {
                "type": "send",
                "conversation": peer.conversation,
                "client_id": str(message_id),
                "body": bl.make_body(message_id, intended, args.body_size),
            }
            assert peer.link is not None
            await peer.link.send(json.dumps(frame))

        async def counters() -> dict[str, float]:
            return {**await pg_counters(admin_url, name),
                    **await bl.redis_counters(redis)}

        runner = bl.LoadRunner(
            rec, send, len(customers), probe, pids, args.body_size, args.warmup,
            counters=counters, quiet_pct=args.quiet, quiet_wait=args.quiet_wait,
        )
        out["background_cpu_pct"] = await runner.background()
        log(f"background CPU with no messages (% of a core): "
            f"{out['background_cpu_pct']}")
        steps = await runner.search(
            args.start_rate, args.factor, args.max_steps, args.duration, log,
            args.time_budget,
        )
        out["steps"] = steps
        out["best"] = bl.best(steps)

        if args.profile:
            top = out["best"].offered if out["best"] else args.start_rate
            step = await bl.profile_step(
                runner, pids, profiles, args.profile_rate or top, args.duration,
                args.results / "profile-switchboard.txt",
            )
            log("profiled: " + step.line())
            out["profiled_step"] = step

        end = time.monotonic() + 5
        while rec.in_flight and time.monotonic() < end:
            await asyncio.sleep(0.05)
        out["totals"] = {
            "sent": rec.sent,
            "delivered": rec.delivered,
            "acked": rec.acks,
            "lost": rec.lost(),
            "duplicates": rec.duplicates,
            "errors": rec.errors,
            "error_samples": rec.error_samples,
        }
        pinger.cancel()
        async with asyncio.timeout(30):
            await bl.close_all([p.link for p in [*agents, *customers] if p.link])
        stored = await pg_stored(db_url)
        out["totals"]["stored"] = stored
        log(f"totals: {out['totals']}")
    finally:
        problems: dict[str, list[str]] = {}
        for server in servers:
            if not server.alive():
                log(f"{server.name} DIED:\n{server.log_tail()}")
            server.stop()
            problems[server.name] = server.log_problems()[:20]
        out["server_log_problems"] = problems
        await drop_database(admin_url, name)
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()
        log(f"dropped database {name}")
    return out


async def pg_stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100,
                        help="customers on A, one conversation each")
    parser.add_argument("--agents", type=int, default=10, help="agents on B")
    parser.add_argument("--capacity", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=2000,
                        help="idle connections for the memory phase")
    parser.add_argument("--start-rate", type=float, default=250)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0,
                        help="seconds of sending per step")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="first seconds of a step left out of latencies")
    parser.add_argument("--time-budget", type=float, default=100.0,
                        help="no new step starts after this many seconds")
    parser.add_argument("--body-size", type=int, default=64)
    parser.add_argument("--heartbeat", type=float, default=10.0,
                        help="client ping interval (the server's default)")
    parser.add_argument("--compression", action=argparse.BooleanOptionalAction,
                        default=True, help="offer permessage-deflate, as browsers do")
    parser.add_argument("--quiet", type=float, default=15.0,
                        help="before a step, wait until processes outside the"
                        " benchmark use less than this %% of the machine")
    parser.add_argument("--quiet-wait", type=float, default=15.0,
                        help="... but no longer than this many seconds")
    parser.add_argument("--profile", action="store_true",
                        help="one more step with cProfile on in both servers"
                        " (bench/profiled.py); summary in RESULTS/profile-*.txt")
    parser.add_argument("--profile-rate", type=float, default=None)
    parser.add_argument("--redis", default=os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
        help="server URL without a database name")
    parser.add_argument("--source", default="HEAD",
                        help="git commit to benchmark (a clean snapshot), or"
                        " 'worktree' for the checkout as it is")
    parser.add_argument("--results", type=Path, default=bl.RESULTS_DIR)
    parser.add_argument("--json", type=Path, default=None,
                        help="default: RESULTS/switchboard.json")
    return parser.parse_args(argv)


def main() -> None:
    args = options()
    source = bl.use_source(args.source)
    log(f"switchboard from {source['commit']} ({source['source']})")
    result = uvloop.run(run(args, source))
    path = args.json or args.results / "switchboard.json"
    bl.write_json(path, result)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
