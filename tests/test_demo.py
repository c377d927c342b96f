"""`switchboard demo`: starts with demo data and keeps it through SIGKILL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from switchboard.client import Client
from tests.chat.test_chat import send_through_a_kill
from tests.conftest import free_port

# What the demo promises in its output, written out here rather than taken
# from the code that prints it.
DEMO_LOGINS = [("alice", "alice-demo"), ("bob", "bob-demo"), ("carol", "carol-demo")]


def start_demo(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "switchboard", "demo",
                "--host", "127.0.0.1", "--port", str(port),
                "--data-dir", str(data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SWITCHBOARD_HEARTBEAT_INTERVAL": "1",
                 "SWITCHBOARD_HEARTBEAT_TIMEOUT": "3"},
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"demo did not start:\n{log.read_text()}")


async def test_demo_keeps_every_acknowledged_message_through_sigkill(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    demo = start_demo(tmp_path / "data", port, log)
    try:
        # The demo tells a person where to go and how to sign in: both
        # pages, and every agent's login, each of which works.
        base = f"http://127.0.0.1:{port}"
        urls = re.findall(r"https?://\S+", log.read_text())
        assert f"{base}/" in urls
        assert f"{base}/console" in urls
        logins = re.findall(r"(\w+) / (\S+?)(?:,|$)", log.read_text(), re.M)
        assert set(DEMO_LOGINS) <= set(logins)

        async with httpx.AsyncClient(base_url=base) as http:
            for url in (f"{base}/", f"{base}/console"):
                page = await http.get(url)
                assert page.status_code == 200
                assert "text/html" in page.headers["content-type"]
            tokens = []
            for name, password in DEMO_LOGINS:
                login = await http.post(
                    "/api/login", json={"login": name, "password": password}
                )
                assert login.status_code == 200, name
                tokens.append(login.json()["token"])
            token = tokens[0]
            found = await http.get(
                "/api/products?limit=100",
                headers={"Authorization": f"Bearer {token}"},
            )
        products = found.json()["products"]
        assert len(products) >= 50

        customer = await Client.connect(f"ws://127.0.0.1:{port}/ws", name="Kim")
        conv = (await customer.start())["id"]

        def kill() -> None:
            demo.kill()
            demo.wait()

        acked, sent = await send_through_a_kill(customer, conv, kill, after=25)
        await customer.close()
        assert len(acked) < sent  # some were in flight when the demo died
        demo = start_demo(tmp_path / "data", port, log)

        back = await Client.connect(f"ws://127.0.0.1:{port}/ws", token=customer.token)
        try:
            await back.start(after_seq=0)
            kept = {seq: frame["body"] for seq, frame in back.messages[conv].items()}
            # Unacknowledged messages may or may not have been stored.
            lost = {s: body for s, body in acked.items() if kept.get(s) != body}
            assert not lost
        finally:
            await back.close()
    finally:
        demo.kill()
        demo.wait()
