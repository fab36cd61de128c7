"""Sweep one spec field with the best split re-optimised at every point.

For each value ``v`` of a path (:mod:`search.paths`, e.g. ``tiers.nvlink.hop_latency_s``,
``chip.hbm_bw_bytes_per_s``, ``context``, ``latency_scale``, ``system.max_chips``), every
valid split of the scenario is evaluated (one ``vmap`` over points × splits) and the best
feasible one by the objective is kept with its result and breakdown. Sweeping
``system.max_chips`` (alias ``chips``) restricts the splits to those with at most ``v``
chips: the reference slide's "UTPS against the number of dies".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.decode import decode_step
from search.errors import UserError
from search.jit import jit_fast_compile
from search.optimize import as_parallelism, split_table
from search.paths import records_of, resolve_path, set_path
from search.results import parallelism_dict, result_dict
from search.scenario import Scenario

CHIP_PATHS = ("system.max_chips",)

CALL_CANDIDATES = 1 << 20
"""Most (point, split) candidates evaluated per call: memory is bounded by this, not by
the number of points (each call keeps only the best split of each of its points)."""


def sweep_param(
    sc: Scenario,
    path: str,
    values,
    chips_max: float | None = None,
    objective: str = "utps",
) -> dict:
    """Best split and its result at every value of ``path``.

    *Length:* Argument checks, one traced sweep and the result assembly, in order.

    Returns a dict with ``path``, ``values``, per point ``score``, ``parallelism`` (dicts),
    ``results`` (result dicts, ``None`` where no split is feasible), and the number of
    splits considered.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise UserError("values: need at least one value", arg="values")
    rec = records_of(sc)
    canon = "system.max_chips" if path in ("chips", "max_chips") else resolve_path(rec, path)
    chips_sweep = canon in CHIP_PATHS
    cap = float(np.floor(values.max())) if chips_sweep else chips_max
    table = split_table(sc, cap)
    splits = as_parallelism(table)

    def at(v):
        r = records_of(set_path(sc, canon, v))

        def one(par):
            res = decode_step(r.model, r.precision, r.system, par, r.workload, r.mode)
            ok = res.fits & (res.chips <= v if chips_sweep else True)
            return jnp.where(ok, getattr(res, objective), -jnp.inf), res

        scores, res = jax.vmap(one)(splits)
        j = jnp.argmax(scores)  # the first best split
        return scores[j], j, jax.tree.map(lambda x: x[j], res)

    # points in calls of a fixed size (the last one padded): one compile, bounded memory
    per = int(min(len(values), max(1, CALL_CANDIDATES // len(table))))
    f = jit_fast_compile(jax.vmap(at))
    parts = []
    for start in range(0, len(values), per):
        chunk = values[start : start + per]
        chunk = np.concatenate([chunk, np.full(per - len(chunk), chunk[-1])])
        out = f(jnp.asarray(chunk, jnp.float32))
        n = len(values) - start  # the padding of the last call is dropped
        parts.append(jax.tree.map(lambda x, n=n: np.asarray(x)[:n], out))
    scores, best, res = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
    out_pars, out_res, out_score = [], [], []
    for i, j in enumerate(best):
        if not np.isfinite(scores[i]):
            out_pars.append(None)
            out_res.append(None)
            out_score.append(float("nan"))
            continue
        row = jax.tree.map(lambda x, i=i: x[i], res)
        out_pars.append(parallelism_dict(as_parallelism(table[j : j + 1]), 0))
        out_res.append(result_dict(row))
        out_score.append(float(scores[i]))
    return {
        "path": canon,
        "objective": objective,
        "values": values.tolist(),
        "score": out_score,
        "parallelism": out_pars,
        "results": out_res,
        "splits": int(len(table)),
    }
