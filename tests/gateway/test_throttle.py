"""The login throttle, without a server."""

from __future__ import annotations

import time

import pytest

from switchboard.gateway.throttle import Throttle


def test_attempts_past_the_limit_wait_for_the_window() -> None:
    throttle = Throttle(3, 60.0)
    assert [throttle.attempt("ann") for _ in range(3)] == [0, 0, 0]

    wait = throttle.attempt("ann")
    assert 1 <= wait <= 60
    # Other names are not held back by someone guessing at one.
    assert throttle.attempt("bob") == 0


def test_refused_attempts_do_not_extend_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    throttle = Throttle(2, 10.0)
    throttle.attempt("ann")
    now[0] += 4
    throttle.attempt("ann")

    now[0] += 1
    assert throttle.attempt("ann") == 5  # until the first attempt is 10 s old
    now[0] += 5
    assert throttle.attempt("ann") == 0  # the first one left the window
    assert throttle.attempt("ann") == 4


def test_a_success_clears_the_count() -> None:
    throttle = Throttle(2, 60.0)
    throttle.attempt("ann")
    throttle.attempt("ann")
    throttle.forget("ann")
    assert throttle.attempt("ann") == 0


def test_memory_is_bounded_whatever_the_names() -> None:
    throttle = Throttle(1, 60.0, max_names=100)
    for n in range(10_000):
        throttle.attempt(f"made-up-{n}")
    assert len(throttle) == 100

    # The names tried most recently are the ones kept.
    assert throttle.attempt("made-up-9999") > 0
    assert throttle.attempt("made-up-0") == 0
