r"""Calibrated mode: efficiencies and fixed overheads per hardware × software family.

Six interpretable numbers of :class:`~costmodel.specs.Efficiency` are fitted to the
per-step decode times of ``hardware_db/data/measurements.csv`` (usable rows, grades A
and B): the achieved fraction of memory bandwidth ``η_m`` for weight reads and ``η_kv``
for KV-cache reads, of peak FLOP/s ``η_c``, a fixed overhead per kernel ``o_k``, per
collective ``o_c`` and per step ``o_s`` (``link_efficiency`` stays 1). A family is
``"<chip>/<software>"`` (``b200/trtllm``, ``mi300x/vllm``, …).

**Parametrisation** (unconstrained vector θ of six entries)::

    η = f + (1 − f)·sigmoid(θ_η)        efficiencies bounded in (f, 1]; f = 0.2
                                        (0.02 for η_kv, see :data:`FLOORS`)
    o = exp(θ_o)                        overheads positive, log-space

**Hierarchy** (additive in θ, so one-row families borrow from their relatives)::

    θ_{h,s} = θ_g + a_h + b_s + c_{h,s}
    θ_g ~ N(μ_0, S_0²),  a_h ~ N(0, (λ·S_h)²),  b_s ~ N(0, (λ·S_s)²),  c ~ N(0, (λ·S_c)²)

with a weak global prior μ_0 (η_m 0.8, η_c 0.5, o_k 3 µs, o_c 5 µs, η_kv 0.8,
o_s 20 µs) and one prior scale
λ chosen by leave-out error (mean of leave-one-row-out and leave-one-family-out MAPE,
:func:`tune_prior_scale`). **MAP fit**: minimise ::

    L(θ) = Σ_rows w_r (log t̂_r(θ) − log t_r)² / (2σ²) + Σ priors (z²/2),   σ = 0.1

by L-BFGS — directions from ``optax.lbfgs``, a backtracking Armijo line search whose
trial points reuse each iteration's single model evaluation — for a fixed number of
iterations, in float64, from the prior mean: deterministic. The model ``t̂_r`` is
:func:`costmodel.decode.decode_step` itself, evaluated with its exact Jacobian in the
row's own θ (forward mode, P tangents), one vmapped call per system structure
(:mod:`search.stacking`); the gradient in the hierarchy follows by the chain rule. Many
fits (one per leave-out mask) run at once under ``jax.vmap``.

**Lookup** (:func:`efficiency_for`): a fitted family → its θ; hardware and software both
seen but not together → ``θ_h + θ_s − θ_g``; only one seen → that level; neither → the
**default family** θ_g (the global level), and the notes say which was used.

Regenerate ``hardware_db/data/calibration.toml`` with ``python -m search.calibrate
--write`` (see :data:`REGENERATE`).
"""

from __future__ import annotations

import datetime
import functools
import math
import tomllib
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hardware_db as db
from costmodel.decode import decode_step
from costmodel.specs import SOL, Efficiency, Parallelism, Workload
from hardware_db.extra_models import load_model_any
from hardware_db.loader import DATA_ROOT
from hardware_db.measurements import Measurement, hardware_of, load_measurements, software_slug
from search.errors import UserError
from search.jit import jit_fast_compile
from search.stacking import Config, canonical_system, evaluate, stack_configs, structure_key

CALIBRATION_TOML = DATA_ROOT / "calibration.toml"
"""Where the fitted parameters live."""

REGENERATE = "python -m search.calibrate --write"
"""The command that regenerates :data:`CALIBRATION_TOML`."""

PARAMS = (
    "mem_efficiency",
    "compute_efficiency",
    "kernel_overhead_s",
    "collective_overhead_s",
    "kv_efficiency",
    "step_overhead_s",
)
"""Fitted fields of :class:`~costmodel.specs.Efficiency`, in θ order."""

EFF_FLOOR = 0.2
"""Lower bound of the fitted efficiencies."""

