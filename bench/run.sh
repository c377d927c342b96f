#!/usr/bin/env bash
# Run both benchmarks on this machine and print the comparison table.
#
#   bench/run.sh                      # defaults (about 5 minutes)
#   bench/run.sh --profile            # plus one cProfile'd step per system
#   SB_ARGS="--source worktree" bench/run.sh
#
# Arguments go to both benchmarks; SB_ARGS and SIO_ARGS to one each.
# Results (JSON, profiles) go to $RESULTS, default bench/results.
# Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/0) and PostgreSQL
# (BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432, a user that
# may create databases).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-bench/results}

"$PYTHON" -m pip install --quiet -r bench/requirements.txt
# shellcheck disable=SC2086
"$PYTHON" bench/switchboard_bench.py --results "$RESULTS" "$@" ${SB_ARGS:-}
# shellcheck disable=SC2086
"$PYTHON" bench/socketio_bench.py --results "$RESULTS" "$@" ${SIO_ARGS:-}
echo
"$PYTHON" bench/report.py --results "$RESULTS" | tee "$RESULTS/table.md"
