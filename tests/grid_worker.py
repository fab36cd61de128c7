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


def run() -> dict:
    sp = make_space(TINY, "hgx-h100-8", axes=AXES)
    res = grid(sp, top=12, chunk=16)
    return {
        "devices": len(jax.devices()),
        "processes": jax.process_count(),
        "top": [[r["index"], r["score"]] for r in res.top],
        "counts": res.counts,
        "front": [r["index"] for r in res.pareto["utps_vs_chips"]],
        "front_tpc": [r["index"] for r in res.pareto["utps_vs_tps_per_chip"]],
    }


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
