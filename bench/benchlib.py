"""What both benchmarks share: processes, CPU and memory probes, the open-loop
load generator, latency statistics and the WebSocket client.

The benchmark scripts (``switchboard_bench.py``, ``socketio_bench.py``) only
say how to start their servers, how a customer sends a message and how an
agent recognises one; everything that is measured is measured here, the same
way for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# The latency bound the rate search holds to.
P99_BOUND_MS = 100.0


# -- processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit() -> None:
    # Thousands of idle connections need thousands of descriptors, in the
    # client and (inherited) in the servers it starts.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One server subprocess, its log, and a readiness probe."""

    def __init__(
        self, name: str, command: list[str], ready_url: str, log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.ready_url = ready_url
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """WARNING, ERROR and traceback lines of the server's log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        keys = (" WARNING ", " ERROR ", "Traceback", "Error:", "Exception",
                "Cannot ")
        return [line for line in lines if any(k in line for k in keys)]


def use_source(source: str) -> dict[str, str]:
    """Make ``switchboard`` importable from ``source``, here and in children.

    Other people edit the working tree while benchmarks run, so by default
    a benchmark runs a clean snapshot of a commit (``git archive``); the
    value "worktree" runs the checkout as it is.
    """
    repo = BENCH_DIR.parent
    if source == "worktree":
        path = repo / "src"
        commit = "worktree of " + _git(repo, "rev-parse", "--short", "HEAD")
    else:
        commit = _git(repo, "rev-parse", "--short", source)
        snapshot = Path(tempfile.mkdtemp(prefix=f"bench-src-{commit}-"))
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", commit, "src"],
            check=True, capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
        path = snapshot / "src"
    sys.path.insert(0, str(path))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(path), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return {"source": str(path), "commit": commit}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


# -- CPU and memory -----------------------------------------------------------


def _proc_cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return times.user + times.system
    return 0.0


class CpuProbe:
    """CPU seconds of groups of processes between two snapshots.

    A group is a function returning its processes at snapshot time, so that
    processes that appear meanwhile (a new PostgreSQL backend) are counted
    from zero.
    """

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups

    def snapshot(self) -> dict[str, Any]:
        procs = {name: {p.pid: _proc_cpu(p) for p in find()} for name, find in
                 self.groups.items()}
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return {"procs": procs, "busy": busy, "at": time.monotonic()}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pids in after["procs"].items():
            earlier = before["procs"].get(name, {})
            out[name] = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in pids.items())
            if name == "servers":
                for n, (pid, cpu) in enumerate(pids.items()):
                    out[f"server_{'AB'[n] if n < 2 else n}"] = cpu - earlier.get(pid, 0)
        wall = after["at"] - before["at"]
        out["wall"] = wall
        # Share of the whole machine (all cores) that was busy, in %.
        out["machine_busy_pct"] = 100 * (after["busy"] - before["busy"]) / (
            wall * (psutil.cpu_count() or 1)
        )
        return out


def others_pct(cpu: dict[str, float]) -> float:
    """Machine CPU not used by any probed group, in % of the machine."""
    ours = sum(v for k, v in cpu.items()
               if k not in ("wall", "machine_busy_pct") and not k.startswith("server_"))
    cores = psutil.cpu_count() or 1
    return max(0.0, cpu["machine_busy_pct"] - 100 * ours / (cpu["wall"] * cores))


async def wait_quiet(probe: CpuProbe, limit_pct: float, patience: float) -> float:
    """Wait (up to ``patience`` s) until other processes use < ``limit_pct``.

    Other people's test suites on the same two cores would be blamed on the
    servers under test. Returns the last share seen.
    """
    end = time.monotonic() + patience
    while True:
        before = probe.snapshot()
        await asyncio.sleep(1.0)
        share = others_pct(CpuProbe.delta(before, probe.snapshot()))
        if share < limit_pct or time.monotonic() > end:
            if share >= limit_pct:
                log_line(f"note: other processes use {share:.0f}% of the machine")
            return share


def procs_of(pids: Sequence[int]) -> Callable[[], list[psutil.Process]]:
    def find() -> list[psutil.Process]:
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found

    return find


def redis_procs() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]


def postgres_procs(database: str) -> Callable[[], list[psutil.Process]]:
    """Backends connected to ``database``, and the WAL writer all commits use."""

    def find() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.info["cmdline"] or [])
                if proc.info["name"] != "postgres" and not title.startswith("postgres"):
                    continue
                if f" {database} " in title or "walwriter" in title:
                    found.append(proc)
        return found

    return find


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


async def redis_counters(client: Any) -> dict[str, float]:
    """Commands Redis processed, in total and for the backplane's verbs.

    Redis counts for every client, so another user of the same Redis
    during a run adds to these.
    """
    stats = await client.info("commandstats")
    total = sum(v["calls"] for v in stats.values())
    return {
        "redis_cmds": float(total),
        "redis_publish": float(stats.get("cmdstat_publish", {}).get("calls", 0)),
        "redis_evalsha": float(stats.get("cmdstat_evalsha", {}).get("calls", 0)),
    }


# -- the WebSocket client -----------------------------------------------------


class Link:
    """One client WebSocket; every text frame goes to ``on_text``."""

    __slots__ = ("closed", "on_text", "reader", "ws")

    def __init__(self, ws: ClientConnection, on_text: Callable[[Link, str], None]):
        self.ws = ws
        self.on_text = on_text
        self.closed = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, on_text: Callable[[Link, str], None], compression: bool
    ) -> Link:
        ws = await connect(
            url,
            # Browsers always offer permessage-deflate; --no-compression
            # shows what it costs.
            compression="deflate" if compression else None,
            max_size=2**22,
            # Both protocols have their own heartbeat.
            ping_interval=None,
            open_timeout=30,
            close_timeout=2,
        )
        return cls(ws, on_text)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.on_text(self, message if isinstance(message, str) else
                             message.decode())
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


async def bounded_gather(
    count: int, make: Callable[[int], Awaitable[Any]], concurrency: int = 50
) -> list[Any]:
    """``make(0..count-1)``, at most ``concurrency`` at a time, in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(count)))


