#!/usr/bin/env python
"""Run a server under cProfile, switched on and off by signals.

    python bench/profiled.py OUT -m switchboard serve ...
    python bench/profiled.py OUT bench/socketio_server.py ...

The profiler is off at start, so the server runs at full speed until
SIGUSR1 switches it on; SIGUSR2 switches it off and writes the statistics
to OUT (pstats format). The timer is CPU time of the process, so time the
event loop spends waiting for I/O is not counted.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    out = sys.argv[1]
    rest = sys.argv[2:]
    profiler = cProfile.Profile(time.process_time)

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)

    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
