#!/usr/bin/env python
"""Summarise a server's cProfile statistics (written by bench/profiled.py).

    .venv/bin/python bench/profile_report.py bench/results/profile-switchboard-A.pstats \\
        --messages 3000

Prints where the CPU time went: by component (the library whose function
spent it, "self" time), the top functions by self time, and the inclusive
time of the functions matching ``--match`` (default: Switchboard's own code
and the benchmark server), with calls per message when ``--messages`` is
given. The timer is process CPU time, so waiting for I/O is not counted;
cProfile itself roughly doubles the cost of Python calls, so shares are the
point, not absolute times.
"""

from __future__ import annotations

import argparse
import pstats
import re
from collections import Counter
from pathlib import Path

# The first pattern found in a function's file names its component.
COMPONENTS = [
    ("websockets permessage-deflate", "permessage_deflate"),
    ("websockets", "websockets/"),
    ("uvicorn", "uvicorn/"),
    ("starlette/fastapi", "starlette/"),
    ("starlette/fastapi", "fastapi/"),
    ("pydantic", "pydantic"),
    ("sqlalchemy", "sqlalchemy/"),
    ("asyncpg", "asyncpg/"),
    ("redis-py", "redis/"),
    ("aiohttp", "aiohttp/"),
    ("engineio", "engineio/"),
    ("socketio", "socketio/"),
    ("json", "json/"),
    ("logging", "logging/"),
    ("asyncio", "asyncio/"),
    ("switchboard", "switchboard/"),
    ("benchmark server", "bench/"),
]


def component(file: str, name: str) -> str:
    if file == "~":
        # Built-ins: say which, they are often the answer (zlib, json, ...).
        match = re.search(r"<(?:built-in )?method (\w+)(?: of ([\w.]+))?", name)
        if match and match[2]:
            return f"C: {match[2].split(' ')[0]}"
        return "C: built-ins"
    for label, needle in COMPONENTS:
        if needle in file:
            return label
    return "other Python"


def short(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file}:{line})"


def summarise(path: Path, top: int, match: str, messages: int | None) -> str:
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values()) or 1e-9
    by_component: Counter[str] = Counter()
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _) in entries.items():
        by_component[component(file, name)] += tt
        rows.append((tt, ct, nc, short(file, line, name), file))

    def calls(n: int) -> str:
        return f"{n / messages:8.2f}/msg" if messages else f"{n:10d}"

    out = [f"{path.name}: {total:.2f} CPU s profiled"
           + (f", {messages} messages, {1e6 * total / messages:.0f} us/msg"
              if messages else "")]
    out.append("  by component (self time):")
    for label, tt in by_component.most_common(14):
        out.append(f"    {100 * tt / total:5.1f}%  {label}")
    out.append(f"  top {top} functions by self time:")
    for tt, _, nc, label, _ in sorted(rows, reverse=True)[:top]:
        out.append(f"    {100 * tt / total:5.1f}%  {calls(nc)}  {label}")
    out.append(f"  top {top} functions matching {match!r} by inclusive time:")
    mine = [r for r in rows if re.search(match, r[4])]
    for _, ct, nc, label, _ in sorted(mine, key=lambda r: r[1], reverse=True)[:top]:
        out.append(f"    {100 * ct / total:5.1f}%  {calls(nc)}  {label}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default=r"switchboard/|bench/")
    parser.add_argument("--messages", type=int, default=None,
                        help="messages delivered while profiling")
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top, args.match, args.messages))
        print()


if __name__ == "__main__":
    main()
