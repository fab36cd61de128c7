r"""Gradient search over parallel splits and hardware knobs, with exact re-scoring.

What worked on this kind of problem (``docs/design.md`` §6; DOSA, MICRO'23):
multi-start, rounding, and an exact integer-neighbourhood check; single starts land in the
wrong basin about half the time. The recipe here:

1. **Relax** in log space: ``u = log2(attn_tp, attn_dp, kvp, ep, pp)``; ``moe_tp`` is
   derived (``tp·kvp·dp/ep``) so attention and MoE use the same chips; hardware knobs
   ``v = log(x)`` within ``[log lo, log hi]``.
2. **Objective** (minimised): ``−log score + μ·Σ softplus(κ·g_i)/κ`` over the violations
   ``g``: ``log(mem/cap)`` (capacity), ``log2 chips − log2 max_chips`` (chip budget),
   ``−log2 moe_tp`` (moe_tp ≥ 1), ``log2 attn_dp − log2 B`` (a sequence per replica), and
   a user budget ``budget(knobs) ≤ 0``. Scale-free (logs), so one μ serves every
   scenario. The model's kinks use the log-space soft-max gradient ``beta`` (values stay
   exact; :mod:`costmodel.smooth`).
3. **Optimise** ``n_starts`` seeded random starts in the box with ``optax.adam`` and a box
   projection after every step, all starts vmapped inside one ``lax.scan``.
4. **Round and check exactly**: each start's degrees snap to the ``n_near`` nearest valid
   splits (log2 distance) of the enumerated table plus the neighbourhood of the nearest
   (every free degree at its value or an adjacent distinct value of the table: the 3^d
   neighbourhood restricted to valid splits); knobs with discrete levels snap to their
   nearest level. Every candidate is re-scored with the exact model (``beta = inf``,
   hard feasibility and budget).
5. **Scan the split table** at the ``n_scans`` best knob combinations found so far (with
   knobs only: the table has at most a few thousand rows, cheap next to a grid over
   knob levels × splits, and it repairs splits that round badly from the relaxation).
6. **Hill-climb exactly** from each of the ``n_climbs`` best distinct candidates: its
   neighbourhood of valid splits (knobs fixed) and ±1 level of every knob (split
   fixed), re-scored exactly, until no neighbour improves (at most ``max_climb``
   rounds). This repairs relaxed optima that round two steps away
   from the discrete one (e.g. EP 4 vs EP 1 when the busiest-expert term is flat).

Deterministic for a seed. ``evaluations`` counts model evaluations: one per start per
step (value and gradient together) plus one per exact candidate; ``forward_equivalents``
counts each step as ``1 + inputs`` forward passes (one JVP per relaxed variable).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search.errors import UserError
from search.jit import jit_fast_compile
from search.scenario import Scenario

DEGREE_COLS = ("attn_tp", "attn_dp", "kvp", "ep", "moe_tp", "pp")
FREE = (0, 1, 2, 3, 5)  # relaxed columns; moe_tp (4) is derived
OBJECTIVES = ("utps", "system_tps", "tps_per_chip")


@dataclass(frozen=True)
class Knob:
    """A hardware number searched in log space.

    ``path`` addresses a float leaf: ``chip.<field>`` or ``tiers.<tier name>.<field>``
    (or ``tiers.*.<field>`` for the same factor on every inter-chip tier). ``levels``
    (optional) are the discrete values rounding may choose; otherwise the continuous
    optimum is kept.
    """

    path: str
    lo: float
    hi: float
    levels: tuple[float, ...] | None = None


def set_knob(system, path: str, value):
    """A copy of ``system`` with the leaf at ``path`` set to ``value`` (traceable)."""
    parts = path.split(".")
    if parts[0] == "chip" and len(parts) == 2:
        if parts[1] not in system.chip.__dataclass_fields__:
            raise UserError(f"knob {path!r}: no chip field {parts[1]!r}")
        return system.replace(chip=system.chip.replace(**{parts[1]: value}))
    if parts[0] == "tiers" and len(parts) == 3:
        names = [t.name for t in system.tiers]
        if parts[1] != "*" and parts[1] not in names:
            raise UserError(f"knob {path!r}: no tier {parts[1]!r}; tiers are {', '.join(names)}")
        tiers = tuple(
            t.replace(**{parts[2]: value})
            if (parts[1] == t.name or (parts[1] == "*" and t.name != "die"))
            else t
            for t in system.tiers
        )
        return system.replace(tiers=tiers)
    raise UserError(f"knob {path!r}: expected chip.<field> or tiers.<tier>.<field>")


def _score(r, objective: str):
    return getattr(r, objective)


@dataclass
class GradientResult:
    """Best exact configuration found, and how it was found."""

    parallelism: dict
    knobs: dict
    score: float
    objective: str
    result: object  # DecodeResult of the winner (exact model)
    evaluations: int
    forward_equivalents: int
    relaxed_score: float  # exact score at the best start's continuous optimum (if feasible)
    starts: int
    steps: int
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        from search.results import result_dict

        return {
            "parallelism": self.parallelism,
            "knobs": self.knobs,
            "objective": self.objective,
            "score": self.score,
            "evaluations": self.evaluations,
            "starts": self.starts,
            "steps": self.steps,
            "result": result_dict(self.result),
        }


def value_and_jacfwd(f, x):
    """``(f(x), ∇f(x))`` by forward mode: one JVP per input, vmapped, primal once.

    With a handful of inputs this compiles ~3× faster than reverse mode on XLA:CPU
    (:mod:`search.jit`) and runs as fast.
    """
    basis = jnp.eye(x.shape[0], dtype=x.dtype)
    y, g = jax.vmap(lambda v: jax.jvp(f, (x,), (v,)), out_axes=(None, 0))(basis)
    return y, g


def neighbourhood(table: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Rows of ``table`` whose every free degree is the centre's value or an adjacent
    distinct value of that column (at most 3^5 rows; ``moe_tp`` follows)."""
    keep = np.ones(len(table), bool)
    for c in FREE:
        vals = np.unique(table[:, c])
        j = int(np.argmin(np.abs(np.log2(vals) - np.log2(center[c]))))
        keep &= np.isin(table[:, c], vals[max(j - 1, 0) : j + 2])
    return table[keep]


