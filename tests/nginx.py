"""nginx in front of real app servers, for tests: a subprocess on a free port.

The generated configuration has the shape of ``deploy/nginx.conf`` with two
test-only differences: plain round robin instead of ``least_conn``, so that
consecutive connections land on different app servers whatever they hold,
and every path (logs, pid, temporary files) inside the work directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

__all__ = ["Nginx", "nginx_binary"]

# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]
)


def nginx_binary() -> str:
    """The nginx executable; fails the test with what to install if none."""
    found = shutil.which("nginx", path=_SEARCH_PATH)
    if found is None:
        pytest.fail(
            "nginx is not installed: install it (e.g. 'apt-get install nginx') "
            "and rerun",
            pytrace=False,
        )
    return found


def temp_paths(workdir: Path) -> str:
    """``*_temp_path`` directives for an ``http`` block, inside ``workdir``.

    The compiled-in defaults are under /var/lib/nginx, which only root may
    create.
    """
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return "".join(f"    {kind}_temp_path {workdir}/tmp/{kind};\n" for kind in kinds)


def _servers(ports: Iterable[int]) -> str:
    return "".join(
        f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n"
        for port in ports
    )


class Nginx:
    """nginx balancing ``upstream_ports``; ``stop()`` always reaps it."""

    def __init__(self, upstream_ports: list[int], workdir: Path) -> None:
        from tests.conftest import free_port

        self.upstream_ports = list(upstream_ports)
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def config(self) -> str:
        """The nginx.conf to run; tests may override it."""
        work = self.workdir
        return f"""\
# One worker, so that the round robin below is one sequence for the test.
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {work}/access.log;
{temp_paths(work)}
    # Workers of an nginx started by root run as nobody, who cannot enter
    # the test's private work directory: keep bodies out of temp files.
    client_body_buffer_size 1m;
    client_max_body_size 1m;
    proxy_max_temp_file_size 0;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}

    upstream switchboard {{
        zone switchboard 64k;
{_servers(self.upstream_ports)}        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{self.port};

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_connect_timeout 5s;
        proxy_next_upstream error timeout http_502 http_504;

        location / {{
            proxy_pass http://switchboard;
        }}

        location = /ws {{
            proxy_pass http://switchboard;
            proxy_read_timeout 120s;
            proxy_buffering off;
        }}
    }}
}}
"""

    def start(self, timeout: float = 20.0) -> Nginx:
        binary = nginx_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())

        # A session of its own, so that stop() can reach the workers even
        # if the master has to be killed.
        log = (self.workdir / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        # Listening is not enough: /healthz must come back from an app server.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self._logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"nginx did not proxy /healthz in {timeout} s:\n{self._logs()}"
        )

    def _logs(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return

        # SIGTERM is nginx's fast shutdown: open WebSockets are cut at once,
        # and the master exits only after its workers.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
            return
        except subprocess.TimeoutExpired:
            pass

        # Stuck: kill the whole session, workers included. The master is
        # not reaped yet, so its group id still names these processes.
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