FLOORS = {"kv_efficiency": 0.02}
"""Per-parameter lower bounds that differ from :data:`EFF_FLOOR`: attention over long
paged caches reaches a few percent of HBM bandwidth on some stacks (measured: +25 ms for
112K more tokens of Llama-3.1-405B on 8×MI300X with vLLM, D62→D63, about 16× the
KV-read time at full bandwidth)."""


def floor_of(name: str) -> float:
    """Lower bound of the efficiency ``name``."""
    return FLOORS.get(name, EFF_FLOOR)


PRIOR_MEAN = {
    "mem_efficiency": 0.8,
    "compute_efficiency": 0.5,
    "kernel_overhead_s": 3e-6,
    "collective_overhead_s": 5e-6,
    "kv_efficiency": 0.8,
    "step_overhead_s": 20e-6,
}
"""Centre of the global prior (values, not θ): typical achieved HBM bandwidth, GEMV
compute efficiency, one kernel launch inside a CUDA graph, one small collective, an
attention kernel's share of bandwidth relative to weight reads, one step's host work
(scheduling and sampling) around a captured graph."""

PRIOR_SD_GLOBAL = {"efficiency": 1.0, "time": 1.5}
"""Prior sd of θ_g (logit / natural-log units) per kind of parameter: weak."""

PRIOR_SD_LEVEL = {"efficiency": 0.75, "time": 1.0}
"""Base sd of each hierarchy level's offsets per kind (times the prior scale λ)."""


def _kind(name: str) -> str:
    """``"efficiency"`` (bounded in (EFF_FLOOR, 1]) or ``"time"`` (positive seconds)."""
    return "efficiency" if name.endswith("_efficiency") else "time"


def _sd(table: dict) -> np.ndarray:
    return np.asarray([table[_kind(k)] for k in PARAMS])


OBS_SD = 0.1
"""Scale of the log step-time residual per row (measurement and definition noise)."""


def data_loss(resid, weights):
    """Gaussian negative log-likelihood of the log residuals: ``Σ w·r²/(2σ²)``."""
    return jnp.sum(weights * (resid / OBS_SD) ** 2) / 2


GRADES_FIT = ("A", "B")
"""Grades used for fitting."""

