"""The circuit breaker shared by the address book and the backplane.

It lives with the backplane tests for now; it tests
``switchboard.breaker``, which both Redis components use.
"""

from __future__ import annotations

import logging

import pytest

from switchboard.breaker import Breaker, BreakerState


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> Breaker:
    return Breaker("test backend", threshold=3, cooldown=10.0, clock=clock)


def fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_breaker_lets_calls_through_while_they_succeed(breaker: Breaker) -> None:
    for _ in range(10):
        assert breaker.allow()
        breaker.record_success()

    assert breaker.state is BreakerState.CLOSED


def test_breaker_opens_after_threshold_consecutive_failures(breaker: Breaker) -> None:
    fail(breaker, 2)
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_count_of_failures(breaker: Breaker) -> None:
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_refuses_calls_until_the_cooldown_ends(
    breaker: Breaker, clock: Clock
) -> None:
    fail(breaker, 3)

    clock.now += 9.9
    assert not breaker.allow()

    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_breaker_allows_a_single_trial(
    breaker: Breaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 10

    assert breaker.allow()
    assert not breaker.allow()


def test_successful_trial_closes_the_breaker(breaker: Breaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    assert breaker.allow()

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_trial_opens_the_breaker_for_another_cooldown(
    breaker: Breaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 10
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_lost_trial_is_replaced_after_another_cooldown(
    breaker: Breaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 10
    assert breaker.allow()  # this trial never reports back

    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_late_failures_do_not_extend_the_cooldown(
    breaker: Breaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 5
    # Calls that were in flight when it opened report their failure now.
    breaker.record_failure()
    breaker.record_failure()

    clock.now += 5
    assert breaker.allow()


def test_breaker_logs_degraded_and_recovered(
    breaker: Breaker, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="switchboard.breaker"):
        fail(breaker, 3)
        clock.now += 10
        assert breaker.allow()
        breaker.record_success()

    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "test backend degraded: 3 consecutive failures, failing fast for 10.0 s",
        "test backend recovered",
    ]


def test_breaker_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        Breaker("x", threshold=0)
    with pytest.raises(ValueError):
        Breaker("x", cooldown=0)
