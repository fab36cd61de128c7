r"""Grid search: every candidate of a :class:`~search.space.Space`, best first.

::

    from search.space import make_space
    from search.grid import grid

    space = make_space("kimi-k2.5", "gb200-nvl72", axes={"batch": [1, 8, 64]})
    res = grid(space, objective="utps", top=10, pareto=True)
    res.best["parallelism"], res.best["result"]["utps"]
    res.to_dataframe()

How it runs (details in :mod:`search.sweep`):

1. the space becomes sub-grids (valid split table × other axes, in index space);
2. each sub-grid is swept on all devices in float32 by a jitted ``shard_map`` that
   carries a running top-k, the per-group best (for the Pareto fronts) and counts per
   rejection reason; memory is bounded by the chunk size whatever the grid size;
3. the host calls it repeatedly (about a quarter second of work per call), which gives
   progress, ``time_limit_s`` and Ctrl-C (``KeyboardInterrupt``) between calls: the
   result then holds the best so far and ``partial = True``;
4. the winners (the top ``max(64, 2·top)`` of the f32 sweep and every group's best) are
   re-scored in float64 with ``jax.enable_x64``; those values are reported.

**Compiles once per space shape**: the jitted sweep is cached per (records, shape,
chunk, objective, constraints, devices); axis values and split tables are arguments.

**Several devices** (``jax.devices()``): each owns a contiguous range of chunks; the
result is identical on 1 or many devices (same top-k, same tie order: lowest index).
For fake CPU devices set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (or
``jax.config.update("jax_num_cpu_devices", N)``) before JAX initialises its backend.

**Several hosts**: start one process per host with the same command and call
``jax.distributed.initialize(coordinator_address="host0:PORT", num_processes=P,
process_id=i)`` before any JAX computation (on Slurm, Open MPI or TPU pods the
arguments are optional); ``jax.devices()`` is then global and ``grid`` shards over all
of them. Every process runs the same host loop: the number of chunks per call and the
stop flag (time limit) are broadcast from process 0. The CLI does this with
``tpsopt grid --distributed COORD:PORT,NUM_PROCESSES,PROCESS_ID`` (or the environment
variables ``TPSOPT_COORDINATOR``, ``TPSOPT_NUM_PROCESSES``, ``TPSOPT_PROCESS_ID``).
On CPU, cross-process collectives use gloo (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.decode import decode_step
from costmodel.feasibility import MESSAGES
from search import results
from search.errors import UserError
from search.grid_result import GridResult
from search.jit import jit_fast_compile
from search.objectives import check_objective, score_of
from search.pareto import fronts
from search.space import Space, SubGrid, candidate_records, cast_records
from search.splits import DEGREES, family
from search.sweep import (
    CONSTRAINTS,
    N_COUNTS,
    REASON_BITS,
    Kernels,
    Plan,
    choose_chunk,
    choose_tile,
    constraint_fails,
    device_chunks,
    initial_state,
    local,
    tables_of,
)

TARGET_CALL_S = 0.25
"""Wall time aimed at per host call (progress, time limit and Ctrl-C granularity)."""

MAX_STEPS_PER_CALL = 4096
"""Most chunks per device per host call."""

MAX_TOP = 10_000
"""Most configurations a grid returns (the sweep keeps ``max(64, 2·top)``)."""

_KERNELS: dict = {}
_RESCORE: dict = {}

CONSTRAINT_MESSAGES = {
    "min_system_tps": "system tokens/s below the minimum",
    "min_utps": "tokens/s per user below the minimum",
}


def _leaves_key(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple(np.asarray(x, np.float64).tobytes() for x in leaves))


def _kernels(sub: SubGrid, plan: Plan, mesh) -> Kernels:
    key = (
        _leaves_key((sub.base, dict(sub.choices))),
        tuple(a.name for a in sub.axes),
        sub.batch_axis,
        len(sub.group_labels),
        plan,
        tuple(d.id for d in mesh.devices.flat),
    )
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = Kernels(sub, plan, mesh)
    return k


def trace_count() -> int:
    """Traces of the sweep kernel so far (all cached kernels; for compile-once tests)."""
    return sum(k.traces for k in _KERNELS.values())


def _mesh(devices=None):
    devs = list(devices) if devices is not None else jax.devices()
    return jax.sharding.Mesh(np.asarray(devs), ("cand",))


def _sync(values: list[int]) -> list[int]:
    """Process 0's values on every process (multi-host); identity otherwise."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    arr = multihost_utils.broadcast_one_to_all(np.asarray(values, np.int32))
    return [int(x) for x in np.asarray(arr)]


