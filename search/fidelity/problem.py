"""The rows a calibration fits: measurements stacked per system structure, and the model.

A :class:`Problem` holds the usable rows of ``hardware_db/data/measurements.csv`` as
cost-model records stacked per system structure (one vmapped call each,
:mod:`search.stacking`), their hardware / software / family indices, and the measured
log step times. :func:`model_rows` evaluates every row's log step time and its exact
Jacobian in the row's own θ (forward mode, P tangents); θ of a row is the sum of its
hierarchy levels (:func:`row_theta`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import hardware_db as db
from costmodel.decode import decode_step
from costmodel.specs import SOL, Parallelism, Workload
from hardware_db.calibration import PARAMS, efficiency_of
from hardware_db.extra_models import load_model_any
from hardware_db.measurements import Measurement, load_measurements
from search.errors import UserError
from search.stacking import Config, canonical_system, evaluate, stack_configs, structure_key

GRADES_FIT = ("A", "B")
"""Grades used for fitting."""


def fit_rows(grades=GRADES_FIT, path=None):
    """The usable measurement rows of ``grades`` (default: the fit set)."""
    return [m for m in load_measurements(path, usable_only=True) if m.grade in grades]


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