PRIOR_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Candidate prior scales λ for :func:`tune_prior_scale`."""

ITERATIONS = 200
"""Model evaluations per fit (fixed: deterministic, vmappable)."""


# ----------------------------------------------------------------------------- transforms


def to_theta(values: dict) -> np.ndarray:
    """θ of a parameter dict (inverse of :func:`from_theta`)."""
    out = []
    for k in PARAMS:
        v = float(values[k])
        if _kind(k) == "efficiency":
            lo = floor_of(k)
            p = (v - lo) / (1.0 - lo)
            p = min(max(p, 1e-9), 1 - 1e-9)
            out.append(math.log(p / (1 - p)))
        else:
            out.append(math.log(v))
    return np.asarray(out)


def from_theta(theta) -> dict:
    """Parameter values of θ (``[..., P]``): ``{name: array [...]}``."""
    out = {}
    for i, k in enumerate(PARAMS):
        t = theta[..., i]
        if _kind(k) == "efficiency":
            out[k] = floor_of(k) + (1 - floor_of(k)) * jax.nn.sigmoid(t)
        else:
            out[k] = jnp.exp(t)
    return out


def efficiency_of(theta) -> Efficiency:
    """The :class:`Efficiency` record of θ (``link_efficiency`` 1; parameters that are
    not fields of :class:`Efficiency` are ignored here)."""
    v = from_theta(theta)
    fields = {k: x for k, x in v.items() if k in Efficiency.__dataclass_fields__}
    one = jnp.ones_like(next(iter(v.values())))
    base = {f: one * getattr(SOL, f) for f in Efficiency.__dataclass_fields__}
    return Efficiency(**{**base, **fields})


def values_of(theta) -> dict:
    """Plain-float parameter dict of one θ (numpy, float64)."""
    t = np.asarray(theta, np.float64)
    out = {}
    for i, k in enumerate(PARAMS):
        if _kind(k) == "efficiency":
            out[k] = float(floor_of(k) + (1 - floor_of(k)) / (1.0 + np.exp(-t[i])))
        else:
            out[k] = float(np.exp(t[i]))
    return out


# ----------------------------------------------------------------------------- problem


class Problem(NamedTuple):
    """The rows to fit, stacked per system structure, and their family indices."""

    ids: tuple[str, ...]
    families: tuple[str, ...]  # per row, "<chip>/<software>"
    hw_names: tuple[str, ...]
    sw_names: tuple[str, ...]
    fam_names: tuple[str, ...]
    hw: np.ndarray  # [N] index into hw_names
    sw: np.ndarray
    fam: np.ndarray
    log_t: np.ndarray  # [N] log measured step time
    groups: tuple  # ((rows [n], stacked Config without mode), ...)
    configs: tuple  # per row (model, precision, system, parallelism, workload) records


def row_config(m: Measurement):
    """``(model, precision, system, parallelism, workload)`` records of a usable row."""
    spec, _ = load_model_any(m.model)
    prec = db.load_precision(m.precision)
    system = db.load_system(m.system)
    par = Parallelism(m.attn_tp, m.attn_dp, m.kvp, m.ep, m.moe_tp, m.pp)
    wl = Workload(
        batch=m.batch,
        context_tokens=m.context,
        mtp_depth=m.mtp_depth,
        acceptance_rate=m.acceptance,
    )
    return spec, prec, system, par, wl


def build_problem(rows) -> Problem:
    """Stack usable measurement rows into a :class:`Problem`."""
    rows = [m for m in rows if m.usable]
    if not rows:
        raise UserError("no usable measurement rows to calibrate on")
    fams = tuple(m.family for m in rows)
    hw_names = tuple(sorted({m.hardware for m in rows}))
    sw_names = tuple(sorted({m.software for m in rows}))
    fam_names = tuple(sorted(set(fams)))
    groups: dict[tuple, list] = {}
    configs = []
    for i, m in enumerate(rows):
        spec, prec, system, par, wl = row_config(m)
        configs.append((spec, prec, system, par, wl))
        system = canonical_system(system)
        groups.setdefault(structure_key(system), []).append((i, (spec, prec, system, par, wl)))
    stacked = tuple(
        (np.asarray([i for i, _ in g]), stack_configs([c for _, c in g])) for g in groups.values()
    )
    return Problem(
        ids=tuple(m.id for m in rows),
        families=fams,
        hw_names=hw_names,
        sw_names=sw_names,
        fam_names=fam_names,
        hw=np.asarray([hw_names.index(m.hardware) for m in rows]),
        sw=np.asarray([sw_names.index(m.software) for m in rows]),
        fam=np.asarray([fam_names.index(f) for f in fams]),
        log_t=np.log(np.asarray([m.step_time_s for m in rows])),
        groups=stacked,
        configs=tuple(configs),
    )


def init_params(pb: Problem) -> dict:
    """Start of every fit: the prior mean (offsets 0)."""
    z, n = np.zeros, len(PARAMS)
    return {
        "g": np.asarray(to_theta(PRIOR_MEAN), np.float64),
        "h": z((len(pb.hw_names), n)),
        "s": z((len(pb.sw_names), n)),
        "f": z((len(pb.fam_names), n)),
    }


def row_theta(params: dict, pb: Problem):
    """θ of every row ``[N, P]``: ``θ_g + a_h + b_s + c_{h,s}``."""
    return params["g"] + params["h"][pb.hw] + params["s"][pb.sw] + params["f"][pb.fam]


def _row_log_step(theta, cfg):
    """Log step time of one configuration as a function of its θ ``[P]``."""
    return jnp.log(decode_step(*cfg, efficiency_of(theta)).step_time_s)


def _value_and_jac(theta, cfg):
    y = _row_log_step(theta, cfg)
    return y, y


_ROW_JAC = jax.vmap(jax.jacfwd(_value_and_jac, has_aux=True))
"""Per row: ``(∂ log t/∂θ [P], log t)``; one forward-mode pass with P tangents."""


def model_rows(theta_rows, pb: Problem):
    """``(log t̂ [N], ∂ log t̂/∂θ_row [N, P])`` of every row at its own θ (exact model)."""
    y = jnp.zeros(len(pb.ids))
    jac = jnp.zeros((len(pb.ids), len(PARAMS)))
    for rows, cfg in pb.groups:
        j, v = _ROW_JAC(theta_rows[rows], cfg)
        y = y.at[rows].set(v)
        jac = jac.at[rows].set(j)
    return y, jac


def predict_log_step(params: dict, pb: Problem):
    """Model log step time of every row ``[N]`` (calibrated with ``params``)."""
    theta = row_theta(params, pb)
    out = jnp.zeros(len(pb.ids))
    for rows, cfg in pb.groups:
        out = out.at[rows].set(jax.vmap(_row_log_step)(theta[rows], cfg))
    return out


def sol_log_step(pb: Problem) -> np.ndarray:
    """Log step time of every row in SOL mode (efficiencies 1, no overheads), through
    :func:`search.stacking.evaluate` (the batch evaluator ``eval --cases`` uses)."""
    r = evaluate([Config(*c, SOL) for c in pb.configs])
    return np.log(np.asarray(r.step_time_s, np.float64))


def _prior(params: dict, scale):
    prior = 0.5 * jnp.sum(((params["g"] - to_theta(PRIOR_MEAN)) / _sd(PRIOR_SD_GLOBAL)) ** 2)
    sd = scale * _sd(PRIOR_SD_LEVEL)
    for k in ("h", "s", "f"):
        prior = prior + 0.5 * jnp.sum((params[k] / sd) ** 2)
    return prior


def objective(params: dict, pb: Problem, weights, scale, log_t=None):
    """MAP objective (module docstring) for row weights ``[N]`` and prior scale λ
    (``log_t``: measured log step times, default ``pb.log_t``)."""
    resid = predict_log_step(params, pb) - (pb.log_t if log_t is None else log_t)
    return data_loss(resid, weights) + _prior(params, scale)


def _value_and_grad(params, pb: Problem, weights, scale, log_t):
    """Exact objective and gradient at ``params`` with one model evaluation: the model
    enters through its value and row Jacobian (the gradient of the linearisation at the
    point equals the true gradient there)."""
    theta0 = row_theta(params, pb)
    y0, jac = model_rows(theta0, pb)
    y0, jac, theta0 = (jax.lax.stop_gradient(x) for x in (y0, jac, theta0))

    def lin(p):
        y = y0 + jnp.sum(jac * (row_theta(p, pb) - theta0), axis=-1)
        resid = y - log_t
        return data_loss(resid, weights) + _prior(p, scale)

    value, grad = jax.value_and_grad(lin)(params)
    return value, grad, y0


_ARMIJO = 1e-4
_MAX_STEP = 2.0  # largest step (θ units, Euclidean) tried along a direction


def _fit_one(pb: Problem, weights, scale, log_t, iterations: int):
    """L-BFGS (``optax.lbfgs`` directions) with a backtracking Armijo line search whose
    trial points reuse the single model evaluation of each iteration."""
    opt = optax.lbfgs(linesearch=None)
    p0 = jax.tree.map(jnp.asarray, init_params(pb))
    zero = jax.tree.map(jnp.zeros_like, p0)
    leaves = jax.tree.leaves
    dot = lambda a, b: sum(jnp.vdot(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))  # noqa: E731
    axpy = lambda a, x, y: jax.tree.map(lambda u, v: a * u + v, x, y)  # noqa: E731
    init = dict(
        p_acc=p0, f_acc=jnp.inf, slope=jnp.zeros(()), d=zero, alpha=jnp.ones(()),
        trial=p0, state=opt.init(p0), y_acc=jnp.zeros(len(pb.ids)),
    )  # fmt: skip

    def step(c, _):
        f_t, g_t, y_t = _value_and_grad(c["trial"], pb, weights, scale, log_t)
        ok = jnp.isfinite(f_t) & (f_t <= c["f_acc"] + _ARMIJO * c["alpha"] * c["slope"])
        d_new, state_new = opt.update(g_t, c["state"], c["trial"])
        norm = jnp.sqrt(dot(d_new, d_new))
        a_new = jnp.minimum(1.0, _MAX_STEP / jnp.maximum(norm, 1e-30))
        pick = lambda x, y: jax.tree.map(lambda u, v: jnp.where(ok, u, v), x, y)  # noqa: E731
        p_acc = pick(c["trial"], c["p_acc"])
        d = pick(d_new, c["d"])
        alpha = jnp.where(ok, a_new, 0.5 * c["alpha"])
        out = dict(
            p_acc=p_acc,
            f_acc=jnp.where(ok, f_t, c["f_acc"]),
            slope=jnp.where(ok, dot(g_t, d_new), c["slope"]),
            d=d,
            alpha=alpha,
            trial=axpy(alpha, d, p_acc),
            state=pick(state_new, c["state"]),
            y_acc=jnp.where(ok, y_t, c["y_acc"]),
        )
        return out, jnp.where(ok, f_t, c["f_acc"])

    c, values = jax.lax.scan(step, init, None, length=iterations)
    return c["p_acc"], values[-1], c["y_acc"]


class Fit(NamedTuple):
    """Results of ``K`` MAP fits (leading axis ``K`` everywhere)."""

    params: dict  # θ levels: g [K, P], h [K, H, P], s [K, S, P], f [K, F, P]
    objective: np.ndarray  # [K] final MAP objective
    log_pred: np.ndarray  # [K, N] model log step time of every row at the fit


class Fitter:
    """Jitted, vmapped MAP fits for one :class:`Problem` (compiled once per problem).

    ``fit(weights [K, N], scale, log_t)`` runs ``K`` fits at once and returns a
    :class:`Fit`; weights, prior scale and measured times are arguments (not constants),
    so changing them does not recompile.
    """

    def __init__(self, pb: Problem, iterations: int = ITERATIONS):
        self.pb, self.iterations = pb, iterations
        with jax.enable_x64(True):
            self._fit = jit_fast_compile(
                jax.vmap(lambda w, s, y: _fit_one(pb, w, s, y, iterations), in_axes=(0, None, None))
            )

    def fit(self, weights, scale=1.0, log_t=None) -> Fit:
        y = self.pb.log_t if log_t is None else log_t
        with jax.enable_x64(True):
            w = jnp.asarray(np.asarray(weights, np.float64))
            s = jnp.asarray(float(scale), jnp.float64)
            params, value, pred = self._fit(w, s, jnp.asarray(np.asarray(y, np.float64)))
            return Fit(jax.tree.map(np.asarray, params), np.asarray(value), np.asarray(pred))


_FITTERS: dict[tuple, tuple[Problem, Fitter]] = {}


def fitter(pb: Problem, iterations: int = ITERATIONS) -> Fitter:
    """The :class:`Fitter` of ``pb`` (cached while ``pb`` is alive)."""
    key = (id(pb), iterations)
    hit = _FITTERS.get(key)
    if hit is None or hit[0] is not pb:
        if len(_FITTERS) > 4:
            _FITTERS.clear()
        hit = _FITTERS[key] = (pb, Fitter(pb, iterations))
    return hit[1]


def fit_many(pb: Problem, weights, scale=1.0, iterations: int = ITERATIONS, log_t=None) -> Fit:
    """MAP fits for every row-weight vector of ``weights [K, N]`` at once (vmapped)."""
    return fitter(pb, iterations).fit(weights, scale, log_t)


def fit(pb: Problem, scale=1.0, weights=None, iterations: int = ITERATIONS) -> dict:
    """One MAP fit's θ levels (all rows weight 1 unless ``weights`` is given)."""
    w = np.ones(len(pb.ids)) if weights is None else np.asarray(weights, np.float64)
    return jax.tree.map(lambda x: x[0], fit_many(pb, w[None, :], scale, iterations).params)


