"""Calls per second from a script (issue "Speed you feel").

Prints JSON: single evaluations per second from a Python loop (``search.evaluate``:
records resolved once; ``evaluate`` with names, ``evaluate_flat`` with resolved records;
native code, :mod:`search.native`, where a C compiler is found: ``native``; the same
calls through the XLA program, ``*_xla``, native code turned off) against today's routes
in the same run (``jax.jit(decode_step)`` with prebuilt records;
``scenario(...)`` + jitted ``decode_step`` per call), and configurations per second for a
list (``evaluate_many``, columns and list of dicts) against ``search.stacking.evaluate``.

Each rate is the best of a few repeats, as wall-clock (``*_per_s``) and as this process's
CPU time (``*_cpu_per_s``, ``time.process_time``: all its threads): on a machine shared
with other jobs the wall-clock rate falls with the load, the CPU-time rate much less (a
single call runs on one thread, so on a quiet machine the two agree). ``targets`` holds
the issue's figures and ``meets`` whether the wall-clock rates reach them.

    python benchmarks/bench_calls.py
"""

from __future__ import annotations

import os
import sys
import time


def rate(fn, n, repeats=3):
    """Best ``(calls/s wall-clock, calls/s CPU time)`` of ``repeats`` loops of ``n``."""
    fn(0)
    wall = cpu = 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall = max(wall, n / (time.perf_counter() - t))
        cpu = max(cpu, n / max(time.process_time() - c, 1e-9))
    return wall, cpu


def main() -> None:
    import jax
    import numpy as np

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _common import emit, meta

    from costmodel.decode import decode_step
    from costmodel.specs import Parallelism
    from search import native
    from search.evaluate import evaluate, evaluate_flat, evaluate_many, float_dtype, resolve
    from search.jit import jit_fast_compile
    from search.scenario import scenario
    from search.stacking import Config
    from search.stacking import evaluate as stacked

    M, S = "kimi-k2.5", "gb200-nvl72"
    t0 = time.perf_counter()
    evaluate(M, S, (8, 1, 1, 8, 1, 1), batch=1, context=8192)
    first_call_s = time.perf_counter() - t0  # resolve + native build (or its disk cache)

    def xla(fn):
        def run(i):
            native.ENABLED = False
            try:
                return fn(i)
            finally:
                native.ENABLED = on

        return run

    on = native.ENABLED
    splits = [(t, 1, 1, e, t // e, p) for t in (8, 16, 32, 64) for e in (1, 8) for p in (1, 2)]
    sc = scenario(M, S, batch=1, context=8192)
    f = jit_fast_compile(decode_step)
    pars = [Parallelism(*map(float, s)) for s in splits]
    flat = resolve(M, S)
    wl = (1.0, 8192.0, 0.0, 0.0, 0.0, 1.0)
    n = 300
    n_native = 3000 if on else n
    rates = {
        "single_evaluate_names": rate(
            lambda i: evaluate(M, S, splits[i % 16], batch=1, context=8192), n_native
        ),
        "single_evaluate_flat": rate(lambda i: evaluate_flat(flat, splits[i % 16], wl), n_native),
        "single_evaluate_names_xla": rate(
            xla(lambda i: evaluate(M, S, splits[i % 16], batch=1, context=8192)), n
        ),
        "single_evaluate_flat_xla": rate(xla(lambda i: evaluate_flat(flat, splits[i % 16], wl)), n),
        "single_today_jit_records": rate(
            lambda i: float(
                f(sc.model, sc.precision, sc.system, pars[i % 16], sc.workload, sc.mode).utps
            ),
            n,
        ),
        "single_today_scenario_per_call": rate(
            lambda i: float(
                f(
                    *(lambda s: (s.model, s.precision, s.system))(scenario(M, S)),
                    pars[i % 16],
                    sc.workload,
                    sc.mode,
                ).utps  # fmt: skip
            ),
            n // 3,
        ),
    }
    N = 1 << 15
    P = np.asarray(splits * (N // 16), float)
    rates["list_columns_configs"] = rate(
        lambda i: evaluate_many(model=M, system=S, parallelism=P), 1, repeats=5
    )
    dicts = [dict(model=M, system=S, parallelism=s) for s in splits] * (4096 // 16)
    rates["list_dicts_configs"] = rate(lambda i: evaluate_many(dicts), 1, repeats=5)
    cfgs = [Config(sc.model, sc.precision, sc.system, p, sc.workload, sc.mode) for p in pars]
    cfgs = cfgs * (4096 // 16)
    rates["list_today_stacking_configs"] = rate(lambda i: stacked(cfgs), 1, repeats=5)
    size = {"list_columns_configs": N, "list_dicts_configs": len(dicts)}
    size["list_today_stacking_configs"] = len(cfgs)
    out = {}
    for k, (wall, cpu) in rates.items():
        out[f"{k}_per_s"] = round(wall * size.get(k, 1), 1)
        out[f"{k}_cpu_per_s"] = round(cpu * size.get(k, 1), 1)
    targets = {"single_evaluate_names_per_s": 1e4, "list_columns_configs_per_s": 1e6}
    emit(
        {
            "benchmark": "bench_calls",
            "scenario": f"{M} on {S}, 16 splits, batch 1, context 8192",
            **out,
            "targets": {k: f">= {v:.0e}" for k, v in targets.items()},
            "meets": {k: out[k] >= v for k, v in targets.items()},
            "native": {
                "compiler": native.compiler() if on else None,
                "used": flat.call(np.dtype(float_dtype()))[3] is not None,
                "first_call_s": round(first_call_s, 3),
            },
            "load_average_1min": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "x64": bool(jax.config.jax_enable_x64),
            **meta(),
        }
    )


if __name__ == "__main__":
    main()
