"""The ``switchboard`` command line."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

import click
import uvicorn
from pydantic import SecretStr, ValidationError

from .auth import hash_password
from .config import Settings
from .errors import StoreError, SwitchboardError
from .protocol.frames import max_frame_size

__all__ = ["main"]

logger = logging.getLogger("switchboard.cli")

DEMO_AGENTS = (
    ("alice", "Alice Martin", "alice-demo"),
    ("bob", "Bob Okafor", "bob-demo"),
    ("carol", "Carol Nguyen", "carol-demo"),
)


def _settings(**overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise click.UsageError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"invalid {where}: {message}" if where else f"invalid settings: {message}"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries(logging.getLogger().level)


def _quiet_libraries(level: int) -> None:
    # Uvicorn logs every connection at INFO and Alembic every plugin: keep
    # INFO for what an operator acts on (start, config, degraded, recovered).
    if level > logging.DEBUG:
        for name in ("uvicorn", "uvicorn.error", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except SwitchboardError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="switchboard")
def main() -> None:
    """Switchboard: customer-service live chat for web shops."""


# -- serving --------------------------------------------------------------


def _serve(settings: Settings, *, demo: bool, log_level: str) -> None:
    from .gateway import create_app

    app = create_app(settings, demo=demo)
    level = logging.getLogger().level
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        # Liveness is the protocol's own heartbeat, one mechanism for
        # every transport; transport pings would only double the traffic.
        ws_ping_interval=None,
        # A little over the protocol's own limit, so that an oversized
        # frame gets the protocol's error frame rather than a close.
        ws_max_size=max_frame_size(settings.max_body) + 1024,
        # Chat frames are small, so per-message deflate saves little on the
        # wire while costing every connection its compression windows
        # (about 40 KiB idle) and every frame its CPU.
        ws_per_message_deflate=False,
        # Frames read ahead of the chat service per connection: bounded.
        ws_max_queue=32,
        lifespan="on",
        access_log=False,
    )
    # uvicorn.Config sets its loggers' levels; quiet them again (see
    # _setup_logging) now that it has.
    _quiet_libraries(level)
    uvicorn.Server(config).run()


@main.command()
@click.option("--host", help="[env SWITCHBOARD_HOST; default 127.0.0.1]")
@click.option("--port", type=int, help="[env SWITCHBOARD_PORT; default 8000]")
@click.option(
    "--data-dir",
    default="switchboard-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its SQLite database and secret key.",
)
@click.option("--log-level", default="info", show_default=True)
def demo(host: str | None, port: int | None, data_dir: Path, log_level: str) -> None:
    """Run the demo: one process, SQLite, demo shop and agents."""
    _setup_logging(log_level)
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32))
        key_file.chmod(0o600)

    settings = _settings(
        host=host,
        port=port,
        database_url=f"sqlite:///{(data_dir / 'switchboard.db').resolve()}",
        secret_key=SecretStr(key_file.read_text().strip()),
    )
    _run(seed_demo(settings))

    base = f"http://{settings.host}:{settings.port}"
    click.echo(f"\nDemo shop:      {base}/")
    click.echo(f"Agent console:  {base}/console")
    click.echo("Agent logins:   " + ", ".join(f"{a} / {p}" for a, _, p in DEMO_AGENTS))
    click.echo("")
    _serve(settings, demo=True, log_level=log_level)


async def seed_demo(settings: Settings) -> None:
    """Migrate, then create the demo agents and customers that are missing.

    Safe to run from several servers at once: a login another one created
    first is simply skipped.
    """
    from .commerce.demo import DEMO_CUSTOMERS
    from .store.migrate import upgrade
    from .store.sql import SqlStore

    await upgrade(settings.database_url)
    store = SqlStore(settings.database_url)
    await store.open()
    try:
        for login, name, password in DEMO_AGENTS:
            if await store.agent_by_login(login) is not None:
                continue
            secret = hash_password(password)
            try:
                await store.create_agent(login, name, secret, settings.agent_capacity)
            except StoreError:
                if await store.agent_by_login(login) is None:
                    raise
        for customer in DEMO_CUSTOMERS:
            await store.customer_by_external_id(
                customer.external_id, customer.name, customer.email
            )
    finally:
        await store.close()


@main.command()
@click.option("--host", help="[env SWITCHBOARD_HOST; default 127.0.0.1]")
@click.option("--port", type=int, help="[env SWITCHBOARD_PORT; default 8000]")
@click.option("--database-url", help="[env SWITCHBOARD_DATABASE_URL]")
@click.option("--redis-url", help="Run in a cluster. [env SWITCHBOARD_REDIS_URL]")
@click.option("--secret-key", help="[env SWITCHBOARD_SECRET_KEY; required]")
@click.option("--heartbeat-interval", type=float, help="Seconds between pings.")
@click.option("--heartbeat-timeout", type=float, help="Silence that closes.")
@click.option("--max-body", type=int, help="Longest message, in characters.")
@click.option("--commerce-url", help="The shop's API; default the demo data.")
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Run database migrations before serving.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Create the demo agents and customers if missing, and serve the "
    "demo shop's sign-in helpers (for trying a cluster, not production).",
)
@click.option("--log-level", default="info", show_default=True)
def serve(
    migrate: bool,
    demo: bool,
    log_level: str,
    secret_key: str | None,
    **options: Any,
) -> None:
    """Run one app server (production)."""
    _setup_logging(log_level)
    if secret_key is not None:
        options["secret_key"] = SecretStr(secret_key)
    settings = _settings(**options)
    if not settings.secret_key.get_secret_value():
        raise click.UsageError("--secret-key or SWITCHBOARD_SECRET_KEY is required")
    if demo:
        _run(seed_demo(settings))
    elif migrate:
        from .store.migrate import upgrade

        _run(upgrade(settings.database_url))
    _serve(settings, demo=demo, log_level=log_level)


# -- database -------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option("--database-url", help="[env SWITCHBOARD_DATABASE_URL]")
def upgrade(database_url: str | None) -> None:
    """Run the migrations up to the latest schema."""
    from .store.migrate import upgrade as run_upgrade

    settings = _settings(database_url=database_url)
    _run(run_upgrade(settings.database_url))
    click.echo("database is up to date")


# -- agents ---------------------------------------------------------------


@main.group()
def agents() -> None:
    """Agent accounts."""


async def _with_store(database_url: str | None, work: Any) -> Any:
    from .store.sql import SqlStore

    store = SqlStore(_settings(database_url=database_url).database_url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _password(password: str | None) -> str:
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.UsageError("the password must have at least 8 characters")
    return password


@agents.command("add")
@click.argument("login")
@click.option("--name", required=True)
@click.option("--capacity", type=click.IntRange(1, 1000), default=None)
@click.option("--password", help="Prompted for when omitted.")
@click.option("--database-url", help="[env SWITCHBOARD_DATABASE_URL]")
def agents_add(
    login: str,
    name: str,
    capacity: int | None,
    password: str | None,
    database_url: str | None,
) -> None:
    """Create an agent."""
    secret = hash_password(_password(password))
    cap = capacity or _settings(database_url=database_url).agent_capacity

    async def work(store: Any) -> Any:
        return await store.create_agent(login, name, secret, cap)

    try:
        agent = _run(_with_store(database_url, work))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"agent {agent.login} created (id {agent.id})")


@agents.command("list")
@click.option("--database-url", help="[env SWITCHBOARD_DATABASE_URL]")
def agents_list(database_url: str | None) -> None:
    """List agents."""

    async def work(store: Any) -> Any:
        return await store.agents()

    for agent in _run(_with_store(database_url, work)):
        click.echo(
            f"{agent.id:>4}  {agent.login:<16} {agent.name:<24} "
            f"{agent.status.value:<7} {agent.open_chats}/{agent.capacity}"
        )


@agents.command("set-password")
@click.argument("login")
@click.option("--password", help="Prompted for when omitted.")
@click.option("--database-url", help="[env SWITCHBOARD_DATABASE_URL]")
def agents_set_password(
    login: str, password: str | None, database_url: str | None
) -> None:
    """Change an agent's password."""
    secret = hash_password(_password(password))

    async def work(store: Any) -> Any:
        await store.set_agent_password(login, secret)

    _run(_with_store(database_url, work))
    click.echo(f"password of {login} changed")


if __name__ == "__main__":  # pragma: no cover - `python -m switchboard.cli`
    sys.exit(main())