class LeaveOut(NamedTuple):
    """Log step-time predictions ``[N]`` in-sample and by fits that did not see the row."""

    full: np.ndarray  # the fit on every row (in-sample)
    row: np.ndarray  # leave the row out
    family: np.ndarray  # leave its whole family out
    params: dict  # θ levels of the full fit


def leave_out_masks(pb: Problem) -> np.ndarray:
    """Row weights ``[1 + N + F, N]``: all rows; without row k; without family f."""
    n, nf = len(pb.ids), len(pb.fam_names)
    w = np.ones((1 + n + nf, n))
    w[1 + np.arange(n), np.arange(n)] = 0.0
    for f in range(nf):
        w[1 + n + f, pb.fam == f] = 0.0
    return w


def leave_out(pb: Problem, scale=1.0, iterations: int = ITERATIONS, log_t=None) -> LeaveOut:
    """In-sample, leave-one-row-out and leave-one-family-out predictions, all fits at once.

    Mask 0 keeps every row; mask ``1 + k`` drops row ``k``; mask ``1 + N + f`` drops every
    row of family ``f`` (its family offset then sits at its prior, 0, so the row is
    predicted from its hardware and software levels, or the default family). Row ``i``'s
    LOO prediction is fit ``1 + i``'s prediction of row ``i``. ``log_t`` replaces the
    measured log step times (default ``pb.log_t``).
    """
    n = len(pb.ids)
    res = fit_many(pb, leave_out_masks(pb), scale, iterations, log_t)
    idx = np.arange(n)
    return LeaveOut(
        full=res.log_pred[0],
        row=res.log_pred[1 + idx, idx],
        family=res.log_pred[1 + n + pb.fam, idx],
        params=jax.tree.map(lambda x: x[0], res.params),
    )


