#!/usr/bin/env python
"""The same cross-server chat benchmark against python-socketio: two
``socketio_server.py`` processes (AsyncServer + AsyncRedisManager on one
Redis), customers on A and agents on B, one room per conversation.

python-socketio does not store messages; see socketio_server.py.

    .venv/bin/python bench/socketio_bench.py            # defaults
    .venv/bin/python bench/socketio_bench.py --help

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

log = bl.log_line
# Engine.IO 4 over a plain WebSocket, no HTTP long-polling first.
PATH = "/socket.io/?EIO=4&transport=websocket"


class Peer:
    """One Socket.IO connection spoken raw: Engine.IO 4, Socket.IO 5.

    Packets: "0" open, "2" ping (answered "3"), "40" namespace connect,
    "42[event, data]" event, "42<id>[...]" event with an ack request, and
    "43<id>[...]" the ack.
    """

    def __init__(self, rec: bl.Recorder, role: str) -> None:
        self.rec = rec
        self.role = role
        self.link: bl.Link | None = None
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.room = ""
        self.setup = True
        self._tasks: set[asyncio.Task[None]] = set()

    def on_text(self, link: bl.Link, text: str) -> None:
        if text.startswith('42["message"'):
            if self.role == "agent":
                _, data = json.loads(text[2:])
                self.rec.delivered_one(*bl.parse_body(data["body"]))
            return
        if text == "2":
            task = asyncio.get_running_loop().create_task(self._pong(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if text.startswith("43"):
            if self.setup:
                self.frames.put_nowait(text)
            elif text.endswith('[{"ok":true}]'):
                self.rec.ack()
            else:
                self.rec.error(text)
            return
        if text.startswith("44"):
            self.rec.error(text)
        if self.setup:
            self.frames.put_nowait(text)

    async def _pong(self, link: bl.Link) -> None:
        # A ping may cross our own close at the end of a run.
        with contextlib.suppress(Exception):
            await link.send("3")

    async def expect(self, prefix: str, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                text = await self.frames.get()
                if text.startswith(prefix):
                    return text

    async def connect(self, url: str, compression: bool) -> None:
        self.link = await bl.Link.open(url + PATH, self.on_text, compression)
        await self.expect("0")
        await self.link.send("40")
        await self.expect("40")

    async def join(self, room: str, ack: int) -> None:
        assert self.link is not None
        await self.link.send(f"42{ack}" + json.dumps(["join", room]))
        answer = await self.expect(f"43{ack}[")
        if answer != f"43{ack}[true]":
            raise RuntimeError(f"join {room} refused: {answer}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bl.raise_fd_limit()
    channel = f"sbbench-sio-{os.getpid()}-{secrets.token_hex(3)}"
    log_dir = Path(tempfile.mkdtemp(prefix="siobench-"))
    out: dict[str, Any] = {
        "system": "python-socketio",
        "machine": {"cores": os.cpu_count()},
        "config": {k: v for k, v in vars(args).items()},
        "stores_messages": False,
        "code": {
            "python-socketio": version("python-socketio"),
            "python-engineio": version("python-engineio"),
            "aiohttp": version("aiohttp"),
            "redis": version("redis"),
        },
    }
    servers: list[bl.Server] = []
    redis = Redis.from_url(args.redis)
    try:
        ports = []
        profiles = [args.results / f"profile-socketio-{label}.pstats" for label in "AB"]
        for label, profile in zip("AB", profiles, strict=True):
            port = bl.free_port()
            ports.append(port)
            server = bl.Server(
                f"socketio-{label}",
                bl.profiled(
                    [sys.executable, str(bl.BENCH_DIR / "socketio_server.py"),
                     "--port", str(port), "--redis-url", args.redis,
                     "--channel", channel, "--pool-limit", str(args.pool_limit)],
                    profile if args.profile else None,
                ),
                f"http://127.0.0.1:{port}/health",
                log_dir,
            )
            server.start()
            servers.append(server)
        for server in servers:
            server.wait_ready()
        url_a, url_b = (f"ws://127.0.0.1:{port}" for port in ports)
        pids = [s.pid for s in servers]
        log(f"servers up: A pid {pids[0]}, B pid {pids[1]}; logs in {log_dir}")

        rec = bl.Recorder()
        probe = bl.CpuProbe({
            "servers": bl.procs_of(pids),
            "redis": bl.redis_procs,
            "client": bl.procs_of([os.getpid()]),
        })

        # Idle connections first, on fresh servers.
        async def open_idle(i: int) -> bl.Link:
            peer = Peer(rec, "customer")
            await peer.connect(url_a, args.compression)
            peer.setup = False
            assert peer.link is not None
            return peer.link

        idle, links = await bl.measure_idle(args.idle, open_idle, pids[0], log)
        log(f"idle: {idle.connections} connections, server A RSS "
            f"{idle.server_rss_before_mb} -> {idle.server_rss_after_mb} MiB = "
            f"{idle.per_connection_kib} KiB/connection (opened in "
            f"{idle.open_seconds} s)")
        out["idle"] = idle
        await bl.close_all(links)
        await asyncio.sleep(2)

        # Agents on B, each in the rooms of its share of the conversations;
        # customers on A, each in its own conversation's room.
        agents = [Peer(rec, "agent") for _ in range(args.agents)]
        await bl.bounded_gather(
            len(agents), lambda i: agents[i].connect(url_b, args.compression)
        )
        customers = [Peer(rec, "customer") for _ in range(args.pairs)]

        async def start_customer(i: int) -> None:
            peer = customers[i]
            peer.room = f"conversation-{i}"
            await peer.connect(url_a, args.compression)
            await agents[i % len(agents)].join(peer.room, ack=i)
            await peer.join(peer.room, ack=0)

        await bl.bounded_gather(len(customers), start_customer, concurrency=10)
        for peer in [*agents, *customers]:
            peer.setup = False
            peer.frames = asyncio.Queue()
        log(f"{len(customers)} customers on A in conversations with "
            f"{len(agents)} agents on B")

        async def send(index: int, message_id: int, intended: float) -> None:
            peer = customers[index]
            data = {
                "conversation": peer.room,
                "body": bl.make_body(message_id, intended, args.body_size),
            }
            assert peer.link is not None
            await peer.link.send(f"42{message_id}" + json.dumps(["message", data]))

        async def counters() -> dict[str, float]:
            return await bl.redis_counters(redis)

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
                args.results / "profile-socketio.txt",
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
            "stored": 0,
        }
        async with asyncio.timeout(30):
            await bl.close_all([p.link for p in [*agents, *customers] if p.link])
        log(f"totals: {out['totals']}")
    finally:
        problems: dict[str, list[str]] = {}
        for server in servers:
            if not server.alive():
                log(f"{server.name} DIED:\n{server.log_tail()}")
            server.stop()
            problems[server.name] = server.log_problems()[:20]
        out["server_log_problems"] = problems
        await redis.aclose()
    return out


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100,
                        help="customers on A, one conversation each")
    parser.add_argument("--agents", type=int, default=10, help="agents on B")
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
    parser.add_argument("--compression", action=argparse.BooleanOptionalAction,
                        default=True, help="offer permessage-deflate, as browsers do")
    parser.add_argument("--pool-limit", type=int, default=2**31,
                        help="Redis pool size of the servers; 0 keeps redis-py's"
                        " default (100 in redis-py 8, see socketio_server.py)")
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
    parser.add_argument("--results", type=Path, default=bl.RESULTS_DIR)
    parser.add_argument("--json", type=Path, default=None,
                        help="default: RESULTS/socketio.json")
    return parser.parse_args(argv)


def main() -> None:
    args = options()
    result = uvloop.run(run(args))
    path = args.json or args.results / "socketio.json"
    bl.write_json(path, result)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
