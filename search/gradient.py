r"""Gradient search over parallel splits and hardware knobs, with exact re-scoring.

What worked on this kind of problem (``notes/search_methods.md`` §0–§1; DOSA, MICRO'23):
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
   splits (log2 distance) of the enumerated table plus its ±1 neighbourhood in every
   log2 degree (the 3^d neighbourhood restricted to valid splits); knobs with discrete
   levels snap to their two nearest levels. Every candidate is re-scored with the exact
   model (``beta = inf``, hard feasibility and budget) and the best feasible wins.

Deterministic for a seed. ``evaluations`` counts model evaluations: one per start per
step (value and gradient together) plus one per exact candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search.errors import UserError
from search.jit import jit_derivative
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
    relaxed_score: float  # exact score at the best start's continuous optimum (if feasible)
    starts: int
    steps: int
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        from search.report import result_dict

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


def _log2_table(splits: np.ndarray) -> np.ndarray:
    return np.log2(np.asarray(splits, dtype=np.float64))


def optimize(
    sc: Scenario,
    splits: np.ndarray,
    knobs: tuple[Knob, ...] = (),
    budget=None,
    objective: str = "utps",
    n_starts: int = 16,
    steps: int = 200,
    lr: float = 0.1,
    beta: float = 20.0,
    mu: float = 10.0,
    kappa: float = 20.0,
    n_near: int = 4,
    seed: int = 0,
) -> GradientResult:
    """Multi-start relaxed search, then exact rounding (see the module docstring).

    Args:
      sc: the scenario (model, precision, system, workload, mode).
      splits: valid split table ``[n, 6]`` (columns ``DEGREE_COLS``), e.g. from
        ``search.space.valid_splits``; rounding chooses only among these rows.
      knobs: hardware knobs to co-design (empty: parallelism only).
      budget: ``f(dict path → value) -> scalar``; feasible iff ``≤ 0`` (traceable).
      objective: ``utps`` | ``system_tps`` | ``tps_per_chip`` (maximised).
    """
    if objective not in OBJECTIVES:
        raise UserError(f"--objective {objective!r}: allowed {', '.join(OBJECTIVES)}")
    table = np.asarray(splits, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 6 or len(table) == 0:
        raise UserError("no valid parallel split to search (empty split table)")
    lt = _log2_table(table)
    d_lo = lt[:, FREE].min(0)
    d_hi = lt[:, FREE].max(0)
    k_lo = np.array([math.log(k.lo) for k in knobs])
    k_hi = np.array([math.log(k.hi) for k in knobs])
    lo = np.concatenate([d_lo, k_lo])
    hi = np.concatenate([d_hi, k_hi])
    nd = len(FREE)
    max_chips = float(sc.system.max_chips)
    batch = float(sc.workload.batch)

    def unpack(x):
        deg = jnp.exp2(x[:nd])
        tp, dp, kvp, ep, pp = (deg[i] for i in range(nd))
        moe_tp = tp * kvp * dp / ep
        par = Parallelism(tp, dp, kvp, ep, moe_tp, pp)
        vals = {k.path: jnp.exp(x[nd + i]) for i, k in enumerate(knobs)}
        return par, vals

    def system_for(vals):
        s = sc.system
        for path, v in vals.items():
            s = set_knob(s, path, v)
        return s

    def evaluate(par, vals, b):
        return decode_step(sc.model, sc.precision, system_for(vals), par, sc.workload, sc.mode, b)

    def loss(x):
        par, vals = unpack(x)
        r = evaluate(par, vals, beta)
        sp = lambda g: jax.nn.softplus(kappa * g) / kappa  # noqa: E731
        pen = sp(r.capacity_violation) + sp(jnp.log2(r.chips) - math.log2(max_chips))
        pen = pen + sp(-jnp.log2(par.moe_tp)) + sp(jnp.log2(par.attn_dp) - math.log2(batch))
        if budget is not None:
            pen = pen + sp(budget(vals))
        return -jnp.log(_score(r, objective)) + mu * pen

    opt = optax.adam(lr)

    def run_start(x0):
        state = opt.init(x0)

        def step(carry, _):
            x, st = carry
            val, g = value_and_jacfwd(loss, x)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, st = opt.update(g, st, x)
            x = optax.projections.projection_box(optax.apply_updates(x, upd), lo, hi)
            return (x, st), val

        (x, _), vals = jax.lax.scan(step, (x0, state), None, length=steps)
        return x, vals

    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        u = jax.random.uniform(key, (n_starts, len(lo)), dtype=jnp.float64)
        x0 = jnp.asarray(lo) + u * (jnp.asarray(hi) - jnp.asarray(lo))
        xs, hist = jit_derivative(jax.vmap(run_start))(x0)
    xs = np.asarray(xs)

    # ---- rounding: nearest valid splits + ±1 log2 neighbourhood, knob levels
    cand_rows: set[int] = set()
    for x in xs:
        d = np.abs(lt[:, FREE] - x[:nd])
        dist = d.sum(1)
        cand_rows.update(np.argsort(dist, kind="stable")[:n_near].tolist())
        r0 = np.round(x[:nd])
        near = np.all(np.abs(lt[:, FREE] - r0) <= 1.0 + 1e-9, axis=1)
        cand_rows.update(np.nonzero(near)[0].tolist())
    rows = np.array(sorted(cand_rows), dtype=np.int64)
    knob_choices = []
    for i, k in enumerate(knobs):
        vals = np.exp(xs[:, nd + i])
        if k.levels:
            lv = np.asarray(sorted(k.levels), dtype=np.float64)
            pick = set()
            for v in vals:
                j = int(np.searchsorted(lv, v))
                pick.update({max(j - 1, 0), min(j, len(lv) - 1)})
            knob_choices.append(lv[sorted(pick)])
        else:
            knob_choices.append(np.unique(vals))
    grids = np.meshgrid(*knob_choices, indexing="ij") if knobs else []
    kv = np.stack([g.ravel() for g in grids], 1) if knobs else np.zeros((1, 0))
    cand_par = np.repeat(table[rows], len(kv), axis=0)
    cand_kv = np.tile(kv, (len(rows), 1))

    def exact(par_row, kvals):
        par = Parallelism(*(par_row[i] for i in range(6)))
        vals = {k.path: kvals[i] for i, k in enumerate(knobs)}
        r = evaluate(par, vals, math.inf)
        ok = r.fits
        if budget is not None:
            ok = ok & (budget(vals) <= 0)
        return jnp.where(ok, _score(r, objective), -jnp.inf), r

    # the best start's continuous point rides along (last row) for the relaxation gap
    i0 = int(np.argmin(np.asarray(hist)[:, -1]))
    x0_deg = np.exp2(xs[i0, :nd])
    relaxed_row = np.array([*x0_deg[:4], x0_deg[0] * x0_deg[1] * x0_deg[2] / x0_deg[3], x0_deg[4]])
    all_par = np.vstack([cand_par, relaxed_row[None]])
    all_kv = np.vstack([cand_kv, np.exp(xs[i0, nd:])[None] if knobs else np.zeros((1, 0))])
    with jax.enable_x64(True):
        scores, results = jax.jit(jax.vmap(exact))(jnp.asarray(all_par), jnp.asarray(all_kv))
        scores = np.asarray(scores)
    relaxed = float(getattr(results, objective)[-1])
    scores = scores[:-1]
    best = int(np.argmax(scores))
    if not np.isfinite(scores[best]):
        raise UserError("no feasible configuration found (capacity, chips or budget)")
    s_best = scores[best]
    r_best = jax.tree.map(lambda a: np.asarray(a)[best], results)
    par = {c: int(round(float(cand_par[best][i]))) for i, c in enumerate(DEGREE_COLS)}
    kvals = {k.path: float(cand_kv[best][i]) for i, k in enumerate(knobs)}
    return GradientResult(
        parallelism=par,
        knobs=kvals,
        score=float(s_best),
        objective=objective,
        result=r_best,
        evaluations=int(n_starts * steps + len(cand_par)),
        relaxed_score=relaxed,
        starts=n_starts,
        steps=steps,
        history=np.asarray(hist).min(0).tolist(),
    )