def mape(log_pred, log_meas) -> float:
    """Mean absolute percentage error of step times, in percent."""
    p, m = np.exp(np.asarray(log_pred)), np.exp(np.asarray(log_meas))
    return float(np.mean(np.abs(p - m) / m) * 100) if len(m) else float("nan")


def tune_prior_scale(pb: Problem, scales=PRIOR_SCALES, iterations: int = ITERATIONS):
    """Leave-out score of each candidate prior scale λ, and each λ's :class:`LeaveOut`.

    The score is the mean of the leave-one-row-out and leave-one-family-out MAPE (%):
    λ must serve both a new configuration of a measured family and an unseen family
    (the fallback of :func:`efficiency_for`). Every λ uses the same mask shapes: one
    compilation.
    """
    outs = {float(s): leave_out(pb, s, iterations) for s in scales}
    score = {s: 0.5 * (mape(o.row, pb.log_t) + mape(o.family, pb.log_t)) for s, o in outs.items()}
    return score, outs


# ----------------------------------------------------------------------------- storage


class Calibration(NamedTuple):
    """Stored parameters (values, not θ) per level, with the rows they came from."""

    default: dict
    hardware: dict  # chip -> params (θ_g + a_h)
    software: dict  # software -> params (θ_g + b_s)
    families: dict  # "chip/software" -> params
    rows: dict  # level key ("default", "hardware.<chip>", …) -> tuple of row ids
    meta: dict


