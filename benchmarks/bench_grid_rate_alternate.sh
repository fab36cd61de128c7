#!/usr/bin/env bash
# Grid rate of a baseline checkout and this one, alternated in one run (same machine
# load): SOL and calibrated hardware space, SOL workload space. One JSON line per run.
# Usage: bash benchmarks/bench_grid_rate_alternate.sh BASELINE_DIR [TIME_LIMIT_S]
# (each checkout with its own .venv; the baseline needs no copy of the probe script).
set -u
base=${1:?usage: $0 BASELINE_DIR [TIME_LIMIT_S]}
limit=${2:-12}
here=$(cd "$(dirname "$0")/.." && pwd)
probe="$here/benchmarks/bench_grid_rate.py"
for spec in "sol hw" "calibrated hw" "sol wl"; do
  for tree in "$base" "$here"; do
    (cd "$tree" && nice .venv/bin/python "$probe" ${spec% *} "$limit" ${spec#* } 2>/dev/null | tail -1)
  done
done
