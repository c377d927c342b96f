#!/usr/bin/env python
"""Print the comparison table from the two benchmarks' JSON results.

    .venv/bin/python bench/report.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def best(data: dict[str, Any]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = data.get("best")
    return best


def common_rate(sb: dict[str, Any], sio: dict[str, Any]) -> float | None:
    """The highest offered rate that both systems passed."""
    passed_sb = {s["offered"] for s in sb["steps"] if s["passed"]}
    passed_sio = {s["offered"] for s in sio["steps"] if s["passed"]}
    both = passed_sb & passed_sio
    return max(both) if both else None


def step_at(data: dict[str, Any], rate: float) -> dict[str, Any]:
    return next(s for s in data["steps"] if s["offered"] == rate and s["passed"])


def num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def split(step: dict[str, Any]) -> str:
    per = 1e6 / max(step["delivered"], 1)
    cpu = step["cpu"]
    return f"{num(cpu.get('server_A', 0) * per)} / {num(cpu.get('server_B', 0) * per)}"


def verdict(value: float | None, goal: float, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    met = value >= goal if higher_is_better else value <= goal
    return "met" if met else "**missed**"


def table(sb: dict[str, Any], sio: dict[str, Any]) -> str:
    b_sb, b_sio = best(sb), best(sio)
    rows: list[tuple[str, str, str, str, str]] = []

    rate_sb = b_sb["delivered_rate"] if b_sb else None
    rate_sio = b_sio["delivered_rate"] if b_sio else None
    r = ratio(rate_sb, rate_sio)
    rows.append((
        "max cross-server rate with p99 < 100 ms (msg/s)",
        num(rate_sb), num(rate_sio),
        f"{num(r, 2)}x (target >= 3x)", verdict(r, 3.0, True),
    ))
    if b_sb and b_sio:
        rows.append((
            "  p50 / p99 / max latency at that rate (ms)",
            f"{b_sb['p50_ms']:.1f} / {b_sb['p99_ms']:.1f} / {b_sb['max_ms']:.0f}",
            f"{b_sio['p50_ms']:.1f} / {b_sio['p99_ms']:.1f} / {b_sio['max_ms']:.0f}",
            "", "",
        ))

    def cpu_rows(label: str, s1: dict[str, Any] | None, s2: dict[str, Any] | None
                 ) -> None:
        if not (s1 and s2):
            return
        a, b = s1["server_cpu_us_per_msg"], s2["server_cpu_us_per_msg"]
        r = ratio(a, b)
        rows.append((
            f"app-server CPU per message, {label} (us)",
            num(a), num(b), f"{num(r, 2)}x (target <= 0.33x)",
            verdict(r, 1 / 3, False),
        ))
        a_all = a + s1["redis_cpu_us_per_msg"] + s1["postgres_cpu_us_per_msg"]
        b_all = b + s2["redis_cpu_us_per_msg"] + s2["postgres_cpu_us_per_msg"]
        rows.append((
            f"  of which server A (customers) / B (agents), {label} (us)",
            split(s1), split(s2), "", "",
        ))
        rows.append((
            f"  + Redis + PostgreSQL, {label} (us)",
            f"{num(a_all)} (redis {num(s1['redis_cpu_us_per_msg'])},"
            f" pg {num(s1['postgres_cpu_us_per_msg'])})",
            f"{num(b_all)} (redis {num(s2['redis_cpu_us_per_msg'])})",
            f"{num(ratio(a_all, b_all), 2)}x", "",
        ))

    rate = common_rate(sb, sio)
    if rate is not None:
        cpu_rows(f"both at {rate:,.0f} msg/s", step_at(sb, rate), step_at(sio, rate))
    cpu_rows("each at its max rate", b_sb, b_sio)

    i_sb, i_sio = sb["idle"], sio["idle"]
    r = ratio(i_sb["per_connection_kib"], i_sio["per_connection_kib"])
    rows.append((
        f"server RSS per idle connection ({i_sb['connections']:,} open) (KiB)",
        num(i_sb["per_connection_kib"], 1), num(i_sio["per_connection_kib"], 1),
        f"{num(r, 2)}x (target <= 0.5x)", verdict(r, 0.5, False),
    ))
    rows.append((
        "messages stored in PostgreSQL",
        f"{sb['totals']['stored']:,} of {sb['totals']['sent']:,}",
        "none (not stored)", "", "",
    ))
    for key in ("lost", "duplicates", "errors"):
        rows.append((
            f"messages {key} (whole run)",
            str(sb["totals"][key]), str(sio["totals"][key]), "", "",
        ))

    head = ("metric", "Switchboard", "python-socketio", "ratio", "target")
    lines = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def steps(data: dict[str, Any]) -> str:
    lines = [
        f"{data['system']} steps:",
        "  offered  delivered   p50ms   p99ms   maxms  server-us/msg  redis  pg"
        "  machine% others%  ok",
    ]
    for s in data["steps"]:
        lines.append(
            f"  {s['offered']:7.0f}  {s['delivered_rate']:9.0f} {s['p50_ms']:7.1f}"
            f" {s['p99_ms']:7.1f} {s['max_ms']:7.1f}  {s['server_cpu_us_per_msg']:13.0f}"
            f"  {s['redis_cpu_us_per_msg']:5.0f} {s['postgres_cpu_us_per_msg']:4.0f}"
            f"  {s['cpu'].get('machine_busy_pct', 0):8.0f} {s['others_pct']:7.0f}"
            f"  {'yes' if s['passed'] else 'no'}"
            + (" (cut short)" if s["cut_short"] else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    sb = load(args.results / "switchboard.json")
    sio = load(args.results / "socketio.json")
    print(table(sb, sio))
    print()
    print(steps(sb))
    print(steps(sio))


if __name__ == "__main__":
    main()