def summarise(pb: Problem, params: dict, meta: dict) -> Calibration:
    """The :class:`Calibration` of a fit (every level as plain values)."""
    g = np.asarray(params["g"])
    hardware = {h: values_of(g + params["h"][i]) for i, h in enumerate(pb.hw_names)}
    software = {s: values_of(g + params["s"][i]) for i, s in enumerate(pb.sw_names)}
    families = {}
    rows: dict[str, tuple] = {"default": pb.ids}
    for i, f in enumerate(pb.fam_names):
        h, s = f.split("/")
        th = g + params["h"][pb.hw_names.index(h)] + params["s"][pb.sw_names.index(s)]
        families[f] = values_of(th + params["f"][i])
        rows[f"families.{f}"] = tuple(pb.ids[j] for j in np.nonzero(pb.fam == i)[0])
    for i, h in enumerate(pb.hw_names):
        rows[f"hardware.{h}"] = tuple(pb.ids[j] for j in np.nonzero(pb.hw == i)[0])
    for i, s in enumerate(pb.sw_names):
        rows[f"software.{s}"] = tuple(pb.ids[j] for j in np.nonzero(pb.sw == i)[0])
    return Calibration(values_of(g), hardware, software, families, rows, meta)


def _toml_value(v) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _params_lines(p: dict) -> list[str]:
    return [f"{k} = {p[k]:.6g}" for k in PARAMS]


