r"""Small grids without compiling: the split table enumerated, the jaxpr run by NumPy.

The grid engine's fused sweep (:mod:`search.sweep`) pays off over many chunks; compiling it
costs seconds, while a space of a few thousand candidates evaluates in tens of
milliseconds through the interpreter (:mod:`search.interpret`). :func:`grid_small` gives
the result :func:`search.grid.grid` gives, computed the same way:

1. every candidate of each sub-grid, in index order (mixed radix, outermost axis first,
   split innermost), with its records built on the host exactly as
   :func:`search.space.candidate_records` builds them (choice axes pick a row of the
   stacked records, then the paths are set in axis order);
2. one **float32** pass (the sweep's precision): score, feasibility, the space's
   constraints and the counts per rejection reason; the running top-k becomes the
   ``k = max(64, 2·top)`` best scores with ties to the lowest index, the per-group best
   (Pareto fronts) the best UTPS per (composition group, batch value), lowest index on
   ties;
3. the union of those winners re-scored in **float64** (the grid's reported values) and
   turned into rows by :func:`search.grid._rows`; the top is sorted by score, then
   sub-grid, then index.

So the top-k and fronts are those of the sweep (the tests compare both engines); values
agree to float rounding (XLA fuses, and may contract ``a·b + c`` into one rounding).
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from search import evaluate as E
from search import interpret
from search.grid_result import GridResult
from search.objectives import score_of
from search.pareto import fronts
from search.paths import records_of, set_path
from search.space import CHOICES, Space, SubGrid
from search.sweep import CONSTRAINTS, N_COUNTS, REASON_BITS, constraint_fails

SMALL_GRID_MAX = 4096
"""Most candidates (all sub-grids) that :func:`search.grid.grid` evaluates with the
interpreter by default; larger spaces compile the fused sweep."""


def _combo_records(sub: SubGrid, digits: tuple[int, ...]) -> tuple[E._Flat, tuple]:
    """Flat records and workload numbers of one combination of the non-split axes
    (host twin of :func:`search.space.candidate_records`)."""
    values = {a.name: a.values[d] for a, d in zip(sub.axes, digits, strict=True)}
    rec = records_of(sub.base)
    for name in CHOICES:
        if name in values:
            i = int(round(values.pop(name)))
            picked = jax.tree.map(lambda x, i=i: np.asarray(x)[i], sub.choices[name])
            if name == "model":
                rec = rec._replace(model=picked[0], precision=picked[1])
            else:
                rec = rec._replace(system=picked)
    for path, v in values.items():
        rec = set_path(rec, path, v)
    flat = E._Flat(E.Records(rec.model, rec.precision, rec.system, rec.mode))
    wl = tuple(float(getattr(rec.workload, f)) for f in E.WORKLOAD_FIELDS)
    return flat, wl


class _Candidates:
    """Every candidate of one sub-grid: digits ``[N, D]`` in index order, and the packed
    evaluation of any subset (records built once per combination of the other axes)."""

    def __init__(self, sub: SubGrid):
        self.sub = sub
        shape = sub.shape
        self.digits = np.indices(shape).reshape(len(shape), -1).T.astype(np.int64)
        outer = shape[:-1]
        n_combo = math.prod(outer)
        self.combos = [
            _combo_records(sub, tuple(np.unravel_index(c, outer))) for c in range(n_combo)
        ]
        self.n_split = shape[-1]

    def packed(self, digits: np.ndarray, dtype) -> np.ndarray:
        """Packed outputs ``[n, N_OUT]`` of the candidates ``digits [n, D]``."""
        combo = (
            np.ravel_multi_index(digits[:, :-1].T, self.sub.shape[:-1])
            if len(self.sub.shape) > 1
            else np.zeros(len(digits), np.int64)
        )
        flats = [self.combos[c][0] for c in combo]
        rows = np.concatenate(
            [
                np.asarray(self.sub.splits, np.float64)[digits[:, -1]],
                np.asarray([self.combos[c][1] for c in combo], np.float64).reshape(-1, 6),
            ],
            axis=1,
        )
        return interpret.packed_rows(flats, rows, dtype)


def _sweep(cands: _Candidates, space: Space, objective: str, k: int, pareto: bool):
    """The sweep's float32 pass: ``(top digits, group digits, counts)``."""
    sub = cands.sub
    r = E.decode_result(cands.packed(cands.digits, np.float32))
    fails = [np.asarray(f) for f in constraint_fails(r, space.min_system_tps, space.min_utps)]
    assert len(fails) == len(CONSTRAINTS)
    fits = np.asarray(r.fits, bool)
    ok = fits.copy()
    for f in fails:
        ok &= ~f
    score = np.where(ok, np.asarray(score_of(r, objective), np.float32), -np.inf)
    counts = np.zeros(N_COUNTS, np.int64)
    counts[0], counts[1] = len(score), int(ok.sum())
    reason = np.asarray(r.reason, np.int64)
    for j, bit in enumerate(REASON_BITS):
        counts[2 + j] = int(((reason & bit) != 0).sum())
    for j, f in enumerate(fails):
        counts[2 + len(REASON_BITS) + j] = int((fits & f).sum())
    order = np.argsort(-score, kind="stable")[:k]  # ties: lowest index first
    top = cands.digits[order[np.isfinite(score[order])]]
    grp = cands.digits[:0]
    if pareto:
        gscore = np.where(ok, np.asarray(r.utps, np.float32), -np.inf)
        gid = np.asarray(sub.group, np.int64)[cands.digits[:, -1]]
        if sub.batch_axis is not None:
            gid = gid + len(sub.group_labels) * cands.digits[:, sub.batch_axis]
        idx = np.arange(len(gscore))
        by = np.lexsort((idx, -gscore, gid))  # per group: best first, then lowest index
        first = by[np.r_[True, gid[by][1:] != gid[by][:-1]]]
        grp = cands.digits[first[np.isfinite(gscore[first])]]
    return top, grp, counts