# -- messages and what became of them -------------------------------------------


def make_body(message_id: int, intended: float, size: int) -> str:
    """A chat message carrying its id and the time it was due to be sent."""
    head = f"m {message_id} {intended:.6f} "
    return head + "x" * max(0, size - len(head))


def parse_body(body: str) -> tuple[int, float]:
    _, message_id, intended, _ = body.split(" ", 3)
    return int(message_id), float(intended)


class Recorder:
    """Counts every message sent and delivered; latencies per step.

    Latency runs from the time a message was *due* (open loop), not from
    when the generator got round to sending it, so a client or server that
    falls behind shows up in the numbers (no coordinated omission).
    """

    def __init__(self) -> None:
        self.sent = 0
        self.seen = bytearray()
        self.delivered = 0
        self.duplicates = 0
        self.acks = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.latencies: list[float] = []
        self.window = (0.0, 0.0)
        self.in_step = 0

    def next_id(self) -> int:
        message_id = self.sent
        self.sent += 1
        if message_id >= len(self.seen):
            self.seen.extend(bytes(65536))
        return message_id

    def delivered_one(self, message_id: int, intended: float) -> None:
        now = time.monotonic()
        if self.seen[message_id]:
            self.duplicates += 1
            return
        self.seen[message_id] = 1
        self.delivered += 1
        self.in_step += 1
        if self.window[0] <= intended < self.window[1]:
            self.latencies.append(now - intended)

    def ack(self) -> None:
        self.acks += 1

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])

    @property
    def in_flight(self) -> int:
        return self.sent - self.delivered

    def lost(self) -> int:
        return self.sent - self.delivered


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