def to_toml(cal: Calibration) -> str:
    """TOML text of a :class:`Calibration` (stable order, 6 significant digits)."""
    lines = [
        "# Calibrated efficiencies and fixed overheads per hardware x software family.",
        f"# Generated by `{REGENERATE}`; do not edit by hand. See search/calibrate.py for the",
        "# model (hierarchical MAP fit, log step time) and hardware_db/measurements.py for the",
        "# rows. Efficiencies are fractions of peak; overheads are seconds per kernel /",
        "# per collective.",
        "",
        "[meta]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in cal.meta.items()]
    lines += ["", "[default]", "# the default family: for hardware and software never measured"]
    lines += _params_lines(cal.default)
    lines.append(f"rows = {_toml_value(list(cal.rows['default']))}")
    for level, table in (("hardware", cal.hardware), ("software", cal.software)):
        for name in sorted(table):
            lines += ["", f'[{level}."{name}"]']
            lines += _params_lines(table[name])
            lines.append(f"rows = {_toml_value(list(cal.rows[f'{level}.{name}']))}")
    for name in sorted(cal.families):
        lines += ["", f'[families."{name}"]']
        lines += _params_lines(cal.families[name])
        lines.append(f"rows = {_toml_value(list(cal.rows[f'families.{name}']))}")
    return "\n".join(lines) + "\n"


def _check_params(path, where_: str, table) -> dict:
    if not isinstance(table, dict):
        raise db.DbError(f"{path}: {where_}: expected a table")
    out = {}
    for k in PARAMS:
        v = table.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise db.DbError(f"{path}: {where_}.{k}: expected a finite number, got {v!r}")
        if k.endswith("_efficiency") and not floor_of(k) <= v <= 1:
            raise db.DbError(f"{path}: {where_}.{k}: {v!r} outside [{floor_of(k)}, 1]")
        if k.endswith("_s") and not 0 < v < 1:
            raise db.DbError(f"{path}: {where_}.{k}: {v!r} s outside (0, 1) s")
        out[k] = float(v)
    return out


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> Calibration:
    del mtime_ns
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise db.DbError(f"{path}: cannot read calibration: {' '.join(str(e).split())}") from None
    levels = {}
    rows = {"default": tuple(doc.get("default", {}).get("rows", ()))}
    for level in ("hardware", "software", "families"):
        levels[level] = {}
        for name, t in doc.get(level, {}).items():
            levels[level][name] = _check_params(path, f"{level}.{name}", t)
            rows[f"{level}.{name}"] = tuple(t.get("rows", ()))
    return Calibration(
        default=_check_params(path, "default", doc.get("default")),
        hardware=levels["hardware"],
        software=levels["software"],
        families=levels["families"],
        rows=rows,
        meta=dict(doc.get("meta", {})),
    )


def load_calibration(path=None) -> Calibration:
    """The stored calibration (default :data:`CALIBRATION_TOML`), validated."""
    p = Path(path) if path is not None else CALIBRATION_TOML
    if not p.is_file():
        raise db.DbError(f"{p}: no calibration file; run `{REGENERATE}`")
    return _load_cached(str(p), p.stat().st_mtime_ns)


def resolve_theta(cal: Calibration, hardware: str | None, software: str | None):
    """``(θ, level, note)`` for a hardware/software pair by the lookup rule (docstring)."""
    g = to_theta(cal.default)
    fam = f"{hardware}/{software}"
    if hardware and software and fam in cal.families:
        return to_theta(cal.families[fam]), f"calibrated:{fam}", f"calibrated family {fam}"
    h = cal.hardware.get(hardware) if hardware else None
    s = cal.software.get(software) if software else None
    if h is not None and s is not None:
        th = to_theta(h) + to_theta(s) - g
        note = f"no measurements of {fam}: hardware {hardware} and software {software} combined"
        return th, f"calibrated:{fam}*", note
    if h is not None:
        why = "no software given" if not software else f"software {software} never measured"
        return to_theta(h), f"calibrated:{hardware}/*", f"{why}: hardware-level {hardware}"
    if s is not None:
        note = f"hardware {hardware} never measured: software-level {software}"
        return to_theta(s), f"calibrated:*/{software}", note
    note = f"neither hardware {hardware} nor software {software} measured: default family"
    return g, "calibrated:default", note


def efficiency_for(system_name: str, software: str | None = None, path=None):
    """``(Efficiency, mode_name, notes)`` for ``--mode calibrated`` on ``system_name``.

    ``software`` is a family slug or alias (``trtllm``, ``vllm``, …) or ``None``. Falls
    back as documented in the module docstring; the notes say which level was used.
    """
    cal = load_calibration(path)
    sw = None
    if software:
        try:
            sw = software_slug(software)
        except db.DbError as e:
            raise UserError(f"--software: {e}") from None
    hw = hardware_of(system_name)
    theta, mode_name, note = resolve_theta(cal, hw, sw)
    eff = jax.tree.map(float, efficiency_of(jnp.asarray(theta)))
    return eff, mode_name, (note,)


# ----------------------------------------------------------------------------- command


def fit_rows(grades=GRADES_FIT, path=None):
    """The usable measurement rows of ``grades`` (default: the fit set)."""
    return [m for m in load_measurements(path, usable_only=True) if m.grade in grades]


def calibrate(scales=PRIOR_SCALES, iterations: int = ITERATIONS, path=None) -> Calibration:
    """Tune λ by leave-out MAPE, fit every row, and summarise (not written)."""
    pb = build_problem(fit_rows(path=path))
    scores, outs = tune_prior_scale(pb, scales, iterations)
    best = min(scores, key=lambda s: (scores[s], s))
    meta = {
        "fit_date": datetime.date.today().isoformat(),
        "command": REGENERATE,
        "measurements": "hardware_db/data/measurements.csv",
        "grades": list(GRADES_FIT),
        "method": "hierarchical MAP (theta = global + hardware + software + family), "
        "L-BFGS on squared log step time; see search/calibrate.py",
        "prior_scale": float(best),
        "leave_out_score_by_prior_scale": {f"{s:g}": round(v, 3) for s, v in scores.items()},
        "in_sample_mape": round(mape(outs[best].full, pb.log_t), 3),
        "loo_row_mape": round(mape(outs[best].row, pb.log_t), 3),
        "loo_family_mape": round(mape(outs[best].family, pb.log_t), 3),
        "iterations": iterations,
    }
    return summarise(pb, outs[best].params, meta)


def main(argv=None) -> int:
    import argparse

    from search.io import atomic_write

    ap = argparse.ArgumentParser(prog="python -m search.calibrate", description=__doc__)
    ap.add_argument("--write", action="store_true", help=f"write {CALIBRATION_TOML.name}")
    ap.add_argument("--out", default=str(CALIBRATION_TOML), help="where to write")
    a = ap.parse_args(argv)
    cal = calibrate()
    text = to_toml(cal)
    if a.write:
        atomic_write(a.out, text)
        print(f"wrote {a.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