def _sub_grid_rows(sub, space, objective, top, pareto, si, n_subs):
    """Top rows, group rows and counts of one sub-grid (see the module docstring)."""
    from search.grid import _rows

    cands = _Candidates(sub)
    top_d, grp_d, counts = _sweep(cands, space, objective, int(max(64, 2 * top)), pareto)
    digits = np.concatenate([top_d, grp_d]).astype(np.int64)
    if len(digits) == 0:
        return [], [], counts
    digits = np.unique(digits, axis=0)
    r = E.decode_result(cands.packed(digits, np.float64))
    rows = _rows(sub, digits, r, objective, space, si, n_subs > 1)
    pick = lambda d: [rows[t] for t in map(tuple, d.tolist()) if t in rows]  # noqa: E731
    return pick(top_d), pick(grp_d), counts


def grid_small(space: Space, subs, objective: str, top: int, pareto: bool, progress=None):
    """:func:`search.grid.grid` of a small space by the interpreter (arguments checked by
    the caller; ``subs`` its sub-grids). The result's ``info["engine"]`` is
    ``"interpreter"``, ``info["devices"]`` 1 (the host)."""
    from search.grid import _counts_dict, _groups_exact, _sub_info

    t0 = time.perf_counter()
    total = sum(s.size for s in subs)
    top_rows, group_rows, counts = [], [], np.zeros(N_COUNTS, np.int64)
    for si, sub in enumerate(subs):
        best, grp, cnt = _sub_grid_rows(sub, space, objective, top, pareto, si, len(subs))
        counts += cnt
        top_rows += best
        group_rows += grp
        if progress is not None:
            progress(int(counts[0]), total)
    top_rows.sort(key=lambda rw: (-rw["score"], rw.get("sub_grid", 0), rw["index"]))
    top_rows = top_rows[:top]
    for i, rw in enumerate(top_rows):
        rw["rank"] = i + 1
    evaluated = int(counts[0])
    elapsed = time.perf_counter() - t0
    return GridResult(
        top=top_rows,
        pareto=fronts(group_rows) if pareto else None,
        groups=sorted(group_rows, key=lambda rw: rw["result"]["chips"]) if pareto else None,
        counts=_counts_dict(counts),
        partial=False,
        evaluated=evaluated,
        total=total,
        objective=objective,
        elapsed_s=elapsed,
        rate=evaluated / max(elapsed, 1e-9),
        info={
            "devices": 1,
            "processes": 1,
            "sub_grids": [_sub_info(s) for s in subs],
            "interrupted": False,
            "pareto_exact": all(_groups_exact(s) for s in subs),
            "rate_measured": False,
            "engine": "interpreter",
        },
    )