# --------------------------------------------------------------------------- sweep


def _sweep_sub(sub, plan, mesh, budget):
    """Sweep one sub-grid: ``((top values, top digits), (group values, group digits) or
    None, counts, stopped)``; host calls of ~``TARGET_CALL_S`` each (the chunks per call
    adapt to the measured rate; a dynamic loop bound, so no recompilation)."""
    kern = _kernels(sub, plan, mesh)
    tables = tables_of(sub)
    state, _ = initial_state(plan, mesh, sub.size)
    left = device_chunks(sub.size, plan)
    full = sum(left) * plan.chunk >= sub.size
    counts = np.zeros(len(REASON_BITS) + len(CONSTRAINTS) + 2, np.int64)
    n_steps, stopped = 1, False
    cap = max(1, min(MAX_STEPS_PER_CALL, (2**31 - 1) // (plan.chunk * plan.n_devices)))
    try:
        while max(left) > 0:
            stop = budget.should_stop()
            n_steps, stop = _sync([n_steps, int(stop)])
            if stop:
                stopped = True
                break
            t0 = time.perf_counter()
            new_state, inc = kern.step(state, jnp.int32(n_steps), *tables)
            inc = local(inc).astype(np.int64)
            state = new_state
            dt = time.perf_counter() - t0
            counts += inc
            left = [max(0, x - n_steps) for x in left]
            budget.advance(int(inc[0]), dt)
            if dt > 0 and budget.warm:
                n_steps = int(np.clip(n_steps * TARGET_CALL_S / dt, 1, cap))
            else:
                n_steps = min(cap, n_steps * 2)
    except KeyboardInterrupt:
        stopped = True
        budget.interrupted = True
    stopped = stopped or not full
    out = [local(x) for x in kern.final(state)]
    groups = (out[2], out[3]) if plan.n_groups else None
    return (out[0], out[1]), groups, counts, stopped


class _Budget:
    """Time limit, progress reporting and rate measurement across sub-grids."""

    def __init__(self, total, time_limit_s, progress):
        self.total, self.limit, self.progress = total, time_limit_s, progress
        self.t0 = time.perf_counter()
        self.done = 0
        self.sweep_s = 0.0
        self.swept = 0
        self.warm = False
        self.interrupted = False
        self.calls = 0

    def should_stop(self) -> bool:
        """Time is up (checked between calls; at least one call always runs)."""
        if self.limit is None or self.calls == 0:
            return False
        return time.perf_counter() - self.t0 >= self.limit

    def advance(self, n: int, dt: float) -> None:
        self.calls += 1
        self.done += n
        if self.warm:  # the first call of a sub-grid includes compilation
            self.sweep_s += dt
            self.swept += n
        self.warm = True
        if self.progress is not None:
            self.progress(self.done, self.total)

    def new_subgrid(self):
        self.warm = False


# --------------------------------------------------------------------------- rescore


def _rescore_fn(sub: SubGrid):
    key = (_leaves_key((sub.base, dict(sub.choices))), tuple(a.name for a in sub.axes))
    f = _RESCORE.get(key)
    if f is None:
        with jax.enable_x64(True):
            base = cast_records(sub.base, np.float64)
            choices = cast_records(dict(sub.choices), np.float64)

        def one(row, vals):
            rec, par = candidate_records(base, row, vals, choices)
            return decode_step(
                rec.model, rec.precision, rec.system, par, rec.workload, rec.mode, fused=True
            )

        f = _RESCORE[key] = jit_fast_compile(jax.vmap(one))
    return f


def rescore(sub: SubGrid, digits: np.ndarray):
    """Float64 :class:`~costmodel.decode.DecodeResult` (host arrays) of candidates given
    by their digits ``[n, D]`` (n padded to a power of two to bound recompiles)."""
    n = len(digits)
    size = max(16, 1 << math.ceil(math.log2(max(n, 1))))
    d = np.zeros((size, digits.shape[1]), np.int64)
    d[:n] = digits
    rows = sub.splits[d[:, -1]]
    vals = {a.name: np.asarray(a.values, np.float64)[d[:, j]] for j, a in enumerate(sub.axes)}
    with jax.enable_x64(True):
        r = _rescore_fn(sub)(jnp.asarray(rows, jnp.float64), vals)
        return jax.tree.map(lambda x: np.asarray(x)[:n], r)


def _rows(sub, digits, r, objective, space: Space, sub_index, multi) -> dict[tuple, dict]:
    """Result rows of rescored candidates, by digits (feasible in float64 only)."""
    score = np.asarray(score_of(r, objective), np.float64)
    fails = constraint_fails(r, space.min_system_tps, space.min_utps)
    ok = np.array(r.fits, bool)
    for f in fails:
        ok &= ~np.asarray(f, bool)
    out = {}
    for i, dg in enumerate(digits):
        if not ok[i] or not np.isfinite(score[i]):
            continue
        index = _ravel(dg, sub.shape)
        split = sub.splits[dg[-1]]
        axes, model, system = {}, sub.names[0], sub.names[1]
        for j, a in enumerate(sub.axes):
            if a.name == "model":
                model = a.labels[dg[j]]
            elif a.name == "system":
                system = a.labels[dg[j]]
            else:
                axes[a.name] = float(a.values[dg[j]])
        row = {
            "index": index,
            "model": model,
            "system": system,
            "family": family(split),
            "parallelism": {k: int(v) for k, v in zip(DEGREES, split, strict=True)},
            "axes": axes,
            "score": float(score[i]),
            "result": results.result_dict(r, i),
        }
        if multi:
            row["sub_grid"] = sub_index
        out[tuple(int(x) for x in dg)] = row
    return out


def _ravel(digits, shape) -> int:
    i = 0
    for d, r in zip(digits, shape, strict=True):
        i = i * int(r) + int(d)
    return i


# --------------------------------------------------------------------------- API


def _check_args(space, objective, top, chunk, time_limit_s) -> None:
    """One-line :class:`UserError` for a bad argument of :func:`grid` (naming it)."""
    if not isinstance(space, Space):
        raise UserError(
            f"space: expected a Space (see search.space.make_space), got {space!r}", arg="space"
        )
    check_objective(objective)
    ok_top = isinstance(top, int | np.integer) and not isinstance(top, bool)
    if not (ok_top and 1 <= top <= MAX_TOP):
        raise UserError(f"top {top!r}: must be an integer in [1, {MAX_TOP}]", arg="top")
    if chunk is not None and not (isinstance(chunk, int | np.integer) and 1 <= chunk <= 1 << 24):
        raise UserError(f"chunk {chunk!r}: must be an integer in [1, {1 << 24}]", arg="chunk")
    if time_limit_s is not None and not (time_limit_s >= 0 and math.isfinite(time_limit_s)):
        raise UserError(f"time_limit_s {time_limit_s!r}: must be a number ≥ 0", arg="time_limit_s")
    if objective == "energy":
        _check_energy(space)


def _sub_grid_rows(sub: SubGrid, plan: Plan, mesh, budget, space, si: int, n_subs: int):
    """Sweep one sub-grid and re-score its winners exactly.

    Returns ``(top rows, group rows, counts, stopped)``: the rows of the sweep's running
    top-k and (with fronts) of its per-group winners, each re-scored in float64 by
    :func:`rescore` (one call for their union), the sub-grid's count vector, and whether
    the sweep stopped early (time limit or Ctrl-C).
    """
    (tv, td), groups, cnt, stopped = _sweep_sub(sub, plan, mesh, budget)
    top_digits = td[np.isfinite(tv)]
    grp_digits = groups[1][np.isfinite(groups[0])] if groups is not None else td[:0]
    digits = np.concatenate([top_digits, grp_digits]).astype(np.int64)
    if len(digits) == 0:
        return [], [], cnt, stopped
    digits = np.unique(digits, axis=0)
    rows = _rows(sub, digits, rescore(sub, digits), plan.objective, space, si, n_subs > 1)
    pick = lambda d: [rows[t] for t in map(tuple, d.tolist()) if t in rows]  # noqa: E731
    return pick(top_digits), pick(grp_digits) if groups is not None else [], cnt, stopped


def grid(
    space: Space,
    objective: str = "utps",
    top: int = 10,
    pareto: bool = True,
    chunk: int | None = None,
    time_limit_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    devices=None,
    engine: str = "auto",
) -> GridResult:
    """Evaluate every candidate of ``space``; return the best and the fronts.

    *Length:* Half of it is the argument documentation; the steps are :func:`_check_args`,
    :func:`_sub_grid_rows` and the result assembly.

    Args:
      space: a :class:`~search.space.Space` (see :func:`search.space.make_space`).
      objective: one of :data:`search.objectives.OBJECTIVES` (maximised; ``tpot`` and
        ``energy`` minimised).
      top: how many configurations to return.
      pareto: also track the best per (chips, composition, batch) group and return the
        Pareto fronts UTPS vs tokens/s per chip and UTPS vs chips.
      chunk: candidates per device per chunk (static; default 2^16, smaller for small
        grids). Memory is O(chunk), whatever the grid size.
      time_limit_s: stop after about this many seconds (compilation included); the
        result is then ``partial``.
      progress: ``progress(done, total)`` called after each host call.
      devices: devices to shard over (default ``jax.devices()``, all processes).
      engine: ``"sweep"`` (the compiled, sharded sweep), ``"interpreter"`` (every
        candidate through the NumPy evaluator of the cost model's jaxpr, no compilation:
        :mod:`search.grid_small`) or ``"auto"``: the interpreter for spaces of at most
        :data:`search.grid_small.SMALL_GRID_MAX` candidates when ``chunk``, ``devices``
        and ``time_limit_s`` are not given and JAX runs one process, else the sweep.
        Both give the same top-k, fronts and counts.

    Returns:
      :class:`~search.grid_result.GridResult`. Ctrl-C (``KeyboardInterrupt``) during the
      sweep returns the best so far with ``partial = True``.
    """
    _check_args(space, objective, top, chunk, time_limit_s)
    subs = space.subgrids()
    if _use_interpreter(engine, subs, chunk, devices, time_limit_s):
        from search.grid_small import grid_small

        return grid_small(space, subs, objective, top, pareto, progress)
    mesh = _mesh(devices)
    n_dev = mesh.devices.size
    total = sum(s.size for s in subs)
    budget = _Budget(total, time_limit_s, progress)
    top_rows, group_rows, counts, partial = [], [], np.zeros(N_COUNTS, np.int64), False
    for si, sub in enumerate(subs):
        if partial:
            break
        tile, size = (0, 0) if chunk is not None else choose_tile(sub.shape, n_dev)
        plan = Plan(
            shape=sub.shape,
            chunk=size if tile else choose_chunk(sub.size, n_dev, chunk),
            tile=tile,
            k=int(max(64, 2 * top)),
            n_groups=sub.n_groups if pareto else 0,
            objective=objective,
            n_devices=n_dev,
            min_system_tps=space.min_system_tps,
            min_utps=space.min_utps,
        )
        budget.new_subgrid()
        best, grp, cnt, partial = _sub_grid_rows(sub, plan, mesh, budget, space, si, len(subs))
        counts += cnt
        top_rows += best
        group_rows += grp
    top_rows.sort(key=lambda rw: (-rw["score"], rw.get("sub_grid", 0), rw["index"]))
    top_rows = top_rows[:top]
    for i, rw in enumerate(top_rows):
        rw["rank"] = i + 1
    evaluated = int(counts[0])
    elapsed = time.perf_counter() - budget.t0
    rate = budget.swept / budget.sweep_s if budget.sweep_s > 0 else evaluated / max(elapsed, 1e-9)
    return GridResult(
        top=top_rows,
        pareto=fronts(group_rows) if pareto else None,
        groups=sorted(group_rows, key=lambda rw: rw["result"]["chips"]) if pareto else None,
        counts=_counts_dict(counts),
        partial=partial,
        evaluated=evaluated,
        total=total,
        objective=objective,
        elapsed_s=elapsed,
        rate=rate,
        info={
            "devices": n_dev,
            "processes": jax.process_count(),
            "sub_grids": [_sub_info(s) for s in subs],
            "interrupted": budget.interrupted,
            "pareto_exact": all(_groups_exact(s) for s in subs),
            "rate_measured": budget.sweep_s > 0,
            "engine": "sweep",
        },
    )


def _use_interpreter(engine, subs, chunk, devices, time_limit_s) -> bool:
    """Whether :func:`grid` takes the small-space path (see its ``engine`` argument)."""
    if engine not in ("auto", "sweep", "interpreter"):
        raise UserError(f"engine {engine!r}: allowed auto, sweep, interpreter", arg="engine")
    if engine != "auto":
        return engine == "interpreter"
    from search.grid_small import SMALL_GRID_MAX
    from search.interpret import supports

    small = sum(s.size for s in subs) <= SMALL_GRID_MAX
    small = small and all(supports(s.base) for s in subs)
    small = small and all(np.ndim(x) <= 1 for s in subs for x in jax.tree.leaves(s.choices))
    plain = chunk is None and devices is None and time_limit_s is None
    return small and plain and not jax.distributed.is_initialized()


def _counts_dict(c: np.ndarray) -> dict:
    evaluated, feasible = int(c[0]), int(c[1])
    rejected = {}
    for j, bit in enumerate(REASON_BITS):
        if c[2 + j]:
            rejected[MESSAGES[bit]] = int(c[2 + j])
    for j, name in enumerate(CONSTRAINTS):
        if c[2 + len(REASON_BITS) + j]:
            rejected[CONSTRAINT_MESSAGES[name]] = int(c[2 + len(REASON_BITS) + j])
    return {
        "evaluated": evaluated,
        "feasible": feasible,
        "infeasible": evaluated - feasible,
        "rejected": rejected,
    }


def _groups_exact(s: SubGrid) -> bool:
    """Whether the groups separate batch values (else, with more than
    :data:`search.space.MAX_GROUPS` groups, the tokens/s-per-chip front is approximate)."""
    return s.batch_axis is not None or all(a.name != "workload.batch" for a in s.axes)


def _sub_info(s: SubGrid) -> dict:
    return {
        "model": s.names[0],
        "system": s.names[1],
        "shape": list(s.shape),
        "axes": [a.name for a in s.axes] + ["split"],
        "splits": len(s.splits),
        "size": s.size,
    }


def _check_energy(space: Space):
    for sc in space.scenarios:
        c = sc.system.chip
        e = float(c.hbm_energy_j_per_byte) + float(c.sram_energy_j_per_byte)
        e += float(c.flop_energy_j_per_flop)
        if e <= 0:
            raise UserError(
                f"objective energy: system {sc.system_name} has no energy data "
                "(chip energies per byte/FLOP are 0); choose another objective",
                arg="objective",
            )


class _CallableModule(types.ModuleType):
    """``search.grid(space, ...)`` (the module called) is :func:`grid`, as the issue's
    Python API reads; ``from search.grid import grid`` works as usual."""

    def __call__(self, *args, **kwargs):
        return grid(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
