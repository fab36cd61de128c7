"""The main job: best split, what limits it, and what the interconnect must become.

:func:`main_job` runs, for one scenario:

1. the best parallel split over every valid split (exact enumeration of the table from
   :func:`search.splits.valid_splits` when it is small, else gradient search), with its
   breakdown;
2. the latency factor (all tiers scaled, split re-optimised at each latency) needed for
   2× and 5× that UTPS, or why it is unreachable (:mod:`search.target`);
3. the elasticities of UTPS to every hardware number at the best split
   (:mod:`search.sensitivity`).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search.errors import UserError, check_number
from search.jit import jit_fast_compile
from search.objectives import RATE_OBJECTIVES, check_objective
from search.results import parallelism_dict, result_dict
from search.scenario import Scenario

EXHAUSTIVE_MAX_ROWS = 200_000


def split_table(sc: Scenario, chips_max: float | None = None) -> np.ndarray:
    """Valid splits ``[n, 6]`` (attn_tp, attn_dp, kvp, ep, moe_tp, pp) for the scenario."""
    from search.splits import valid_splits

    if chips_max is not None:
        chips_max = check_number("chips_max", chips_max, 1, 1e9, integer=True)
    cap = float(sc.system.max_chips) if chips_max is None else float(chips_max)
    if not math.isfinite(cap):
        raise UserError(
            f"system {sc.system_name} has a free chip count; give --chips or --chips-max"
        )
    wl = sc.workload
    table = np.asarray(valid_splits(sc.model, cap, float(wl.batch), float(wl.context_tokens)))
    if len(table) == 0:
        raise UserError(f"no valid parallel split with at most {cap:g} chips")
    return table


def as_parallelism(table: np.ndarray) -> Parallelism:
    """A stacked :class:`Parallelism` from a ``[n, 6]`` table."""
    t = jnp.asarray(table, dtype=jnp.float32)
    return Parallelism(*(t[:, i] for i in range(6)))


def exhaustive_best(sc: Scenario, table: np.ndarray, objective: str = "utps"):
    """Best feasible row of ``table`` by ``objective`` (float32 sweep, float64 re-score
    of the winner). Returns ``(row_index, DecodeResult of the winner)``."""
    check_objective(objective, RATE_OBJECTIVES)
    from search.interpret import supports

    if len(table) <= INTERPRET_MAX_ROWS and supports(sc.model, sc.precision, sc.system, sc.mode):
        return _exhaustive_interpreted(sc, table, objective)

    def score(par):
        r = decode_step(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)
        return jnp.where(r.fits, getattr(r, objective), -jnp.inf)

    s = np.asarray(jit_fast_compile(jax.vmap(score))(as_parallelism(table)))
    if not np.isfinite(s.max()):
        raise UserError(
            "no split fits: every candidate exceeds memory or the chip budget "
            "(try more chips, a smaller context or batch, or a narrower precision)"
        )
    i = int(np.argmax(s))
    with jax.enable_x64(True):
        par = Parallelism(*(jnp.float64(v) for v in table[i]))
        r = jit_fast_compile(decode_step)(
            sc.model, sc.precision, sc.system, par, sc.workload, sc.mode
        )
        r = jax.tree.map(np.asarray, r)
    return i, r


INTERPRET_MAX_ROWS = 4096
"""Most split rows :func:`exhaustive_best` scores with the interpreter
(:mod:`search.interpret`, no compilation; larger tables compile one vmapped program)."""


def _exhaustive_interpreted(sc: Scenario, table: np.ndarray, objective: str):
    """:func:`exhaustive_best` by the interpreter: the same float32 scores (to float
    rounding) and first maximum, the winner re-scored in float64."""
    from search.interpret import eval_splits

    args = (sc.model, sc.precision, sc.system)
    r = eval_splits(*args, table, sc.workload, sc.mode, np.float32)
    s = np.where(r.fits, getattr(r, objective), -np.inf).astype(np.float32)
    if not np.isfinite(s.max()):
        raise UserError(
            "no split fits: every candidate exceeds memory or the chip budget "
            "(try more chips, a smaller context or batch, or a narrower precision)"
        )
    i = int(np.argmax(s))
    r = eval_splits(*args, table[i : i + 1], sc.workload, sc.mode, np.float64)
    return i, jax.tree.map(lambda x: x[0], r)


def main_job(
    sc: Scenario,
    chips_max: float | None = None,
    objective: str = "utps",
    multiples=(2.0, 5.0),
    top_sensitivities: int = 8,
    progress=None,
) -> dict:
    """Best split, latency targets for ``multiples`` × its UTPS, top sensitivities.

    *Length:* The main job's steps in the order the report prints them.
    """
    from search.sensitivity import elasticities
    from search.target import solve_targets

    def note(msg):
        if progress:
            progress(msg)

    t0 = time.perf_counter()
    multiples = [check_number("multiples", m, 0, 1e6, lo_open=True) for m in multiples]
    top_sensitivities = int(
        check_number("top_sensitivities", top_sensitivities, 0, 1000, integer=True)
    )
    note("enumerating valid splits")
    table = split_table(sc, chips_max)
    note(f"evaluating {len(table)} splits")
    if len(table) <= EXHAUSTIVE_MAX_ROWS:
        i, r = exhaustive_best(sc, table, objective)
        best_row = table[i]
        method = f"exhaustive over {len(table)} valid splits"
    else:  # pragma: no cover - very large tables
        from search.gradient import optimize

        g = optimize(sc, table, objective=objective)
        best_row = np.array(
            [g.parallelism[c] for c in ("attn_tp", "attn_dp", "kvp", "ep", "moe_tp", "pp")], float
        )
        r = g.result
        method = f"gradient search ({g.evaluations} evaluations)"
    par = Parallelism(*(float(v) for v in best_row))
    best = result_dict(r)
    note("solving latency targets")
    targets = [best["utps"] * m for m in multiples]
    answers = solve_targets(sc, as_parallelism(table), targets, knob="latency")
    from search.paths import scale_system
    from search.target import best_utps

    ideal = scale_system(sc.system, "latency", 0.0)
    ceiling = float(jit_fast_compile(lambda: best_utps(sc, as_parallelism(table), ideal)[0])())
    note("computing sensitivities")
    el = elasticities(sc, par)[:top_sensitivities]
    return {
        "method": method,
        "splits": int(len(table)),
        "parallelism": parallelism_dict(par),
        "result": best,
        "targets": [
            {"multiple": m, **a.as_dict()} for m, a in zip(multiples, answers, strict=True)
        ],
        "zero_latency_utps": ceiling,
        "sensitivities": [e.__dict__ for e in el],
        "seconds": time.perf_counter() - t0,
    }
