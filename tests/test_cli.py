"""The command line: database, agents, and clear messages for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from switchboard.cli import main


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    return url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_agents_are_added_listed_and_given_new_passwords(db: str) -> None:
    code, out = run(
        "agents", "add", "dana", "--name", "Dana Scully", "--password",
        "trustno1!", "--capacity", "3", "--database-url", db,
    )  # fmt: skip
    assert code == 0, out
    assert "agent dana created" in out

    code, out = run("agents", "list", "--database-url", db)
    assert code == 0
    assert "dana" in out
    assert "0/3" in out

    code, out = run(
        "agents", "set-password", "dana", "--password", "iwanttobelieve",
        "--database-url", db,
    )  # fmt: skip
    assert code == 0
    assert "password of dana changed" in out


def test_a_taken_login_is_a_clear_error(db: str) -> None:
    args = ["agents", "add", "fox", "--name", "Fox", "--password", "spooky-1"]
    assert run(*args, "--database-url", db)[0] == 0
    code, out = run(*args, "--database-url", db)
    assert code != 0
    assert "Error" in out
    assert "Traceback" not in out


def test_a_short_password_is_refused(db: str) -> None:
    code, out = run(
        "agents", "add", "x", "--name", "X", "--password", "short",
        "--database-url", db,
    )  # fmt: skip
    assert code == 2
    assert "at least 8 characters" in out


def test_setting_the_password_of_an_unknown_agent_is_a_clear_error(
    db: str,
) -> None:
    code, out = run(
        "agents", "set-password", "nobody", "--password", "whatever1",
        "--database-url", db,
    )  # fmt: skip
    assert code == 1
    assert "Error" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999", "--secret-key", "k"], "invalid port"),
        (["serve"], "secret-key"),
        (
            ["serve", "--secret-key", "k", "--heartbeat-interval", "10",
             "--heartbeat-timeout", "5"],
            "heartbeat_timeout must be longer",
        ),
    ],
)  # fmt: skip
def test_bad_serve_options_are_usage_errors(args: list[str], message: str) -> None:
    code, out = run(*args)
    assert code == 2
    assert message in out


def test_an_unreachable_database_is_a_clear_error() -> None:
    code, out = run(
        "db", "upgrade", "--database-url", "postgresql://nobody@127.0.0.1:1/x"
    )
    assert code == 1
    assert "Error" in out
    assert "Traceback" not in out
