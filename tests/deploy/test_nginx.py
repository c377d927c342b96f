"""nginx in front of a cluster: the shipped config, the test helper, the script."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from switchboard.client import Client
from switchboard.config import Settings
from tests.conftest import REPO_ROOT, free_port
from tests.harness import AppServer
from tests.nginx import Nginx, nginx_binary, temp_paths

DEPLOY_CONF = REPO_ROOT / "deploy" / "nginx.conf"
CLUSTER_SCRIPT = REPO_ROOT / "scripts" / "cluster"
PLACEHOLDER = re.compile(r"APP_SERVER_(\d+):\d+")


def deploy_config(workdir: Path, upstream_ports: list[int], port: int) -> str:
    """``deploy/nginx.conf`` with its placeholders filled, paths in ``workdir``.

    ``APP_SERVER_n`` becomes the n-th upstream port; placeholder lines beyond
    the ports given are dropped. nginx listens on 127.0.0.1:``port`` instead
    of port 80, which only root may bind, even for ``nginx -t``.
    """
    lines = []
    for line in DEPLOY_CONF.read_text().splitlines(keepends=True):
        found = PLACEHOLDER.search(line)
        if found and not line.lstrip().startswith("#"):
            n = int(found[1])
            if n > len(upstream_ports):
                continue
            line = line.replace(found[0], f"127.0.0.1:{upstream_ports[n - 1]}")
        lines.append(line)
    text = "".join(lines)

    text = re.sub(r"^\s*listen \[::\]:80;.*\n", "", text, flags=re.M)
    text = re.sub(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{port};", text, flags=re.M)
    text = text.replace("CHAT.EXAMPLE.COM", "localhost")
    text = text.replace("/run/nginx.pid", f"{workdir}/nginx.pid")
    text = text.replace("/var/log/nginx/", f"{workdir}/")
    listens = [x.strip() for x in text.splitlines() if x.strip().startswith("listen")]
    assert listens == [f"listen 127.0.0.1:{port};"], listens

    # Where a non-root user may write its temporary files.
    return text.replace("http {\n", f"http {{\n{temp_paths(workdir)}", 1)


def ws_read_timeout(config: str) -> float:
    """``proxy_read_timeout`` of ``location = /ws``, in seconds."""
    block = config[config.index("location = /ws") :]
    block = block[: block.index("}")]
    found = re.search(r"^\s*proxy_read_timeout\s+(\d+)s;", block, re.M)
    assert found, "location = /ws sets no proxy_read_timeout in seconds"
    return float(found[1])


def test_deploy_config_passes_nginx_test(tmp_path: Path) -> None:
    original = DEPLOY_CONF.read_text()
    assert PLACEHOLDER.search(original), "the upstream placeholders are gone"
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(deploy_config(tmp_path, [8001, 8002, 8003], free_port()))

    done = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_deploy_config_balances_websockets_without_sticky_sessions() -> None:
    config = "\n".join(
        line.split("#")[0] for line in DEPLOY_CONF.read_text().splitlines()
    )

    assert "least_conn;" in config
    for sticky in ("ip_hash", "hash ", "sticky"):
        assert sticky not in config
    assert "proxy_http_version 1.1;" in config
    assert "map $http_upgrade $connection_upgrade" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    assert re.search(r"proxy_next_upstream\s+error timeout", config)
    assert re.search(r"max_fails=\d+ fail_timeout=\d+s", config)


def test_deploy_config_outlasts_the_heartbeat_timeout() -> None:
    # nginx must never close a quiet chat before the app server would.
    default = Settings.model_fields["heartbeat_timeout"].default

    assert ws_read_timeout(DEPLOY_CONF.read_text()) > 2 * default


# -- behind nginx, for real -------------------------------------------------


@pytest.fixture
def two_servers(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[list[AppServer]]:
    servers: list[AppServer] = []
    try:
        for _ in range(2):
            server = AppServer(
                pg_url, tmp_path, redis_url=redis_url, redis_prefix=prefix
            )
            servers.append(server)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def server_ids(two_servers: list[AppServer]) -> set[str]:
    return {server.get("/healthz").json()["server"] for server in two_servers}


@pytest.fixture
def start_nginx(
    two_servers: list[AppServer], tmp_path: Path
) -> Iterator[Callable[[type[Nginx]], Nginx]]:
    started: list[Nginx] = []

    def start(kind: type[Nginx] = Nginx) -> Nginx:
        proxy = kind([server.port for server in two_servers], tmp_path / "nginx")
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


async def welcomes(url: str, count: int) -> list[str]:
    """The ``welcome.server`` of ``count`` connections opened one by one."""
    clients: list[Client] = []
    try:
        for _ in range(count):
            clients.append(await Client.connect(url))
        return [client.welcome["server"] for client in clients]
    finally:
        for client in clients:
            await client.close()


@pytest.mark.cluster
async def test_consecutive_websockets_alternate_between_servers(
    start_nginx: Callable[[type[Nginx]], Nginx], server_ids: set[str]
) -> None:
    proxy = start_nginx(Nginx)

    seen = await welcomes(proxy.ws_url, 4)

    assert set(seen) == server_ids
    assert all(a != b for a, b in pairwise(seen)), seen


class DeployNginx(Nginx):
    """nginx running ``deploy/nginx.conf`` itself, on a loopback port."""

    def config(self) -> str:
        return deploy_config(self.workdir, self.upstream_ports, self.port)


@pytest.mark.cluster
async def test_deploy_config_spreads_websockets_over_servers(
    start_nginx: Callable[[type[Nginx]], Nginx], server_ids: set[str]
) -> None:
    # least_conn: while the first connections stay open, the next one goes
    # to the server holding fewer.
    proxy = start_nginx(DeployNginx)

    seen = await welcomes(proxy.ws_url, 4)

    assert set(seen) == server_ids
    assert sorted(seen.count(server) for server in server_ids) == [2, 2]


# -- scripts/cluster ---------------------------------------------------------


def session_members(session: int) -> list[int]:
    """Live processes (zombies aside) of one session, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # After the command name, in parentheses: state, ppid, pgrp, session.
        fields = stat.rpartition(")")[2].split()
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.cluster
def test_cluster_script_serves_through_nginx_and_stops_on_sigterm(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    nginx_binary()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SWITCHBOARD_REDIS_PREFIX": prefix,
        # The script's work directory, so that its removal can be checked.
        "TMPDIR": str(tmp_path),
    }
    log = tmp_path / "cluster.out"
    with log.open("wb") as out:
        # A session of its own: whatever the script starts stays in it,
        # which is how leftovers are found.
        process = subprocess.Popen(
            [str(CLUSTER_SCRIPT), "-n", "2", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def output() -> str:
        return log.read_text(errors="replace")

    try:
        # Serving: the script prints its banner once nginx proxies /healthz.
        assert wait_until(
            lambda: "Ctrl-C stops everything" in output() or process.poll() is not None,
            120,
        ), output()
        assert process.poll() is None, output()
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert response.status_code == 200
        assert response.headers["server"].startswith("nginx")
        assert response.json()["status"] == "ok"
        assert "alice" in output()

        # Stopping: every process of the session goes, and the temp dir too.
        process.send_signal(signal.SIGTERM)
        assert process.wait(40) == 128 + signal.SIGTERM, output()
        assert wait_until(lambda: not session_members(process.pid), 15)
        assert not accepts(port)
        assert not list(tmp_path.glob("switchboard-cluster.*"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if session_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
