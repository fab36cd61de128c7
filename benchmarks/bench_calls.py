"""Calls per second from a script (issue "Speed you feel").

Prints JSON: single evaluations per second from a Python loop (``search.evaluate``:
records resolved once; ``evaluate`` with names, ``evaluate_flat`` with resolved records)
against today's routes in the same run (``jax.jit(decode_step)`` with prebuilt records;
``scenario(...)`` + jitted ``decode_step`` per call), and configurations per second for a
list (``evaluate_many``, columns and list of dicts) against ``search.stacking.evaluate``.

    python benchmarks/bench_calls.py
"""

from __future__ import annotations

import sys
import time


def rate(fn, n):
    fn(0)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    import jax
    import numpy as np

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _common import emit, meta

    from costmodel.decode import decode_step
    from costmodel.specs import Parallelism
    from search.evaluate import evaluate, evaluate_flat, evaluate_many, resolve
    from search.jit import jit_fast_compile
    from search.scenario import scenario
    from search.stacking import Config
    from search.stacking import evaluate as stacked

    M, S = "kimi-k2.5", "gb200-nvl72"
    splits = [(t, 1, 1, e, t // e, p) for t in (8, 16, 32, 64) for e in (1, 8) for p in (1, 2)]
    sc = scenario(M, S, batch=1, context=8192)
    f = jit_fast_compile(decode_step)
    pars = [Parallelism(*map(float, s)) for s in splits]
    flat = resolve(M, S)
    wl = (1.0, 8192.0, 0.0, 0.0, 0.0, 1.0)
    n = 300
    out = {
        "single_evaluate_names_per_s": rate(
            lambda i: evaluate(M, S, splits[i % 16], batch=1, context=8192), n
        ),
        "single_evaluate_flat_per_s": rate(lambda i: evaluate_flat(flat, splits[i % 16], wl), n),
        "single_today_jit_records_per_s": rate(
            lambda i: float(
                f(sc.model, sc.precision, sc.system, pars[i % 16], sc.workload, sc.mode).utps
            ),
            n,
        ),
        "single_today_scenario_per_call_per_s": rate(
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
    evaluate_many(model=M, system=S, parallelism=P)
    t = time.perf_counter()
    evaluate_many(model=M, system=S, parallelism=P)
    out["list_columns_configs_per_s"] = N / (time.perf_counter() - t)
    dicts = [dict(model=M, system=S, parallelism=s) for s in splits] * (4096 // 16)
    evaluate_many(dicts)
    t = time.perf_counter()
    evaluate_many(dicts)
    out["list_dicts_configs_per_s"] = len(dicts) / (time.perf_counter() - t)
    cfgs = [Config(sc.model, sc.precision, sc.system, p, sc.workload, sc.mode) for p in pars]
    cfgs = cfgs * (4096 // 16)
    stacked(cfgs)
    t = time.perf_counter()
    stacked(cfgs)
    out["list_today_stacking_configs_per_s"] = len(cfgs) / (time.perf_counter() - t)
    emit(
        {
            "benchmark": "bench_calls",
            "scenario": f"{M} on {S}, 16 splits, batch 1, context 8192",
            **{k: round(v, 1) for k, v in out.items()},
            "targets": {"single_evaluate_names_per_s": ">= 1e4", "list_configs_per_s": ">= 1e6"},
            "x64": bool(jax.config.jax_enable_x64),
            **meta(),
        }
    )


if __name__ == "__main__":
    main()
