r"""The hierarchical MAP fit of the calibrated mode's six numbers per family.

**Hierarchy** (additive in θ, :mod:`hardware_db.calibration`, so one-row families borrow
from their relatives)::

    θ_{h,s} = θ_g + a_h + b_s + c_{h,s}
    θ_g ~ N(μ_0, S_0²),  a_h ~ N(0, (λ·S_h)²),  b_s ~ N(0, (λ·S_s)²),  c ~ N(0, (λ·S_c)²)

with a weak global prior μ_0 (:data:`PRIOR_MEAN`) and one prior scale λ chosen by
leave-out error (:func:`search.fidelity.leave_out.tune_prior_scale`). **MAP fit**:
minimise ::

    L(θ) = Σ_rows w_r (log t̂_r(θ) − log t_r)² / (2σ²) + Σ priors (z²/2),   σ = 0.1

by L-BFGS (:func:`search.fidelity.lbfgs.minimise`) for a fixed number of iterations, in
float64, from the prior mean: deterministic. The model ``t̂_r`` is
:func:`costmodel.decode.decode_step` itself (:mod:`search.fidelity.problem`); the
gradient in the hierarchy follows by the chain rule. Many fits (one per row-weight
vector) run at once under ``jax.vmap``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hardware_db.calibration import PARAMS, param_kind, to_theta
from search.fidelity.lbfgs import minimise
from search.fidelity.problem import Problem, model_rows, predict_log_step, row_theta
from search.jit import jit_fast_compile

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


def _sd(table: dict) -> np.ndarray:
    return np.asarray([table[param_kind(k)] for k in PARAMS])


OBS_SD = 0.1
"""Scale of the log step-time residual per row (measurement and definition noise)."""


def data_loss(resid, weights):
    """Gaussian negative log-likelihood of the log residuals: ``Σ w·r²/(2σ²)``."""
    return jnp.sum(weights * (resid / OBS_SD) ** 2) / 2


PRIOR_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Candidate prior scales λ for :func:`tune_prior_scale`."""

ITERATIONS = 200
"""Model evaluations per fit (fixed: deterministic, vmappable)."""


def init_params(pb: Problem) -> dict:
    """Start of every fit: the prior mean (offsets 0)."""
    z, n = np.zeros, len(PARAMS)
    return {
        "g": np.asarray(to_theta(PRIOR_MEAN), np.float64),
        "h": z((len(pb.hw_names), n)),
        "s": z((len(pb.sw_names), n)),
        "f": z((len(pb.fam_names), n)),
    }


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


def _fit_one(pb: Problem, weights, scale, log_t, iterations: int):
    """One MAP fit: :func:`~search.fidelity.lbfgs.minimise` of :func:`objective` from the
    prior mean; returns ``(θ levels, objective, log t̂ [N])``."""
    p0 = jax.tree.map(jnp.asarray, init_params(pb))
    return minimise(
        lambda p: _value_and_grad(p, pb, weights, scale, log_t),
        p0,
        jnp.zeros(len(pb.ids)),
        iterations,
    )


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