def _pad_rows(rows: np.ndarray, minimum: int = 64) -> np.ndarray:
    """``rows`` padded (repeating the first row) to the next power of two ≥ ``minimum``,
    so that exact re-scoring compiles for few distinct shapes across scenarios."""
    n = max(minimum, 1 << int(math.ceil(math.log2(max(len(rows), 1)))))
    return np.vstack([rows, np.repeat(rows[:1], n - len(rows), 0)])


def _log2_table(splits: np.ndarray) -> np.ndarray:
    return np.log2(np.asarray(splits, dtype=np.float64))


def log_improvement_budget(vals: dict, args: dict):
    """A hardware-improvement budget: ``Σ_k max(0, s_k·log(x_k / x_k⁰)) − log B ≤ 0``.

    ``args = {"nominal": {path: x⁰}, "sign": {path: +1 if higher is better else −1},
    "log_budget": log B}``: improving knobs by factors whose product is at most B (e.g.
    B = 4: a 4× lower latency, or 2× lower latency and 2× the bandwidth); degrading a
    knob earns nothing.
    """
    cost = 0.0
    for path, v in vals.items():
        gain = args["sign"][path] * jnp.log(v / args["nominal"][path])
        cost = cost + jnp.maximum(gain, 0.0)
    return cost - args["log_budget"]


def _unpack(x, knob_paths):
    nd = len(FREE)
    deg = jnp.exp2(x[:nd])
    tp, dp, kvp, ep, pp = (deg[i] for i in range(nd))
    par = Parallelism(tp, dp, kvp, ep, tp * kvp * dp / ep, pp)
    vals = {p: jnp.exp(x[nd + i]) for i, p in enumerate(knob_paths)}
    return par, vals


