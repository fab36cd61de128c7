"""Grid-search throughput and memory benchmark; prints one JSON document.

Figures (Kimi-K2.5, its native int4-experts recipe, SOL mode):

* ``throughput``: full-model candidates per second of :func:`search.grid.grid` (float32
  sweep; from a second, warm run, whose first host call is excluded too) on two spaces
  of GB200 NVL72:
  ``hardware``: every valid split × batch (7) × context (4) × NVLink per-hop latency (16)
  × NVLink per-step overhead (16) × NVLink bandwidth (8) = 8.2e7 candidates (each
  candidate has its own system numbers);
  ``workload``: every valid split × batch (64 values) × context (32 values) × MTP depth
  (4) (the system numbers are compile-time constants).
* ``calibrated``: the ``hardware`` space in calibrated mode (``mode="calibrated"``,
  software vLLM: the kernel-level mode of :mod:`costmodel.kernel_mode`, see
  :func:`search.scenario.calibrated_mode`), and its rate over the SOL rate of the same
  space (issue 14: within 2x, i.e. ratio ≥ 0.5).
* ``python_loop``: the same ``hardware`` space, candidates evaluated one at a time by a
  plain Python loop calling ``jax.jit(decode_step)`` (records built on the host with
  ``set_path``), and the ratio of the two rates.
* ``memory``: a 1e9-candidate sweep in a subprocess (reticle-die, 1,024 dies, × per-hop
  latency × overhead × bandwidth), with its peak RSS (``ru_maxrss``) and the RSS sampled
  through the sweep. With ``--rss-time-limit`` the sweep stops early (a partial result)
  and the JSON says how many candidates were evaluated.

Usage::

    python benchmarks/bench_grid.py                 # all figures (~4 minutes on 2 cores)
    python benchmarks/bench_grid.py --quick         # smaller spaces, no 1e9 sweep
    python benchmarks/bench_grid.py --rss-time-limit 60

Wall-clock figures depend on other load on the machine; ``cpu_s`` (process CPU time)
is reported next to wall time so that a busy machine can be recognised, and
``candidates_per_cpu_s`` (candidates over the CPU time of a second, warm run of the whole
grid, rescoring included) is the rate per core that a busy machine still measures:
``devices × candidates_per_cpu_s`` is what ``devices`` idle cores give.

The sweep shards over every CPU core by default (``search._devices``: one JAX device per
core; ``TPSOPT_DEVICES=N`` to choose); ``devices`` in the JSON says
how many it used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from costmodel.decode import decode_step  # noqa: E402
from costmodel.specs import DEGREES, Parallelism  # noqa: E402
from search.grid import grid  # noqa: E402
from search.paths import set_path  # noqa: E402
from search.space import make_space  # noqa: E402

MODEL = "kimi-k2.5"
HARDWARE_AXES = {
    "batch": [1, 2, 4, 8, 16, 32, 64],
    "context": [2048, 8192, 32768, 131072],
    "tiers.nvlink.hop_latency_s": "50e-9:2e-6:16:log",
    "tiers.nvlink.overhead_s": "0:2e-6:16",
    "tiers.nvlink.bw_bytes_per_s": "2e11:2e12:8",
}
WORKLOAD_AXES = {"batch": "1:256:64", "context": "1024:1048576:32:log", "mtp": [0, 1, 2, 3]}
MEMORY_AXES = {
    "tiers.cross-die.hop_latency_s": "1e-8:1e-5:100:log",
    "tiers.cross-die.overhead_s": "0:2e-6:100",
    "tiers.cross-die.bw_bytes_per_s": "1e11:1e13:40:log",
}


def _timed_grid(space, time_limit_s, chunk=None):
    c0, t0 = time.process_time(), time.perf_counter()
    res = grid(space, top=10, pareto=False, time_limit_s=time_limit_s, chunk=chunk)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return res, wall, cpu


def throughput(name, axes, time_limit_s, chunk=None, **scenario_kw) -> dict:
    space = make_space(MODEL, "gb200-nvl72", axes=axes, **scenario_kw)
    res, wall, cpu = _timed_grid(space, time_limit_s, chunk)
    warm, _, warm_cpu = _timed_grid(space, time_limit_s, chunk)  # compiled programs cached
    best = res.best
    sc = space.scenarios[0]
    return {
        "space": name,
        "system": "gb200-nvl72",
        "mode": sc.mode_name,
        "axes": {k: str(v) for k, v in axes.items()},
        "sweep": _sweep_kind(res),
        "splits": res.info["sub_grids"][0]["splits"],
        "candidates_in_space": res.total,
        "evaluated": res.evaluated,
        "partial": res.partial,
        "candidates_per_s": warm.rate,
        "wall_s_incl_compile_and_rescore": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "candidates_per_cpu_s": warm.evaluated / warm_cpu if warm_cpu > 0 else None,
        "best_utps": best["result"]["utps"] if best else None,
        "best_split": best["parallelism"] if best else None,
    }


def _sweep_kind(res) -> str:
    """Tiled or flat chunks, as :func:`search.grid.grid` chose for the first sub-grid."""
    from search.sweep import choose_tile

    shape = res.info["sub_grids"][0]["shape"]
    t, size = choose_tile(shape, res.info["devices"])
    return f"tiled: {t} innermost digits, {size} candidates per tile" if t else "flat chunks"


def python_loop(n: int, seed: int = 0) -> dict:
    """Candidates/s of a per-configuration Python loop over ``jax.jit(decode_step)``."""
    space = make_space(MODEL, "gb200-nvl72", axes=HARDWARE_AXES)
    (sub,) = space.subgrids()
    f = jax.jit(decode_step)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, sub.size, n)

    def one(i):
        d = sub.decode(int(i))
        rec = sub.base
        for a in sub.axes:
            rec = set_path(rec, a.name, d[a.name])
        par = Parallelism(*(float(d[k]) for k in DEGREES))
        r = f(rec.model, rec.precision, rec.system, par, rec.workload, rec.mode)
        return float(r.utps)  # host value: the loop waits for every result

    one(idx[0])  # compile
    t0 = time.perf_counter()
    for i in idx:
        one(i)
    dt = time.perf_counter() - t0
    return {"evaluated": n, "seconds": round(dt, 3), "candidates_per_s": n / dt}


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory(time_limit_s) -> dict:
    """Run the 1e9-candidate sweep in a child process; sample its RSS."""
    args = [sys.executable, __file__, "--child-memory"]
    if time_limit_s is not None:
        args += ["--rss-time-limit", str(time_limit_s)]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    samples, stop = [], threading.Event()

    def sample():
        t0 = time.perf_counter()
        while not stop.is_set():
            mb = _rss_mb(p.pid)
            if mb is not None:
                samples.append((round(time.perf_counter() - t0, 1), round(mb, 1)))
            stop.wait(1.0)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = p.communicate()
    stop.set()
    th.join()
    child = json.loads(out.strip().splitlines()[-1])
    rss = [mb for _, mb in samples]
    child["rss_mb_samples_every_1s"] = samples[:: max(1, len(samples) // 40)]
    if rss:
        k = max(1, len(rss) // 10)
        child["rss_mb_first_10pct_max"] = max(rss[:k])
        child["rss_mb_last_10pct_max"] = max(rss[-k:])
    return child


def child_memory(time_limit_s) -> None:
    space = make_space(MODEL, "reticle-die", chips_max=1024, axes=MEMORY_AXES)
    res, wall, cpu = _timed_grid(space, time_limit_s)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "system": "reticle-die (1024 dies)",
        "axes": MEMORY_AXES,
        "candidates_in_space": res.total,
        "evaluated": res.evaluated,
        "partial": res.partial,
        "time_limit_s": time_limit_s,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "candidates_per_s": res.rate,
        "peak_rss_mb": round(peak_mb, 1),
        "best_utps": res.best["result"]["utps"] if res.best else None,
    }
    print(json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small spaces, no 1e9 sweep")
    ap.add_argument("--time-limit", type=float, default=60.0, help="per throughput space (s)")
    ap.add_argument("--loop-n", type=int, default=300, help="Python-loop candidates")
    ap.add_argument("--rss-time-limit", type=float, default=None, help="stop the 1e9 sweep")
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_memory:
        child_memory(a.rss_time_limit)
        return
    limit = 8.0 if a.quick else a.time_limit
    dev = jax.devices()[0]
    doc = {
        "benchmark": "grid",
        "model": MODEL,
        "units": {"candidates_per_s": "full-model decode-step evaluations per second"},
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "dtype": "float32 sweep, float64 re-score of the winners",
        "chunk": a.chunk or "auto (2^16 per device)",
        "load_average_at_start": os.getloadavg(),
    }
    doc["throughput"] = [
        throughput("hardware", HARDWARE_AXES, limit, a.chunk),
        throughput("workload", WORKLOAD_AXES, limit, a.chunk),
    ]
    cal = throughput("hardware", HARDWARE_AXES, limit, a.chunk, mode="calibrated", software="vllm")
    sol = doc["throughput"][0]
    cal["over_sol"] = {
        k: cal[k] / sol[k] for k in ("candidates_per_s", "candidates_per_cpu_s") if sol[k]
    }
    cal["target"] = "over_sol >= 0.5 (issue 14: within 2x of the SOL grid rate)"
    doc["calibrated"] = cal
    loop = python_loop(50 if a.quick else a.loop_n)
    doc["python_loop"] = loop
    doc["speedup_vs_python_loop"] = (
        doc["throughput"][0]["candidates_per_s"] / loop["candidates_per_s"]
    )
    if not a.quick:
        doc["memory"] = memory(a.rss_time_limit)
    doc["load_average_at_end"] = os.getloadavg()
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
