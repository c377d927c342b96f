"""Find or start the Redis and PostgreSQL servers the test suite talks to.

``services.py up DIR`` prints shell ``export`` lines for ``REDIS_URL`` and
``DATABASE_URL``. For each server it takes, in order:

1. the URL already in the environment, which must be reachable;
2. the local default (127.0.0.1:6379, and 127.0.0.1:5432 as user postgres,
   database test) when it answers;
3. a throwaway server on a free loopback port, with its files in ``DIR``,
   installed with apt-get first when missing and running as root.

``SWITCHBOARD_TEST_SERVICES=throwaway`` skips step 2, for a run that must
not share the local servers with anyone else.

``services.py down DIR`` stops whatever ``up`` started in ``DIR``. Both
commands run with the project's virtual environment, which has redis-py and
asyncpg.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import redis

__all__ = ["main"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT = 30.0  # seconds


class ServiceError(Exception):
    """A server is neither reachable nor startable; the message says why."""


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(*packages: str) -> None:
    if not is_root() or shutil.which("apt-get") is None:
        raise ServiceError(
            f"missing {' '.join(packages)}: install it and rerun, or set "
            "REDIS_URL / DATABASE_URL to servers that are running"
        )
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-q"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get install {' '.join(packages)}")
    for args in (["update"], ["install", "-y", "--no-install-recommends"]):
        command = [*apt, *args, *(packages if args[0] == "install" else ())]
        if subprocess.run(command, stdout=sys.stderr, env=env).returncode:
            raise ServiceError(f"{' '.join(command)} failed")


# Probes speak each server's own protocol: an open port alone may belong to
# a server that refuses our user or lacks the database.


def redis_error(url: str) -> str | None:
    """Why ``url`` does not answer PING, or None when it does."""
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def asyncpg_dsn(url: str) -> str:
    # SQLAlchemy spells the driver into the scheme; asyncpg does not.
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


async def _postgres_execute(url: str, statement: str | None) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        if statement is not None:
            await connection.execute(statement)
    finally:
        await connection.close()


def postgres_error(url: str) -> str | None:
    """Why ``url`` refuses a connection, or None when it accepts one."""
    try:
        asyncio.run(_postgres_execute(url, None))
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return str(exc) or type(exc).__name__
    return None


def wait_until(ready: str, check: Callable[[], str | None], log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while (error := check()) is not None:
        if time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise ServiceError(f"{ready} did not start: {error}\n{tail}")
        time.sleep(0.2)


def start_redis(state: Path) -> str:
    server = shutil.which("redis-server")
    if server is None:
        apt_install("redis-server")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"

    port = free_port()
    data = state / "redis"
    data.mkdir()
    log_file = state / "redis.log"
    command = [
        server,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "yes",
        "--pidfile", str(state / "redis.pid"),
        "--dir", str(data),
        "--logfile", str(log_file),
    ]  # fmt: skip
    log(f"starting a throwaway redis-server on port {port}")
    if subprocess.run(command, stdout=sys.stderr).returncode:
        raise ServiceError("redis-server failed to start")

    url = f"redis://127.0.0.1:{port}/0"
    wait_until("redis-server", lambda: redis_error(url), log_file)
    return url


def postgres_bindir() -> Path | None:
    # Debian keeps each major version's server programs off PATH.
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_user() -> list[str]:
    """The command prefix that runs PostgreSQL programs as a non-root user."""
    if not is_root():
        return []

    # PostgreSQL refuses to run as root; the Debian package makes this user.
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "postgres"], check=True
        )
    return ["runuser", "-u", "postgres", "--"]


def start_postgres(state: Path) -> str:
    bindir = postgres_bindir()
    if bindir is None:
        apt_install("postgresql")
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError("postgresql installed but initdb not found")

    as_user = postgres_user()
    home = state / "postgres"
    data = home / "data"
    log_file = home / "server.log"
    home.mkdir()
    if as_user:
        # The postgres user must reach its files through our directory.
        state.chmod(0o755)
        shutil.chown(home, "postgres", "postgres")

    port = free_port()
    log(f"starting a throwaway PostgreSQL on port {port}")
    initdb = [
        str(bindir / "initdb"),
        "--pgdata", str(data),
        "--username", "postgres",
        "--auth", "trust",
        "--encoding", "UTF8",
        "--locale", "C",
        "--no-sync",
    ]  # fmt: skip
    run_logged([*as_user, *initdb], log_file)

    # Durability is pointless for a server deleted after the run; the Unix
    # socket is off because a long TMPDIR can exceed its path limit.
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
        "'' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [
        str(bindir / "pg_ctl"),
        "--pgdata", str(data),
        "--log", str(log_file),
        "--options", options,
        "--wait",
        "--timeout", str(int(START_TIMEOUT)),
        "start",
    ]  # fmt: skip
    run_logged([*as_user, *pg_ctl], log_file)

    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wait_until("PostgreSQL", lambda: postgres_error(admin), log_file)
    asyncio.run(_postgres_execute(admin, "CREATE DATABASE test"))
    return f"postgresql://postgres@127.0.0.1:{port}/test"


def run_logged(command: list[str], log_file: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        output = (result.stdout + result.stderr)[-2000:]
        raise ServiceError(f"{shlex.join(command)} failed:\n{output}{tail}")


def resolve(
    name: str,
    variable: str,
    default: str,
    error: Callable[[str], str | None],
    start: Callable[[Path], str],
    state: Path,
) -> str:
    given = os.environ.get(variable)
    if given:
        if (reason := error(given)) is not None:
            raise ServiceError(f"{variable}={given} is not reachable: {reason}")
        return given

    if os.environ.get("SWITCHBOARD_TEST_SERVICES") != "throwaway":
        if error(default) is None:
            return default
        log(f"no {name} at {default}")
    return start(state)


def up(state: Path) -> None:
    redis_url = resolve(
        "Redis", "REDIS_URL", DEFAULT_REDIS_URL, redis_error, start_redis, state
    )
    database_url = resolve(
        "PostgreSQL",
        "DATABASE_URL",
        DEFAULT_DATABASE_URL,
        postgres_error,
        start_postgres,
        state,
    )
    print(f"export REDIS_URL={shlex.quote(redis_url)}")
    print(f"export DATABASE_URL={shlex.quote(database_url)}")


def stop(pid_file: Path, sig: signal.Signals) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, sig)
    except (OSError, ValueError, IndexError):
        return  # never started, or already gone

    # The servers daemonized, so they are not our children: poll.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def down(state: Path) -> None:
    stop(state / "redis.pid", signal.SIGTERM)
    # SIGINT is PostgreSQL's "fast" shutdown: no waiting for clients.
    stop(state / "postgres" / "data" / "postmaster.pid", signal.SIGINT)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: services.py up|down STATE_DIR", file=sys.stderr)
        return 2
    state = Path(argv[1])
    try:
        up(state) if argv[0] == "up" else down(state)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