# -- the open-loop generator and the rate search ------------------------------

Send = Callable[[int, int, float], Awaitable[None]]


@dataclass
class Step:
    offered: float
    duration: float
    sent: int = 0
    delivered: int = 0
    delivered_rate: float = 0.0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    max_ms: float = float("nan")
    undelivered: int = 0
    errors: int = 0
    cut_short: bool = False
    cpu: dict[str, float] = field(default_factory=dict)
    server_cpu_us_per_msg: float = float("nan")
    redis_cpu_us_per_msg: float = float("nan")
    postgres_cpu_us_per_msg: float = float("nan")
    client_cpu_pct: float = float("nan")
    # CPU used by processes outside the benchmark, in % of the machine.
    others_pct: float = float("nan")
    server_rss_mb: list[float] = field(default_factory=list)
    # Backend counters (commits, Redis commands...) per delivered message.
    per_message: dict[str, float] = field(default_factory=dict)
    passed: bool = False

    def line(self) -> str:
        verdict = "ok  " if self.passed else "FAIL"
        return (
            f"{verdict} offered {self.offered:7.0f}/s delivered "
            f"{self.delivered_rate:7.0f}/s  p50 {self.p50_ms:7.1f} p99 "
            f"{self.p99_ms:7.1f} max {self.max_ms:7.1f} ms  server "
            f"{self.server_cpu_us_per_msg:6.0f} us/msg  redis "
            f"{self.redis_cpu_us_per_msg:4.0f} pg {self.postgres_cpu_us_per_msg:4.0f}"
            f"  client {self.client_cpu_pct:3.0f}%  machine "
            f"{self.cpu.get('machine_busy_pct', 0):3.0f}% (others "
            f"{self.others_pct:3.0f}%)  undelivered "
            f"{self.undelivered} errors {self.errors}"
            + ("  (cut short: backlog)" if self.cut_short else "")
        )


