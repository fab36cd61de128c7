"""Properties of the grid engine: the result does not depend on the chunk size or on the
number of devices (hypothesis over axis values and chunk sizes).

Every space here has the same shape (so one compiled sweep per chunk size serves every
example); the values of its axes are drawn. The device-count check runs the same
seeded spaces in a subprocess with three fake CPU devices (a count that divides neither
the chunks nor the candidates) and compares with this process (one device); the 1/4/8
device and two-process checks of one fixed grid are in ``tests/test_grid_devices.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from search.grid import grid
from search.space import make_space

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "db" / "models" / "tiny-moe.toml")
N_EXAMPLES = max(4, settings.default.max_examples // 12)
"""Chunk sizes to try: each one compiles a sweep (4 in CI, 83 with the long profile)."""


def _axes(lat, over, cap, batch):
    return {
        "batch": batch,
        "tiers.nvlink.hop_latency_s": lat,
        "tiers.nvlink.overhead_s": over,
        "chip.hbm_capacity_bytes": cap,
    }


def space_of(values: dict):
    return make_space(TINY, "hgx-h100-8", axes=values, context=2048)


def summary(res) -> dict:
    """What must not depend on how the sweep is cut: the top-k (indices, exact float64
    scores), the counts and both Pareto fronts."""
    return {
        "top": [[r["index"], r["score"]] for r in res.top],
        "counts": res.counts,
        "front": [r["index"] for r in res.pareto["utps_vs_chips"]],
        "front_tpc": [r["index"] for r in res.pareto["utps_vs_tps_per_chip"]],
        "partial": res.partial,
    }


def run(values: dict, chunk=None) -> dict:
    return summary(grid(space_of(values), top=12, pareto=True, chunk=chunk))


positive = st.floats(1e-9, 1e-5)
axis_values = st.fixed_dictionaries(
    {
        "lat": st.lists(positive, min_size=3, max_size=3),
        "over": st.lists(st.floats(0.0, 1e-5), min_size=2, max_size=2),
        # capacities around the tiny model's footprint: some candidates do not fit
        "cap": st.lists(st.floats(1e5, 1e7), min_size=2, max_size=2),
        "batch": st.lists(st.sampled_from([1, 2, 3, 4, 6, 8]), min_size=2, max_size=2),
    }
).map(lambda d: _axes(**d))


@settings(max_examples=N_EXAMPLES)
@given(axis_values, st.integers(1, 700))
def test_result_independent_of_chunk_size(values, chunk):
    """Any chunk size (dividing the grid or not, smaller or larger than it) gives the
    same top-k, counts and fronts as the default chunk."""
    assert run(values, chunk) == run(values)


# --------------------------------------------------------------------------- devices

SEED, N_SPACES, N_DEVICES = 20260, 3, 3


def seeded_spaces() -> list[dict]:
    rng = np.random.default_rng(SEED)
    return [
        _axes(
            lat=rng.uniform(1e-8, 1e-5, 3).tolist(),
            over=rng.uniform(0, 1e-5, 2).tolist(),
            cap=rng.uniform(1e5, 1e7, 2).tolist(),
            batch=rng.choice([1, 2, 3, 4, 6, 8], 2, replace=False).tolist(),
        )
        for _ in range(N_SPACES)
    ]


def worker() -> None:
    """Subprocess entry: the seeded spaces on this process's devices, as one JSON line."""
    import jax

    jax.config.update("jax_enable_x64", True)
    out = {"devices": len(jax.devices()), "runs": [run(v, chunk=64) for v in seeded_spaces()]}
    print("RESULT " + json.dumps(out), flush=True)


def test_result_independent_of_device_count():
    """Three spaces of seeded random values: one device here, three in a subprocess
    (``XLA_FLAGS=--xla_force_host_platform_device_count=3``), identical results."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={N_DEVICES}"
    env["JAX_PLATFORMS"] = "cpu"
    code = "import test_hypothesis_grid as t; t.worker()"
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT / "tests",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    got = json.loads(line[len("RESULT ") :])
    assert got["devices"] == N_DEVICES
    here = [run(v, chunk=64) for v in seeded_spaces()]
    assert got["runs"] == here
