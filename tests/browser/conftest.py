"""Browser tests: the real demo server, driven through Debian's Chromium.

Each test gets its own ``switchboard demo`` process on a free loopback port
with its own data folder, so agents' statuses and conversations never leak
from one test into the next. Chromium is the system one; Playwright never
downloads a browser here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    expect,
    sync_playwright,
)

from tests.conftest import free_port

__all__ = ["TIMEOUT_MS", "DemoServer", "Session"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# The one time unit of these tests: how long anything may take to show up.
# It bounds waits only; nothing asserts how fast something happened.
TIMEOUT_MS = int(os.environ.get("SWITCHBOARD_BROWSER_TIMEOUT_MS", "20000"))
STARTUP_S = 60

expect.set_options(timeout=TIMEOUT_MS)


class DemoServer:
    """``switchboard demo`` in a subprocess; restartable on the same port."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DemoServer:
        command = [
            sys.executable,
            "-m",
            "switchboard",
            "demo",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        self._wait_until_healthy()
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the demo server exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the demo server did not become healthy; see {self.log_path}")


class Session:
    """Browser contexts of one test, each a separate person, closed at the end.

    Every page's dialogs and uncaught errors are recorded: a test fails if
    any script error happened, and can assert that no dialog opened.
    """

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def context(self, **options: object) -> BrowserContext:
        context = self.browser.new_context(base_url=self.base_url, **options)  # type: ignore[arg-type]
        context.set_default_timeout(TIMEOUT_MS)
        context.on("page", self._watch)
        self.contexts.append(context)
        return context

    def page(self, **options: object) -> Page:
        return self.context(**options).new_page()

    def _watch(self, page: Page) -> None:
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the demo server; override in a test module."""
    return {}


@pytest.fixture
def server(
    tmp_path: Path,
    output_dir: Path,
    request: pytest.FixtureRequest,
    server_env: dict[str, str],
) -> Iterator[DemoServer]:
    log_path = output_dir / f"browser-{request.node.name}.log"
    log_path.unlink(missing_ok=True)
    demo = DemoServer(tmp_path / "data", log_path, server_env).start()
    try:
        yield demo
    finally:
        demo.stop()


@pytest.fixture
def session(browser: Browser, server: DemoServer) -> Iterator[Session]:
    people = Session(browser, server.url)
    try:
        yield people
        assert not people.errors, f"script errors: {people.errors}"
    finally:
        people.close()


@pytest.fixture
def shot(
    output_dir: Path, request: pytest.FixtureRequest
) -> Callable[[Page, str], Path]:
    """Save a screenshot under test-output/screenshots/."""
    folder = output_dir / "screenshots"
    folder.mkdir(exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = folder / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path))
        return path

    return take
