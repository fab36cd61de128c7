"""Target-solver speed (issue 6): warm time per target and vectorised targets per second.

Kimi-K2.5 on GB200 NVL72 at batch 1; the latency factor needed for a UTPS target with
the best split re-optimised inside the predicate (all valid splits), by bracketed
bisection in log space (50 halvings). Prints JSON. Targets: < 50 ms per target warm;
≥ 1,000 targets/s vectorised.

    python benchmarks/bench_target.py
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _common import best_of, emit, meta

    from search.optimize import as_parallelism, exhaustive_best, split_table
    from search.scenario import scenario
    from search.target import envelope_rows, solve_scale

    sc = scenario("kimi-k2.5", "gb200-nvl72", batch=1, context=8192)
    table = split_table(sc)
    splits = as_parallelism(table)
    _, r = exhaustive_best(sc, table)
    u0 = float(r.utps)

    t0 = time.perf_counter()
    rows = envelope_rows(sc, splits)
    t_prune = time.perf_counter() - t0
    full = splits
    splits = jax.tree.map(lambda x: x[rows], splits)
    one = jax.jit(lambda x: solve_scale(sc, splits, x))
    many = jax.jit(jax.vmap(lambda x: solve_scale(sc, splits, x)))
    n = 2000
    targets = jnp.asarray(np.geomspace(0.3 * u0, 1.2 * u0, n), jnp.float32)
    t0 = time.perf_counter()
    jax.block_until_ready(one(jnp.float32(0.9 * u0)))
    t_compile_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(many(targets))
    t_compile_many = time.perf_counter() - t0
    t_one = best_of(lambda: one(jnp.float32(0.9 * u0)), repeats=5, number=20)
    t_many = best_of(lambda: many(targets), repeats=3, number=1)
    f, st, u = (np.asarray(a) for a in many(targets))
    # exactness of the pruning: the full table gives the same answers
    full_many = jax.jit(jax.vmap(lambda x: solve_scale(sc, full, x)))
    f_full, st_full, _ = (np.asarray(a) for a in full_many(targets[::50]))
    same = bool(
        np.array_equal(st_full, st[::50])
        and np.allclose(f_full, f[::50], rtol=1e-6, equal_nan=True)
    )
    ok = st == 0
    err = np.abs(u[ok] / np.asarray(targets)[ok] - 1.0)
    emit(
        {
            "benchmark": "bench_target",
            "scenario": "kimi-k2.5 on gb200-nvl72, batch 1, context 8192, latency knob, best split",
            "splits_in_table": int(len(table)),
            "splits_after_envelope_pruning": int(len(rows)),
            "pruning_s": round(t_prune, 2),
            "pruned_answers_equal_full_table": same,
            "bisection_iterations": 50,
            "warm_ms_per_target": round(t_one * 1e3, 3),
            "vectorised_targets_per_s": round(n / t_many, 1),
            "targets_in_batch": n,
            "compile_s_single": round(t_compile_one, 2),
            "compile_s_vectorised": round(t_compile_many, 2),
            "reachable": int(ok.sum()),
            "max_rel_error_at_answer": float(err.max()) if ok.any() else None,
            "targets": {"warm_ms_per_target": "< 50", "vectorised_targets_per_s": ">= 1000"},
            **meta(),
        }
    )


if __name__ == "__main__":
    main()
