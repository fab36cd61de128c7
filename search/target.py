r"""Inverse design: the interconnect (or bandwidth, or chip count) a UTPS target needs.

UTPS is non-increasing in every per-hop latency and per-step overhead, and non-decreasing
in every bandwidth (each term of the model is monotone; maxima and minima of monotone
functions are monotone; so is the maximum over parallel splits). The answer to "which
latency reaches X tokens/s" is therefore the supremum of a monotone predicate,

    s* = sup { s : max_split UTPS(system with latencies × s) ≥ X },

found by **bracketed bisection on the predicate in log space** (``docs/design.md`` §6:
robust on plateaus where communication is hidden and the derivative is 0; Newton failed
on 28 % of bracketed cases). Each lane of a vectorised solve runs ``ITERS`` halvings of
``[log s_lo, log s_hi]`` (50 → relative resolution ``(s_hi/s_lo)^(2^-50)``). The same
machinery solves for a bandwidth factor (inf of a monotone predicate) and, with integer
bisection, the chip count.

Outcomes (never an exception):

* ``reachable`` — the bracket holds the answer; UTPS at the answer is ≥ X and within
  the bisection resolution of X wherever UTPS is continuous (it is: every term is).
* ``unreachable`` — even zero latency (infinite bandwidth, all chips) misses X; the
  report names the term that alone exceeds the time budget ``1/X`` per token.
* ``unconstrained`` — already met at the loosest end of the bracket (e.g. a split without
  communication), so the knob does not matter.

Derivatives of the solved latency with respect to any other spec follow from the implicit
function theorem at ``U(s*, θ) = X``::

    ds*/dθ = − (∂U/∂θ) / (∂U/∂s)

(:func:`implicit_gradient`; undefined on plateaus, where ``∂U/∂s = 0``: NaN is returned
with the status).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.decode import decode_step
from costmodel.specs import Parallelism, SystemSpec, stack
from search.errors import UserError
from search.jit import jit_fast_compile
from search.paths import scale_system
from search.scenario import Scenario

ITERS = 50
LOG_LO, LOG_HI = math.log(1e-4), math.log(1e4)

REACHABLE, UNREACHABLE, UNCONSTRAINED = 0, 1, 2
STATUS = {REACHABLE: "reachable", UNREACHABLE: "unreachable", UNCONSTRAINED: "unconstrained"}

KNOBS = ("latency", "bandwidth")


def best_utps(sc: Scenario, splits: Parallelism, system: SystemSpec | None = None):
    """Max UTPS over a stacked table of splits (infeasible splits score 0), and its index."""
    system = sc.system if system is None else system

    def one(par):
        r = decode_step(sc.model, sc.precision, system, par, sc.workload, sc.mode)
        return jnp.where(r.fits, r.utps, 0.0)

    u = jax.vmap(one)(splits)
    i = jnp.argmax(u)
    return u[i], i


def envelope_rows(
    sc: Scenario,
    splits: Parallelism,
    knob: str = "latency",
    tier: str | None = None,
    n_grid: int = 97,
    log_lo: float = LOG_LO,
    log_hi: float = LOG_HI,
) -> np.ndarray:
    """Indices of the splits that can be the best anywhere in the bracket (exact pruning).

    On a log grid ``s_0 < … < s_G`` of the knob factor, split j can be the best at some
    ``s ∈ [s_i, s_{i+1}]`` only if ``U_j(s_i) ≥ U*(s_{i+1})`` for latency (``U_j`` falls
    with s and the envelope ``U* ≥ U*(s_{i+1})`` there), and ``U_j(s_{i+1}) ≥ U*(s_i)`` for
    bandwidth (rising). Keeping exactly those rows leaves every answer of the bisection
    unchanged while the predicate scans a handful of splits instead of all.
    """
    grid = np.linspace(log_lo, log_hi, n_grid)

    def u_all(log_s):
        sysm = scale_system(sc.system, knob, jnp.exp(log_s), tier)

        def one(par):
            r = decode_step(sc.model, sc.precision, sysm, par, sc.workload, sc.mode)
            return jnp.where(r.fits, r.utps, 0.0)

        return jax.vmap(one)(splits)

    u = np.asarray(jit_fast_compile(jax.vmap(u_all))(jnp.asarray(grid)))  # [G, n]
    best = u.max(axis=1)
    if knob == "bandwidth":
        keep = (u[1:] >= best[:-1, None]).any(axis=0)
    else:
        keep = (u[:-1] >= best[1:, None]).any(axis=0)
    keep |= u.max(axis=0) >= best.max()  # the overall best, always
    return np.nonzero(keep & (u.max(axis=0) > 0))[0]


def _bisect(pred, lo, hi, increasing_ok: bool):
    """Bisection on a monotone predicate over ``[lo, hi]`` (log units).

    ``increasing_ok=False``: pred is true for small x (latency: find sup of true set);
    ``True``: pred is true for large x (bandwidth: find inf of true set).
    Returns ``(x_answer, status)``.
    """
    p_lo, p_hi = pred(lo), pred(hi)
    if increasing_ok:
        status = jnp.where(~p_hi, UNREACHABLE, jnp.where(p_lo, UNCONSTRAINED, REACHABLE))
    else:
        status = jnp.where(~p_lo, UNREACHABLE, jnp.where(p_hi, UNCONSTRAINED, REACHABLE))

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        ok = pred(mid)
        if increasing_ok:
            return jnp.where(ok, a, mid), jnp.where(ok, mid, b)
        return jnp.where(ok, mid, a), jnp.where(ok, b, mid)

    a, b = jax.lax.fori_loop(0, ITERS, body, (jnp.asarray(lo) * 1.0, jnp.asarray(hi) * 1.0))
    ans = b if increasing_ok else a  # the side where the predicate holds
    return ans, status


def solve_scale(
    sc: Scenario,
    splits: Parallelism,
    target_utps,
    knob: str = "latency",
    tier: str | None = None,
    log_lo: float = LOG_LO,
    log_hi: float = LOG_HI,
):
    """The factor on ``knob`` at which the best split in ``splits`` reaches the target.

    Args:
      sc: scenario (model, precision, system, workload, mode).
      splits: a stacked :class:`Parallelism` table (shape ``[n]``) of candidate splits;
        pass one split stacked alone to solve for a fixed split.
      target_utps: scalar target (tokens/s per user). ``jax.vmap`` over it for many.
      knob: ``"latency"`` (sup of factors on latency) or ``"bandwidth"`` (inf of factors).
      tier: restrict the knob to one tier name.

    Returns:
      ``(factor, status, utps_at_factor)``; ``factor`` is NaN unless reachable.
    """
    inc = knob == "bandwidth"

    @jax.jit  # nested: the cost model is traced once, not at each of the four call sites
    def utps_jit(log_s):
        return best_utps(sc, splits, scale_system(sc.system, knob, jnp.exp(log_s), tier))[0]

    dtype = jnp.result_type(float)  # one strong dtype, so every call hits the same trace

    def utps_at(log_s):
        return utps_jit(jnp.asarray(log_s, dtype))

    pred = lambda x: utps_at(x) >= target_utps  # noqa: E731
    x, status = _bisect(pred, log_lo, log_hi, inc)
    factor = jnp.where(status == REACHABLE, jnp.exp(x), jnp.nan)
    return factor, status, utps_at(x)


solve_scale_jit = jax.jit(  # plain jit: callers nest it in their own jit/vmap
    solve_scale, static_argnames=("knob", "tier", "log_lo", "log_hi")
)
""":func:`solve_scale` compiled once per scenario structure (the scenario is a pytree)."""


@dataclass
class TargetAnswer:
    """One solved target (host values)."""

    target_utps: float
    knob: str
    tier: str | None
    status: str
    factor: float
    utps_at_answer: float
    split: dict
    values: dict  # the knob's resulting absolute values per tier (SI)
    why: str  # for unreachable: the term that alone exceeds the budget

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _ideal_breakdown(sc: Scenario, par: Parallelism, knob: str):
    """The step with the knob at its ideal (latency → 0, bandwidth → ∞)."""
    ideal = scale_system(sc.system, knob, 1e-12 if knob == "latency" else 1e12)
    return decode_step(sc.model, sc.precision, ideal, par, sc.workload, sc.mode)


def limiting_term(r, target_utps: float, knob: str) -> str:
    """Explain an unreachable target from the ideal-knob step ``r``: the largest time term
    left, against the per-step budget ``τ / X``."""
    budget = float(r.tokens_per_step) / target_utps
    terms = {k: float(v) for k, v in r.breakdown_s.__dict__.items()}
    name, t = max(terms.items(), key=lambda kv: kv[1])
    total = float(r.step_time_s)
    lead = f"{name.replace('_', ' ')} alone takes {t * 1e6:.3g} µs per step"
    return (
        f"{lead} (step {total * 1e6:.3g} µs with ideal {knob}) > budget "
        f"{budget * 1e6:.3g} µs for {target_utps:g} tok/s"
    )


def _split_at(splits: Parallelism, i: int) -> Parallelism:
    return jax.tree.map(lambda x: np.asarray(x)[i], splits)


def knob_values(system: SystemSpec, knob: str, factor: float, tier: str | None) -> dict:
    """Absolute per-tier values after scaling (what the answer means in SI units)."""
    out = {}
    for t in system.tiers:
        if tier is not None and t.name != tier:
            continue
        if knob == "latency":
            out[t.name] = {
                "hop_latency_s": float(t.hop_latency_s) * factor,
                "overhead_s": float(t.overhead_s) * factor,
            }
        else:
            out[t.name] = {"bw_bytes_per_s": float(t.bw_bytes_per_s) * factor}
    return out


def solve_targets(
    sc: Scenario,
    splits: Parallelism,
    targets,
    knob: str = "latency",
    tier: str | None = None,
) -> list[TargetAnswer]:
    """Vectorised solve for many targets; host-side answers with explanations.

    One compiled program solves all targets (``vmap`` over the bisection) and returns,
    per target, the factor, the status, and the index of the best split at the answer.
    """
    from search.results import parallelism_dict

    if knob not in KNOBS:
        raise UserError(f"knob {knob!r}: allowed {', '.join(KNOBS)}", arg="knob")
    names = [t.name for t in sc.system.tiers]
    if tier is not None and tier not in names:
        raise UserError(f"tier {tier!r}: {sc.system_name} has tiers {', '.join(names)}", arg="tier")
    targets = np.atleast_1d(np.asarray(targets, dtype=float))
    if not np.all((targets > 0) & np.isfinite(targets)):
        raise UserError(f"targets {targets.tolist()!r}: must be finite numbers > 0", arg="targets")
    rows = envelope_rows(sc, splits, knob, tier)
    if len(rows):
        splits = jax.tree.map(lambda x: jnp.asarray(x)[rows], splits)

    def one(x):
        factor, status, u = solve_scale(sc, splits, x, knob, tier)
        at = jnp.where(status == REACHABLE, factor, 1.0)
        _, i = best_utps(sc, splits, scale_system(sc.system, knob, at, tier))
        return factor, status, u, i

    factor, status, u_at, idx = (
        np.asarray(a) for a in jit_fast_compile(jax.vmap(one))(jnp.asarray(targets))
    )
    explain = jit_fast_compile(lambda par: _ideal_breakdown(sc, par, knob))
    answers = []
    for tgt, fac, st, u, i in zip(targets, factor, status, u_at, idx, strict=True):
        par = _split_at(splits, int(i))
        why = limiting_term(explain(par), float(tgt), knob) if st == UNREACHABLE else ""
        answers.append(
            TargetAnswer(
                target_utps=float(tgt),
                knob=knob,
                tier=tier,
                status=STATUS[int(st)],
                factor=float(fac),
                utps_at_answer=float(u) if st == REACHABLE else float("nan"),
                split=parallelism_dict(par),
                values=knob_values(sc.system, knob, float(fac), tier) if st == REACHABLE else {},
                why=why,
            )
        )
    return answers


def implicit_gradient(
    sc: Scenario, par: Parallelism, factor: float, knob: str = "latency", tier=None
):
    """``d factor* / d θ`` for every float leaf θ of the system, by the implicit function
    theorem at ``U(factor*, θ) = X`` (fixed split ``par``): ``−(∂U/∂θ)/(∂U/∂s)``.

    Returns a pytree shaped like ``sc.system`` (NaN where ``∂U/∂s = 0``, i.e. a plateau).
    """

    def u(s, system):
        scaled = scale_system(system, knob, s, tier)
        return decode_step(sc.model, sc.precision, scaled, par, sc.workload, sc.mode).utps

    du_ds, du_dtheta = jax.grad(u, argnums=(0, 1))(jnp.asarray(factor) * 1.0, sc.system)
    inv = jnp.where(du_ds != 0, -1.0 / du_ds, jnp.nan)
    return jax.tree.map(lambda g: g * inv, du_dtheta)


def single_split(par: Parallelism) -> Parallelism:
    """A one-row split table for solving with a fixed split."""
    return stack([par])


def solve_chips(sc: Scenario, table, targets) -> list[dict]:
    """The fewest chips over the valid splits ``table`` (``[n, 6]``) that reach each UTPS
    target: every split is evaluated once (one vmapped call), then per target the
    feasible split with ``utps ≥ target`` and the fewest chips is chosen (exact, no
    bisection). Answers have the shape of :func:`solve_targets`' with ``knob="chips"``;
    a target no split reaches is ``"unreachable"`` with the best UTPS found."""
    from search.optimize import as_parallelism
    from search.results import parallelism_dict

    def one(par):
        r = decode_step(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)
        return jnp.where(r.fits, r.utps, 0.0), r.chips

    u, chips = (np.asarray(x) for x in jit_fast_compile(jax.vmap(one))(as_parallelism(table)))
    out = []
    for x in targets:
        ok = u >= x
        if ok.any():
            j = int(np.argmin(np.where(ok, chips, np.inf)))
            out.append(
                {
                    "target_utps": float(x),
                    "knob": "chips",
                    "status": "reachable",
                    "chips": float(chips[j]),
                    "utps_at_answer": float(u[j]),
                    "split": parallelism_dict(as_parallelism(table[j : j + 1]), 0),
                }
            )
        else:
            out.append(
                {
                    "target_utps": float(x),
                    "knob": "chips",
                    "status": "unreachable",
                    "chips": float("nan"),
                    "utps_at_answer": float("nan"),
                    "split": {},
                    "why": f"the best split with up to {chips.max():g} chips "
                    f"reaches {u.max():.4g} tok/s",
                }
            )
    return out
