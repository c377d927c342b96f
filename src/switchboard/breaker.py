"""A circuit breaker: stop calling a backend that keeps failing.

When Redis is down, every call waits for its timeouts and retries before it
fails. Under load that stacks up thousands of waiting calls, which is how one
failing dependency turns into a stalled app server. The breaker counts
consecutive failures; past a threshold it *opens* and calls fail at once for
a cool-down period. Then one trial call goes through (*half-open*): success
closes the breaker, failure opens it for another cool-down.

The breaker does no I/O and holds no locks: callers ask :meth:`Breaker.allow`
before a call and report the outcome after it. It is meant for one event
loop.

Logging: the owner's logger gets an INFO line when the breaker opens
("degraded") and when it closes again ("recovered"), and a DEBUG line when a
trial call starts.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

__all__ = ["Breaker", "BreakerState"]


class BreakerState(enum.Enum):
    """Whether calls go through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    """Fail fast after ``threshold`` consecutive failures, for ``cooldown`` s.

    ``name`` and ``logger`` only label the log lines, so that each component
    reports its own breaker under its own logger.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        cooldown: float = 5.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown <= 0:
            raise ValueError("cooldown must be positive")
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.logger = logger or logging.getLogger("switchboard.breaker")
        self.clock = clock

        self._state = BreakerState.CLOSED
        self._failures = 0
        # When the breaker opened, or when the current trial call started.
        self._since = 0.0

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker past its cool-down reads open."""
        return self._state

    def allow(self) -> bool:
        """Return True if a call may go ahead now.

        While open, the first caller after the cool-down becomes the trial
        call and every other caller is refused. A trial that never reports
        back (its task was cancelled) is replaced after another cool-down,
        so the breaker cannot stay half-open forever.
        """
        if self._state is BreakerState.CLOSED:
            return True

        now = self.clock()
        if now - self._since < self.cooldown:
            return False

        self._set_state(BreakerState.HALF_OPEN)
        self._since = now
        return True

    def record_success(self) -> None:
        """Report that a call succeeded; this closes the breaker."""
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """Report that a call failed; enough of them open the breaker."""
        self._failures += 1

        # Calls that were in flight when the breaker opened fail too; they
        # must not push the end of the cool-down further away.
        if self._state is BreakerState.OPEN:
            return

        if self._state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            self._set_state(BreakerState.OPEN)
            self._since = self.clock()

    def _set_state(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        if state is BreakerState.OPEN and previous is BreakerState.CLOSED:
            self.logger.warning(
                "%s degraded: %d consecutive failures, failing fast for %.1f s",
                self.name,
                self._failures,
                self.cooldown,
            )
        elif state is BreakerState.CLOSED:
            self.logger.info("%s recovered", self.name)
        else:
            self.logger.debug("%s breaker %s", self.name, state.value)