def _evaluate(sc, par, vals, beta):
    s = sc.system
    for path, v in vals.items():
        s = set_knob(s, path, v)
    return decode_step(sc.model, sc.precision, s, par, sc.workload, sc.mode, beta)


@functools.lru_cache(maxsize=32)
def _compiled_search(knob_paths, objective, n_steps, lr, beta, mu, kappa, budget):
    """The multi-start Adam run, compiled once per static configuration; the scenario,
    bounds, starts and budget arguments are traced (one compile serves every scenario of
    the same structure)."""
    opt = optax.adam(lr)

    def loss(x, sc, budget_args):
        par, vals = _unpack(x, knob_paths)
        r = _evaluate(sc, par, vals, beta)
        sp = lambda g: jax.nn.softplus(kappa * g) / kappa  # noqa: E731
        pen = sp(r.log_capacity_ratio) + sp(jnp.log2(r.chips) - jnp.log2(sc.system.max_chips))
        pen = pen + sp(-jnp.log2(par.moe_tp))
        pen = pen + sp(jnp.log2(par.attn_dp) - jnp.log2(sc.workload.batch))
        if budget is not None:
            pen = pen + sp(budget(vals, budget_args))
        return -jnp.log(_score(r, objective)) + mu * pen

    def run_start(x0, lo, hi, sc, budget_args):
        state = opt.init(x0)
        f = lambda x: loss(x, sc, budget_args)  # noqa: E731

        def step(carry, _):
            x, st = carry
            val, g = value_and_jacfwd(f, x)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, st = opt.update(g, st, x)
            x = optax.projections.projection_box(optax.apply_updates(x, upd), lo, hi)
            return (x, st), val

        (x, _), vals = jax.lax.scan(step, (x0, state), None, length=n_steps)
        return x, vals

    return jit_fast_compile(jax.vmap(run_start, in_axes=(0, None, None, None, None)))


@functools.lru_cache(maxsize=32)
def _compiled_exact(knob_paths, objective, budget):
    """Exact re-scoring of candidate (split, knob values) rows, compiled once."""

    def exact(par_row, kvals, sc, budget_args):
        par = Parallelism(*(par_row[i] for i in range(6)))
        vals = {p: kvals[i] for i, p in enumerate(knob_paths)}
        r = _evaluate(sc, par, vals, math.inf)
        ok = r.fits
        if budget is not None:
            ok = ok & (budget(vals, budget_args) <= 0)
        return jnp.where(ok, _score(r, objective), -jnp.inf), r

    return jit_fast_compile(jax.vmap(exact, in_axes=(0, 0, None, None)))


