"""Coalescing: many requests in a short while, one call.

The status board and the queue change in bursts (a shift starting, a
sweep reconciling presence, a queue draining). Each burst must cost a
handful of frames, not one per change, so whoever notices a change asks a
coalescer to call back later; the requests that arrive before it fires are
served by the same call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Coalescer"]


class Coalescer:
    """Call ``callback`` once, ``interval`` seconds after the first request.

    The callback runs in the event loop, so it must not block: it either
    does its work at once or spawns a task for it. A request made while
    that work runs arms the timer again, so a change is never missed, only
    delayed by at most ``interval``.
    """

    def __init__(self, interval: float, callback: Callable[[], None]) -> None:
        self._interval = interval
        self._callback = callback
        self._timer: asyncio.TimerHandle | None = None

    def request(self) -> None:
        """Call back after the interval, unless a call is already due."""
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval, self._fire)

    def close(self) -> None:
        """Cancel the call that is due, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        # Cleared first, so that a request made by the callback itself
        # arms a new timer instead of being lost.
        self._timer = None
        self._callback()