class LoadRunner:
    """Open-loop steps of a fixed offered rate over ``senders``."""

    def __init__(
        self,
        recorder: Recorder,
        send: Send,
        senders: int,
        probe: CpuProbe,
        server_pids: Sequence[int],
        body_size: int,
        warmup: float,
        drain: float = 3.0,
        counters: Callable[[], Awaitable[dict[str, float]]] | None = None,
        quiet_pct: float = 15.0,
        quiet_wait: float = 60.0,
        retries: int = 1,
    ) -> None:
        self.recorder = recorder
        self.send = send
        self.senders = senders
        self.probe = probe
        self.server_pids = list(server_pids)
        self.body_size = body_size
        self.warmup = warmup
        self.drain = drain
        self.counters = counters
        self.quiet_pct = quiet_pct
        self.quiet_wait = quiet_wait
        self.retries = retries

    async def step(
        self,
        rate: float,
        duration: float,
        on_start: Callable[[], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> Step:
        rec = self.recorder
        result = Step(offered=rate, duration=duration)
        await self._settle()

        gc.collect()
        gc.disable()  # a collection pause in the client would be blamed on servers
        rec.latencies = []
        rec.in_step = 0
        errors_before = rec.errors
        first_id = rec.sent
        total = int(rate * duration)
        # Beyond two seconds of backlog p99 is lost anyway; stop adding to
        # it so that neither side buffers without bound.
        max_backlog = max(500, int(rate * 2))

        counted = await self.counters() if self.counters else {}
        if on_start is not None:
            on_start()
        before = self.probe.snapshot()
        t0 = time.monotonic()
        rec.window = (t0 + self.warmup, t0 + duration)
        i = 0
        try:
            while i < total:
                due = min(total, int((time.monotonic() - t0) * rate) + 1)
                if rec.in_flight > max_backlog:
                    result.cut_short = True
                    break
                while i < due:
                    intended = t0 + i / rate
                    message_id = rec.next_id()
                    await self.send(i % self.senders, message_id, intended)
                    i += 1
                delay = t0 + i / rate - time.monotonic()
                await asyncio.sleep(max(0.0, delay))

            # Wait for the stragglers, within bounds.
            end = time.monotonic() + self.drain
            while rec.in_flight > 0 and time.monotonic() < end:
                await asyncio.sleep(0.01)
            after = self.probe.snapshot()
            if on_end is not None:
                on_end()
        finally:
            gc.enable()
        if self.counters:
            now = await self.counters()
            result.per_message = {
                k: round((now[k] - counted.get(k, 0.0)) / max(rec.in_step, 1), 3)
                for k in now
            }

        result.sent = rec.sent - first_id
        result.delivered = rec.in_step
        # This step's messages that never arrived (not earlier steps').
        result.undelivered = rec.seen[first_id:rec.sent].count(0)
        result.errors = rec.errors - errors_before
        elapsed = duration if not result.cut_short else after["at"] - before["at"]
        result.delivered_rate = result.delivered / elapsed

        values = sorted(rec.latencies)
        result.p50_ms = 1000 * percentile(values, 0.50)
        result.p90_ms = 1000 * percentile(values, 0.90)
        result.p99_ms = 1000 * percentile(values, 0.99)
        result.p999_ms = 1000 * percentile(values, 0.999)
        result.max_ms = 1000 * values[-1] if values else float("nan")

        cpu = CpuProbe.delta(before, after)
        result.cpu = cpu
        per = 1e6 / max(result.delivered, 1)
        result.server_cpu_us_per_msg = cpu.get("servers", 0.0) * per
        result.redis_cpu_us_per_msg = cpu.get("redis", 0.0) * per
        result.postgres_cpu_us_per_msg = cpu.get("postgres", 0.0) * per
        result.client_cpu_pct = 100 * cpu.get("client", 0.0) / cpu["wall"]
        result.others_pct = others_pct(cpu)
        result.server_rss_mb = [round(rss(pid) / 2**20, 1) for pid in self.server_pids]

        result.passed = (
            not result.cut_short
            and result.undelivered == 0
            and result.errors == 0
            and result.delivered >= 0.99 * result.sent
            and result.p99_ms < P99_BOUND_MS
        )
        return result

    async def _settle(self) -> None:
        # Start each step from an empty pipe: late messages of the previous
        # step would otherwise be counted here.
        end = time.monotonic() + self.drain
        while self.recorder.in_flight > 0 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        await wait_quiet(self.probe, self.quiet_pct, self.quiet_wait)

    async def background(self, seconds: float = 3.0) -> dict[str, float]:
        """CPU use (% of one core) of each group with no load at all."""
        before = self.probe.snapshot()
        await asyncio.sleep(seconds)
        cpu = CpuProbe.delta(before, self.probe.snapshot())
        return {k: round(100 * v / cpu["wall"], 1) for k, v in cpu.items()
                if k not in ("wall", "machine_busy_pct")}

    async def search(
        self,
        start: float,
        factor: float,
        max_steps: int,
        duration: float,
        log: Callable[[str], None],
        time_budget: float,
    ) -> list[Step]:
        """Step the offered rate up by ``factor`` until two steps in a row
        fail (one failure may be noise, and batching can make a higher rate
        pass where a lower one did not), then bisect geometrically between
        the best pass and the first failure above it.
        """
        steps: list[Step] = []
        rate = start
        failures_in_a_row = 0
        climbing = True
        began = time.monotonic()
        while len(steps) < max_steps and time.monotonic() - began < time_budget:
            step = await self.step(rate, duration)
            for _ in range(self.retries):
                # A step failed while other people's work shared the cores
                # says little about the servers: try it again, once quiet.
                if step.passed or step.others_pct < self.quiet_pct:
                    break
                log(step.line() + "  -> busy machine, again")
                step = await self.step(rate, duration)
            steps.append(step)
            log(step.line())
            if not step.passed and (step.errors or (
                    step.undelivered and not step.cut_short
                    and step.p99_ms < P99_BOUND_MS)):
                # Losses or errors at a rate the servers keep up with are a
                # bug, not a limit: stop and report.
                log("stopping: errors or lost messages below saturation")
                break

            failures_in_a_row = 0 if step.passed else failures_in_a_row + 1
            if step.cut_short:
                failures_in_a_row = 2  # far past the limit already
            if climbing and failures_in_a_row < 2:
                rate *= factor
                continue
            climbing = False

            good = max((s.offered for s in steps if s.passed), default=None)
            if good is None:
                rate = min(s.offered for s in steps) / factor
                if rate < 10:
                    break
                continue
            above = [s.offered for s in steps if not s.passed and s.offered > good]
            if not above or min(above) / good < 1.12:
                break
            rate = round((good * min(above)) ** 0.5)
        return steps


# -- idle connections ---------------------------------------------------------


@dataclass
class IdleResult:
    connections: int
    server_rss_before_mb: float
    server_rss_after_mb: float
    per_connection_kib: float
    open_seconds: float


async def measure_idle(
    count: int,
    open_one: Callable[[int], Awaitable[Link]],
    server_pid: int,
    log: Callable[[str], None],
    settle: float = 3.0,
) -> tuple[IdleResult, list[Link]]:
    """Open ``count`` idle connections to one server; RSS delta per link."""
    # Warm up first: imports, pools and caches that the first connections
    # create are not a per-connection cost.
    warm = await bounded_gather(20, open_one)
    await asyncio.sleep(1.0)
    for link in warm:
        await link.close()
    await asyncio.sleep(1.5)

    before = rss(server_pid)
    began = time.monotonic()
    links = await bounded_gather(count, open_one)
    opened = time.monotonic() - began
    await asyncio.sleep(settle)
    after = rss(server_pid)
    alive = sum(not link.closed for link in links)
    if alive != count:
        log(f"warning: only {alive} of {count} idle connections are still open")
    result = IdleResult(
        connections=alive,
        server_rss_before_mb=round(before / 2**20, 1),
        server_rss_after_mb=round(after / 2**20, 1),
        per_connection_kib=round((after - before) / 1024 / max(alive, 1), 1),
        open_seconds=round(opened, 2),
    )
    return result, links


async def close_all(links: Sequence[Link]) -> None:
    await bounded_gather(len(links), lambda i: links[i].close(), concurrency=200)


# -- profiling ----------------------------------------------------------------


def profiled(command: list[str], out: Path | None) -> list[str]:
    """``command`` (a Python command) run under bench/profiled.py, if ``out``."""
    if out is None:
        return command
    out.parent.mkdir(parents=True, exist_ok=True)
    return [command[0], str(BENCH_DIR / "profiled.py"), str(out), *command[1:]]


async def profile_step(
    runner: LoadRunner,
    pids: Sequence[int],
    outs: Sequence[Path],
    rate: float,
    duration: float,
    report: Path,
) -> Step:
    """One more step with cProfile on in every server; write a summary."""

    def switch(signum: int) -> None:
        for pid in pids:
            os.kill(pid, signum)

    step = await runner.step(
        rate, duration,
        on_start=lambda: switch(signal.SIGUSR1),
        on_end=lambda: switch(signal.SIGUSR2),
    )
    await asyncio.sleep(2)  # the servers write their statistics
    subprocess.run(
        [sys.executable, str(BENCH_DIR / "profile_report.py"), *map(str, outs),
         "--messages", str(step.delivered)],
        stdout=report.open("w"), check=False,
    )
    return step


# -- output -------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value.__dict__

    path.write_text(json.dumps(data, indent=2, default=plain) + "\n")


def best(steps: Sequence[Step]) -> Step | None:
    passing = [s for s in steps if s.passed]
    return max(passing, key=lambda s: s.delivered_rate) if passing else None


def log_line(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, flush=True)
