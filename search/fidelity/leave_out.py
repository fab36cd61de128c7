"""Leave-out validation of the MAP fit: every row and every family predicted unseen.

All ``1 + N + F`` fits (all rows; without row k; without family f) run at once as one
vmapped :class:`~search.fidelity.map_fit.Fitter` call, and the prior scale λ is chosen by
their mean error (:func:`tune_prior_scale`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from search.fidelity.map_fit import ITERATIONS, PRIOR_SCALES, fit_many
from search.fidelity.problem import Problem


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
