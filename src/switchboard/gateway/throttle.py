"""Login throttling: a moving window of attempts per login name.

Each attempt is counted before the password is checked, so a burst of
guesses sent at once is limited as surely as a slow stream of them. The
state is this app server's own, in memory, and bounded: past ``max_names``
the name not tried for longest is forgotten, so a flood of made-up login
names costs a fixed amount of memory. A cluster of N servers therefore
allows N times the limit; that still makes guessing a password hopeless.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque

__all__ = ["Throttle"]


class Throttle:
    """At most ``limit`` attempts per key within any ``window`` seconds."""

    def __init__(self, limit: int, window: float, max_names: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_names = max_names
        # key -> times of its attempts within the window, oldest first; the
        # dict itself is ordered from the least recently tried key.
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._attempts)

    def attempt(self, key: str) -> int:
        """Count an attempt; return 0, or the whole seconds to wait if refused."""
        now = time.monotonic()
        times = self._attempts.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()

        # Refused attempts are not counted: waiting out the window works.
        wait = 0
        if len(times) >= self.limit:
            wait = max(1, math.ceil(times[0] + self.window - now))
        else:
            times.append(now)

        self._attempts[key] = times
        if len(self._attempts) > self.max_names:
            self._attempts.popitem(last=False)
        return wait

    def forget(self, key: str) -> None:
        """Clear ``key``'s attempts (after it succeeded)."""
        self._attempts.pop(key, None)