def optimize(
    sc: Scenario,
    splits: np.ndarray,
    knobs: tuple[Knob, ...] = (),
    budget=None,
    budget_args=None,
    objective: str = "utps",
    n_starts: int = 16,
    steps: int = 200,
    lr: float = 0.1,
    beta: float = 20.0,
    mu: float = 10.0,
    kappa: float = 20.0,
    n_near: int = 4,
    max_climb: int = 20,
    n_climbs: int = 4,
    n_scans: int = 2,
    seed: int = 0,
) -> GradientResult:
    """Multi-start relaxed search, then exact rounding (see the module docstring).

    Args:
      sc: the scenario (model, precision, system, workload, mode).
      splits: valid split table ``[n, 6]`` (columns ``DEGREE_COLS``), e.g. from
        ``search.splits.valid_splits``; rounding chooses only among these rows.
      knobs: hardware knobs to co-design (empty: parallelism only).
      budget: ``f(vals, budget_args) -> scalar`` (``vals``: dict path → value); a
        configuration is within budget iff ``≤ 0``. Traceable; a module-level function
        (it keys the compilation cache).
      budget_args: any pytree handed to ``budget`` (traced).
      objective: ``utps`` | ``system_tps`` | ``tps_per_chip`` (maximised).
    """
    if objective not in OBJECTIVES:
        raise UserError(f"--objective {objective!r}: allowed {', '.join(OBJECTIVES)}")
    table = np.asarray(splits, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 6 or len(table) == 0:
        raise UserError("no valid parallel split to search (empty split table)")
    lt = _log2_table(table)
    lo = np.concatenate([lt[:, FREE].min(0), [math.log(k.lo) for k in knobs]])
    hi = np.concatenate([lt[:, FREE].max(0), [math.log(k.hi) for k in knobs]])
    nd = len(FREE)
    paths = tuple(k.path for k in knobs)
    run = _compiled_search(paths, objective, steps, lr, beta, mu, kappa, budget)
    with jax.enable_x64(True):
        sc64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), sc)
        u = jax.random.uniform(jax.random.PRNGKey(seed), (n_starts, len(lo)), dtype=jnp.float64)
        x0 = jnp.asarray(lo) + u * (jnp.asarray(hi) - jnp.asarray(lo))
        xs, hist = run(x0, jnp.asarray(lo), jnp.asarray(hi), sc64, budget_args)
    xs = np.asarray(xs)

    # ---- rounding: per start, its nearest valid splits and their neighbourhood, at the
    # start's nearest knob levels (knob moves are left to the hill-climb)
    level_sets = [np.asarray(sorted(k.levels), np.float64) if k.levels else None for k in knobs]
    cand: dict[tuple, tuple] = {}
    for x in xs:
        dist = np.abs(lt[:, FREE] - x[:nd]).sum(1)
        near = table[np.argsort(dist, kind="stable")[:n_near]]
        rows_x = np.unique(np.vstack([near, neighbourhood(table, near[0])]), axis=0)
        kv_x = []
        for i, lv in enumerate(level_sets):
            v = float(np.exp(x[nd + i]))
            kv_x.append(lv[int(np.argmin(np.abs(np.log(lv) - np.log(v))))] if lv is not None else v)
        kv_x = np.asarray(kv_x, np.float64)
        for r in rows_x:
            cand[(tuple(r), tuple(kv_x))] = (r, kv_x)
    cand_par = np.array([r for r, _ in cand.values()])
    cand_kv = np.array([k for _, k in cand.values()]).reshape(len(cand), len(knobs))
    # the best start's continuous point rides along (last row) for the relaxation gap
    i0 = int(np.argmin(np.asarray(hist)[:, -1]))
    d0 = np.exp2(xs[i0, :nd])
    relaxed_row = np.array([*d0[:4], d0[0] * d0[1] * d0[2] / d0[3], d0[4]])
    all_par = np.vstack([cand_par, relaxed_row[None]])
    all_kv = np.vstack([cand_kv, np.exp(xs[i0, nd:])[None] if knobs else np.zeros((1, 0))])
    exact = _compiled_exact(paths, objective, budget)
    n_all = len(all_par)
    with jax.enable_x64(True):
        scores, results = exact(
            jnp.asarray(_pad_rows(all_par)), jnp.asarray(_pad_rows(all_kv)), sc64, budget_args
        )
        scores = np.asarray(scores)[:n_all]
        results = jax.tree.map(lambda a: np.asarray(a)[:n_all], results)
    relaxed = float(np.asarray(getattr(results, objective))[-1])
    scores = scores[:-1]
    results = jax.tree.map(lambda a: np.asarray(a)[:-1], results)
    n_exact = len(cand_par)

    # ---- the whole split table at the best few knob combinations (the table is small:
    # exhaustive there costs little and repairs splits the relaxation rounds badly)
    if knobs and n_scans > 0:
        best_per_kv: dict[tuple, float] = {}
        for kvr, sc_r in zip(cand_kv, scores, strict=True):
            best_per_kv[tuple(kvr)] = max(best_per_kv.get(tuple(kvr), -np.inf), float(sc_r))
        top_kv = sorted(best_per_kv, key=lambda k: -best_per_kv[k])[:n_scans]
        n_tab = len(table)
        padded = _pad_rows(table)  # power-of-two length: few distinct compiled shapes
        for kvt in top_kv:
            kvt = np.asarray(kvt, np.float64)
            with jax.enable_x64(True):
                s_t, r_t = exact(
                    jnp.asarray(padded),
                    jnp.asarray(np.tile(kvt, (len(padded), 1))),
                    sc64,
                    budget_args,
                )
            n_exact += n_tab
            cand_par = np.vstack([cand_par, table])
            cand_kv = np.vstack([cand_kv, np.tile(kvt, (n_tab, 1))])
            scores = np.concatenate([scores, np.asarray(s_t)[:n_tab]])
            results = jax.tree.map(
                lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)[:n_tab]]), results, r_t
            )

    # ---- exact hill-climbs from the best few distinct splits of the rounding phase
    seen = {(tuple(r), tuple(v)) for r, v in zip(cand_par, cand_kv, strict=True)}

    def climb(b_par, b_kv, b_score, b_res):
        nonlocal n_exact
        for _ in range(max_climb):
            box = neighbourhood(table, b_par)
            kopts = []
            for i, lv in enumerate(level_sets):
                if lv is None:
                    kopts.append(np.array([b_kv[i]]))
                else:
                    j = int(np.argmin(np.abs(lv - b_kv[i])))
                    kopts.append(lv[max(j - 1, 0) : j + 2])
            # separable neighbourhood: split moves at the current knob values, and knob
            # moves (±1 level on each knob jointly) at the current split
            combos = list(itertools.product(*kopts)) if knobs else [()]
            cands = [(r, b_kv) for r in box] + [(b_par, np.asarray(c, np.float64)) for c in combos]
            new = [
                (r, np.asarray(c, np.float64)) for r, c in cands if (tuple(r), tuple(c)) not in seen
            ]
            if not new:
                break
            seen.update((tuple(r), tuple(c)) for r, c in new)
            npar = np.array([r for r, _ in new])
            nkv = np.array([c for _, c in new]).reshape(len(new), len(knobs))
            ppar, pkv = _pad_rows(npar), _pad_rows(nkv)
            with jax.enable_x64(True):
                sc_, rs_ = exact(jnp.asarray(ppar), jnp.asarray(pkv), sc64, budget_args)
            sc_ = np.asarray(sc_)[: len(new)]
            n_exact += len(new)
            j = int(np.argmax(sc_))
            if not sc_[j] > b_score:
                break
            b_par, b_kv, b_score = npar[j], nkv[j], sc_[j]
            b_res = jax.tree.map(lambda a, j=j: np.asarray(a)[j], rs_)
        return b_par, b_kv, b_score, b_res

    order = np.argsort(-scores, kind="stable")
    seeds, used = [], set()
    for i in order:
        if not np.isfinite(scores[i]) or len(seeds) == n_climbs:
            break
        if tuple(cand_par[i]) not in used:
            used.add(tuple(cand_par[i]))
            seeds.append(int(i))
    if not seeds:
        raise UserError("no feasible configuration found (capacity, chips or budget)")
    b_par = b_kv = b_res = None
    b_score = -np.inf
    for i in seeds:
        res_i = jax.tree.map(lambda a, i=i: a[i], results)
        p_, k_, s_, r_ = climb(cand_par[i], cand_kv[i], scores[i], res_i)
        if s_ > b_score:
            b_par, b_kv, b_score, b_res = p_, k_, s_, r_
    cand_par, cand_kv, best, s_best, r_best = b_par[None], b_kv[None], 0, b_score, b_res
    par = {c: int(round(float(cand_par[best][i]))) for i, c in enumerate(DEGREE_COLS)}
    kvals = {k.path: float(cand_kv[best][i]) for i, k in enumerate(knobs)}
    return GradientResult(
        parallelism=par,
        knobs=kvals,
        score=float(s_best),
        objective=objective,
        result=r_best,
        evaluations=int(n_starts * steps + n_exact),
        forward_equivalents=int(n_starts * steps * (len(lo) + 1) + n_exact),
        relaxed_score=relaxed,
        starts=n_starts,
        steps=steps,
        history=np.asarray(hist).min(0).tolist(),
    )
