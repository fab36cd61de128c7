"""Subprocess worker for the multi-device grid tests (not a test module).

Usage: ``python tests/grid_worker.py N_DEVICES [COORDINATOR NUM_PROCESSES PROCESS_ID]``.
Sets the CPU device count before JAX initialises, optionally joins a
``jax.distributed`` job, runs a fixed grid and prints one JSON line: the top-k indices
and scores, the counts and the front indices.
"""

from __future__ import annotations

import json
import os
import sys

import jax

from search.grid import grid
from search.space import make_space

TINY = os.path.join(os.path.dirname(__file__), "data", "db", "models", "tiny-moe.toml")
AXES = {"batch": [1, 2, 4], "tiers.nvlink.hop_latency_s": [1e-7, 1e-6, 1e-5]}


def _summary(res) -> dict:
    return {
        "top": [[r["index"], r["score"]] for r in res.top],
        "counts": res.counts,
        "front": [r["index"] for r in res.pareto["utps_vs_chips"]],
        "front_tpc": [r["index"] for r in res.pareto["utps_vs_tps_per_chip"]],
    }


def run() -> dict:
    """Flat chunks of 16, and tiles (the split per tile; ``TILE_MIN`` lowered so that
    this small grid takes the tiled sweep)."""
    from search import sweep

    sp = make_space(TINY, "hgx-h100-8", axes=AXES)
    out = {"devices": len(jax.devices()), "processes": jax.process_count()}
    out.update(_summary(grid(sp, top=12, chunk=16)))
    min_tile, sweep.TILE_MIN = sweep.TILE_MIN, 1
    try:
        out["tiled"] = _summary(grid(sp, top=12))
    finally:
        sweep.TILE_MIN = min_tile
    return out


def main(argv) -> None:
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", int(argv[1]))
    if len(argv) > 2:
        jax.distributed.initialize(
            coordinator_address=argv[2], num_processes=int(argv[3]), process_id=int(argv[4])
        )
    print("RESULT " + json.dumps(run()), flush=True)


if __name__ == "__main__":
    main(sys.argv)
