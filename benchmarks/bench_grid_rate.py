"""Grid rate of one ``bench_grid`` space in this checkout; prints one JSON line.

Usage::

    python benchmarks/bench_grid_rate.py MODE TIME_LIMIT_S SPACE

``MODE``: ``sol`` or ``calibrated`` (software vLLM: the kernel-level mode); ``SPACE``:
``hw`` (``bench_grid``'s hardware space) or ``wl`` (its workload space). A first grid with
a 2 s limit compiles; a second, warm grid runs for at most ``TIME_LIMIT_S``. Figures:
``rate_wall`` (candidates/s, first host call excluded) and ``per_cpu_s`` (candidates per
process CPU-second, rescoring included): on a busy machine the second is the per-core
rate. ``benchmarks/bench_grid_rate_alternate.sh`` runs it in two checkouts in turn.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.getcwd())

import jax  # noqa: E402

import search  # noqa: E402,F401  (one CPU device per core, before JAX starts)
from search.grid import grid  # noqa: E402
from search.space import make_space  # noqa: E402

# bench_grid's spaces (copied, not imported: bench_grid puts its own checkout on the path)
MODEL = "kimi-k2.5"
HARDWARE_AXES = {
    "batch": [1, 2, 4, 8, 16, 32, 64],
    "context": [2048, 8192, 32768, 131072],
    "tiers.nvlink.hop_latency_s": "50e-9:2e-6:16:log",
    "tiers.nvlink.overhead_s": "0:2e-6:16",
    "tiers.nvlink.bw_bytes_per_s": "2e11:2e12:8",
}
WORKLOAD_AXES = {"batch": "1:256:64", "context": "1024:1048576:32:log", "mtp": [0, 1, 2, 3]}


def main() -> None:
    mode, limit, space = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    kw = {} if mode == "sol" else {"mode": mode, "software": "vllm"}
    axes = HARDWARE_AXES if space == "hw" else WORKLOAD_AXES
    sp = make_space(MODEL, "gb200-nvl72", axes=axes, **kw)
    t0 = time.perf_counter()
    grid(sp, top=10, pareto=False, time_limit_s=2)  # compile
    t_compile = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    r = grid(sp, top=10, pareto=False, time_limit_s=limit)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    dev = jax.devices()[0]
    print(
        json.dumps(
            {
                "checkout": os.getcwd(),
                "mode": mode,
                "space": space,
                "units": {"rate_wall": "candidates/s", "per_cpu_s": "candidates/CPU-s"},
                "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
                "devices": jax.device_count(),
                "jax": jax.__version__,
                "compile_call_s": round(t_compile, 1),
                "rate_wall": r.rate,
                "per_cpu_s": r.evaluated / cpu,
                "evaluated": r.evaluated,
                "total": r.total,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "load_average": os.getloadavg()[0],
                "best_utps": r.best["result"]["utps"] if r.best else None,
            }
        )
    )


if __name__ == "__main__":
    main()
