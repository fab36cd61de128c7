r"""End-to-end fit of the kernel-level calibrated mode to the serving measurements.

Rows: ``hardware_db/data/serving_measurements.csv`` (:mod:`hardware_db.serving`) with at
most :data:`MAX_USERS` concurrent requests (decode-dominated). Each row's log step time
is :func:`costmodel.decode.decode_step` in the kernel-level mode
(:class:`costmodel.kernel_mode.KernelCalibration`) at the row's θ
(:mod:`hardware_db.e2e_calibration`)::

    θ_row = θ_table(hw, sw, precision of the row) + δ_sw + δ_{hw/sw}

(the feed-forward GEMM class ``gemm_ffn`` takes ``gemm``'s offsets: no parameter of its own)

**MAP fit** of the offsets δ (one vector per software stack and one per hardware ×
software family; every kernel class's five constants, every collective's four and the
step overhead)::

    L(δ) = Σ_rows w_r ρ(log t̂_r − log t_r) / σ²      (ρ pseudo-Huber, ≈ r²/2 below 0.25)
         + Σ_sw ½‖δ_sw / s‖² + Σ_fam ½‖δ_fam / (s·FAMILY_SCALE)‖²

(σ = :data:`OBS_SD`; ``s`` = λ·:data:`PRIOR_SD` per parameter kind: a Gaussian prior in
the transformed space centred on the kernel-table fit, λ chosen by leave-one-model-out
error, inside the leave-out loop when judging (:func:`lomo`); only the :data:`FREE` kinds move), by
:func:`search.fidelity.lbfgs.minimise` with exact gradients (``jax.grad`` through
``decode_step``) in float64, from δ = 0, a fixed number of iterations: deterministic.
Rows are stacked per system structure (:mod:`search.stacking`), one vmapped call each;
many fits (row-weight vectors) run at once under ``jax.vmap``.

**Measurement model.** A serving run's TPOT is a decode step plus the prefills of newly
arriving requests that interleave with it: each of the other ``c − 1`` requests in flight
brings ``isl`` prefill tokens every ``osl`` steps, so per step ``(c − 1)/osl`` prefills of
``F_p = isl·(2·N_active + 2·L·H·(d_qk + d_v)·isl/2)`` FLOPs run on one attention replica
(``attn_tp`` chips at the recipe's GEMM peak) at an efficiency ``η_p`` fitted per software
(prior 0.5)::

    TPOT = t_step + (c − 1)/osl · F_p / (attn_tp · P · η_p)

Only ``t_step`` is the cost model's (and what ``--mode calibrated`` predicts); the
interference term keeps prefill stalls out of the kernel constants.

**Leave-one-model-out** (:func:`lomo`): for each model, the fit with its rows at weight 0
predicts them, at a prior scale λ chosen without its rows either (nested: on the fits that
leave it and one other model out). **Interval**: quantiles of the LOMO log residuals
``log t − log t̂``, the narrowest pair whose coverage of each held-out model's rows
(judged with the *other* models' residuals) reaches 80 % (:func:`coverage`).
"""

from __future__ import annotations

import datetime
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import hardware_db as db
from costmodel import params as P
from costmodel.decode import decode_step
from costmodel.kernel_mode import from_values, launch_array
from costmodel.specs import SOL, Parallelism, Workload
from hardware_db import e2e_calibration as ec
from hardware_db.serving import load_serving
from hardware_db.stack_kernels import launch_table
from search.errors import UserError
from search.fidelity.lbfgs import minimise
from search.jit import jit_fast_compile
from search.stacking import canonical_system, stack_configs, structure_key

MAX_USERS = 8
"""Rows with at most this many concurrent requests are fitted."""

OBS_SD = 0.1
"""Scale of a row's log residual (measurement and definition noise)."""

PRIOR_SD = {
    "t_floor_s": 1.0,
    "eta_c_max": 0.5,
    "m_half_rows": 0.5,
    "eta_m_max": 0.7,
    "b_half_bytes": 1.0,
    "alpha0_s": 1.0,
    "alpha1_s": 0.5,
    "beta_max_bytes_per_s": 0.3,
    "gamma": 0.3,
    "step_overhead_s": 2.0,
}
"""Prior sd of a stack's offset per parameter kind (natural-log or logit units)."""

FREE = ("t_floor_s", "eta_m_max", "b_half_bytes", "alpha0_s", "step_overhead_s")
"""Parameter kinds the end-to-end fit moves (per kernel class / collective); the others
(compute efficiency and its half-point, α1, β, γ) stay at the kernel-table values: at
≤ 8 users decode is floor-, memory- and latency-bound, and the rows cannot tell them."""

HUBER_SD = 0.25
"""Residual (log units) beyond which the loss grows linearly (pseudo-Huber): a few rows
far from every model (e.g. TPOT ≥ 10× SOL at 2 users) must not steer the fit."""

STEP_SCALE = 0.25
"""The step overhead's prior sd (× :data:`PRIOR_SD`) at the software level, independent of
λ: a free per-step overhead absorbs model-specific misses and transfers them to the
held-out model (leave-one-model-out MAPE 23.7 % with sd 2 against 18–20 % with 0.5)."""

FAMILY_SCALE = 0.1
"""Family offsets (hardware × software) have ``FAMILY_SCALE`` × the stack's prior sd: the
hardware is already in the kernel tables, and freer family offsets over-fit the models
that remain when one is left out (leave-one-model-out MAPE 26 % at 0.5, 24 % at 0.1)."""

ITERATIONS = 120
"""L-BFGS evaluations per fit."""

PRIOR_SCALES = (0.001, 0.03, 0.1, 0.3)
"""Candidate prior scales λ: the stored fit's has the smallest leave-one-model-out MAPE;
each held-out model's is chosen without its rows (:func:`lomo`)."""

INTERVALS = ((0.1, 0.9), (0.075, 0.925), (0.05, 0.95), (0.025, 0.975))
"""Candidate quantile pairs of the LOMO log residuals for the 80 % band (:func:`coverage`)."""


def _sd() -> np.ndarray:
    return np.asarray([PRIOR_SD[k.split(".")[-1]] for k in ec.PARAM_NAMES])


class Problem(NamedTuple):
    """Serving rows as stacked cost-model inputs, with their θ priors and indices."""

    rows: tuple
    sw_names: tuple[str, ...]
    fam_names: tuple[str, ...]
    model_names: tuple[str, ...]
    sw: np.ndarray  # [N]
    fam: np.ndarray  # [N]
    model: np.ndarray  # [N]
    prior: np.ndarray  # [N, len(THETA_NAMES)] table θ of each row
    aux: np.ndarray  # [N] auxiliary-kernel share of the row's stack
    launches: np.ndarray  # [N, T, 4] launch table of the row's stack (stack_kernels)
    prefill_s: np.ndarray  # [N] interference (c − 1)/osl · F_p/(attn_tp·P) at η_p = 1
    log_t: np.ndarray  # [N]
    groups: tuple  # ((row indices, stacked (model, precision, system, par, wl)), ...)
    configs: tuple


def row_config(r):
    """``(model, precision, system, parallelism, workload)`` of a serving row."""
    spec, _ = db.load_model(r.model)
    prec = db.load_precision(r.recipe)
    system = db.load_system(r.system, max_chips=r.chips if r.system == "gb200-nvl72" else None)
    par = Parallelism(r.attn_tp, r.attn_dp, r.kvp, r.ep, r.moe_tp, r.pp)
    wl = Workload(batch=r.batch, context_tokens=r.context)
    return spec, prec, system, par, wl


def prefill_peak_flops(prec, chip) -> float:
    """Dense peak FLOP/s of ``chip`` at the recipe's FFN compute precision (BF16; FP8 at
    ≤ 8 bits, FP4 at ≤ 4 bits where the chip has them)."""
    bits = float(prec.ffn_compute_bits)
    peak = float(chip.peak_flops_per_s_bf16)
    if bits <= 8.5 and float(chip.peak_flops_per_s_fp8) > 0:
        peak = float(chip.peak_flops_per_s_fp8)
    if bits <= 4.5 and float(chip.peak_flops_per_s_fp4) > 0:
        peak = float(chip.peak_flops_per_s_fp4)
    return peak


def prefill_flops(spec, isl: int) -> float:
    """FLOPs of one prefill of ``isl`` tokens: ``isl·(2·N_active + L·H·(d_qk + d_v)·isl)``
    (2 FLOPs per active parameter per token; causal ``QKᵀ`` and ``PV``, 2 FLOPs per
    multiply-add over on average ``isl/2`` keys; Kaplan et al. 2020, arXiv:2001.08361)."""
    attn = float(P.n_softmax_layers(spec)) * float(spec.n_heads)
    attn = attn * float(spec.head_dim_qk + spec.head_dim_v)
    return isl * (2.0 * float(P.active_params(spec)) + attn * isl)


def prefill_interference_s(r, spec, prec, system) -> float:
    """``(c − 1)/osl · F_p / (attn_tp · P)`` seconds per step at η_p = 1 (module doc)."""
    f_p = prefill_flops(spec, r.isl)
    others = max((r.concurrency or 1) - 1, 0)
    return others / max(r.osl, 1) * f_p / (r.attn_tp * prefill_peak_flops(prec, system.chip))


def build_problem(rows) -> Problem:
    """Stack usable serving rows into a :class:`Problem`."""
    rows = tuple(r for r in rows if r.usable)
    if not rows:
        raise UserError("no usable serving rows to calibrate on")
    sw_names = tuple(sorted({r.software for r in rows}))
    fam_names = tuple(sorted({r.stack for r in rows}))
    model_names = tuple(sorted({r.model for r in rows}))
    groups: dict = {}
    configs, prior, prefill = [], [], []
    for i, r in enumerate(rows):
        cfg = row_config(r)
        configs.append(cfg)
        prefill.append(prefill_interference_s(r, cfg[0], cfg[1], cfg[2]))
        prior.append(ec.table_theta(r.hardware, r.software, ec.precisions_of(cfg[1])))
        c = (*cfg[:2], canonical_system(cfg[2]), *cfg[3:])
        groups.setdefault(structure_key(c[2]), []).append((i, c))
    stacked = tuple(
        (np.asarray([i for i, _ in g]), stack_configs([c for _, c in g])) for g in groups.values()
    )
    return Problem(
        rows=rows,
        sw_names=sw_names,
        fam_names=fam_names,
        model_names=model_names,
        sw=np.asarray([sw_names.index(r.software) for r in rows]),
        fam=np.asarray([fam_names.index(r.stack) for r in rows]),
        model=np.asarray([model_names.index(r.model) for r in rows]),
        prior=np.stack(prior),
        aux=np.asarray([ec.AUX_KERNELS.get(r.software, 1.0) for r in rows]),
        launches=np.stack([np.asarray(launch_array(launch_table(r.software))) for r in rows]),
        prefill_s=np.asarray(prefill),
        log_t=np.log(np.asarray([r.tpot_s for r in rows])),
        groups=stacked,
        configs=tuple(configs),
    )


def mode_of(theta, aux, launches=None):
    """The :class:`~costmodel.kernel_mode.KernelCalibration` of one row's θ ``[P]``
    (``launches``: the row's launch table ``[T, 4]``, :mod:`hardware_db.stack_kernels`)."""
    return from_values(ec.nested(ec.values_of(theta), aux, launches=launches))


def _row_log_step(theta, aux, launches, cfg):
    return jnp.log(decode_step(*cfg, mode_of(theta, aux, launches)).step_time_s)


def _free() -> np.ndarray:
    return np.asarray([k.split(".")[-1] in FREE for k in ec.PARAM_NAMES], float)


def row_theta(params: dict, pb: Problem):
    """θ of every row ``[N, len(THETA_NAMES)]``: table prior + software + family offsets
    (of the :data:`FREE` parameters; the others stay at the table), a tied class
    (``gemm_ffn``) moving with its parent's (:func:`hardware_db.e2e_calibration.tied_offsets`)."""
    return pb.prior + ec.tied_offsets((params["s"][pb.sw] + params["f"][pb.fam]) * _free())


PREFILL_ETA = 0.5
"""Prior centre of the prefill efficiency η_p (fraction of the GEMM peak)."""


def predict_log(params: dict, pb: Problem, with_prefill: bool = True):
    """Model log TPOT of every row ``[N]`` (``with_prefill=False``: log step time)."""
    theta = row_theta(params, pb)
    out = jnp.zeros(len(pb.rows))
    for idx, cfg in pb.groups:
        v = jax.vmap(_row_log_step)(theta[idx], pb.aux[idx], pb.launches[idx], cfg)
        out = out.at[idx].set(v)
    if not with_prefill:
        return out
    eta = jax.nn.sigmoid(params["p"][pb.sw] + math.log(PREFILL_ETA / (1 - PREFILL_ETA)))
    return jnp.log(jnp.exp(out) + pb.prefill_s / eta)


def objective(params: dict, pb: Problem, weights, log_t, scale=1.0):
    """MAP objective (module docstring); ``scale`` λ multiplies the prior sd of every
    kernel and collective constant (not the step overhead's)."""
    pred = predict_log(params, pb)
    h = HUBER_SD
    rho = h * h * (jnp.sqrt(1.0 + ((pred - log_t) / h) ** 2) - 1.0)  # pseudo-Huber, ≈ r²/2
    data = jnp.sum(weights * rho) / OBS_SD**2
    step = np.asarray([k == "step_overhead_s" for k in ec.PARAM_NAMES])
    sd = jnp.where(step, _sd() * STEP_SCALE, _sd() * scale)
    sd_f = sd * FAMILY_SCALE
    prior = 0.5 * jnp.sum((params["s"] / sd) ** 2)
    prior = prior + 0.5 * jnp.sum((params["f"] / sd_f) ** 2)
    prior = prior + 0.5 * jnp.sum(params["p"] ** 2)
    return data + prior, pred


def _fit_one(pb: Problem, weights, log_t, scale, iterations: int):
    n = len(ec.PARAM_NAMES)
    p0 = {
        "s": jnp.zeros((len(pb.sw_names), n)),
        "f": jnp.zeros((len(pb.fam_names), n)),
        "p": jnp.zeros(len(pb.sw_names)),
    }
    vg = jax.value_and_grad(lambda p: objective(p, pb, weights, log_t, scale), has_aux=True)

    def value_and_grad(p):
        (f, pred), g = vg(p)
        g = jax.tree.map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
        return f, g, pred

    return minimise(value_and_grad, p0, jnp.zeros(len(pb.rows)), iterations)


class Fit(NamedTuple):
    params: dict  # s [K, S, P], f [K, F, P]
    objective: np.ndarray  # [K]
    log_pred: np.ndarray  # [K, N]


def fit_many(pb: Problem, weights, scales, log_t=None, iterations: int = ITERATIONS) -> Fit:
    """MAP fits for every row-weight vector ``weights [K, N]`` and prior scale
    ``scales [K]`` at once (vmapped)."""
    y = pb.log_t if log_t is None else np.asarray(log_t, np.float64)
    with jax.enable_x64(True):
        f = jit_fast_compile(
            jax.vmap(lambda w, lam, yy: _fit_one(pb, w, yy, lam, iterations), (0, 0, None))
        )
        w = jnp.asarray(np.asarray(weights, np.float64))
        lam = jnp.asarray(np.asarray(scales, np.float64))
        params, value, pred = f(w, lam, jnp.asarray(y))
        return Fit(jax.tree.map(np.asarray, params), np.asarray(value), np.asarray(pred))


def lomo_weights(pb: Problem, mask=None, pairs: bool = False) -> np.ndarray:
    """``[M + 1, N]`` weights: row 0 all rows (in-sample fit), row 1 + m without model m;
    ``pairs``: then one row per pair ``m < m'`` of :func:`model_pairs` without both (the
    inner leave-out of the nested prior-scale choice)."""
    base = np.ones(len(pb.rows)) if mask is None else np.asarray(mask, float)
    w = [base]
    for m in range(len(pb.model_names)):
        w.append(base * (pb.model != m))
    if pairs:
        for a, b in model_pairs(len(pb.model_names)):
            w.append(base * (pb.model != a) * (pb.model != b))
    return np.stack(w)


def model_pairs(n_models: int) -> tuple:
    """``((a, b), …)``, ``a < b``: the pairs of models left out together (order of
    :func:`lomo_weights` rows ``1 + M + i``)."""
    return tuple((a, b) for a in range(n_models) for b in range(a + 1, n_models))


class Lomo(NamedTuple):
    """Leave-one-model-out fit (:func:`lomo`)."""

    params: dict  # the full fit's offsets at ``scale``
    insample: np.ndarray  # [N] log t̂ of the full fit
    loo: np.ndarray  # [N] log t̂ of each row from the fit without its model, at its λ_m
    scale: float  # λ of the full (stored) fit: the smallest LOMO MAPE
    mape_by_scale: list  # LOMO MAPE per λ (each λ used for every held-out model)
    scale_by_model: dict  # {model: λ_m chosen without that model's rows}


def lomo(pb: Problem, log_t=None, iterations: int = ITERATIONS, scales=PRIOR_SCALES) -> Lomo:
    r"""Leave-one-model-out fits for every prior scale λ of ``scales``, at once.

    **Nested choice of λ.** The held-out model must not influence its own prediction,
    including through λ: for each model ``m`` and each λ, the *inner* error is the MAPE
    over the rows of every other model ``m'`` predicted by the fit without both ``m`` and
    ``m'``; ``λ_m`` is the λ with the smallest inner error, and ``m``'s rows are predicted
    by the fit without ``m`` at ``λ_m`` (``loo``). The stored (full) fit uses the λ with the
    smallest ordinary LOMO MAPE (it predicts no held-out model). One λ: no inner fits.
    """
    n_models = len(pb.model_names)
    nested = len(scales) > 1 and n_models > 2
    w = lomo_weights(pb, pairs=nested)
    k = len(w)
    fit = fit_many(pb, np.tile(w, (len(scales), 1)), np.repeat(scales, k), log_t, iterations)
    y = pb.log_t if log_t is None else np.asarray(log_t)
    rows = np.arange(len(pb.rows))
    loos = [fit.log_pred[j * k + 1 + pb.model, rows] for j in range(len(scales))]
    mapes = [_mape(loo, y, rows == rows) for loo in loos]
    j = int(np.argmin(mapes))
    full = jax.tree.map(lambda x: x[j * k], fit.params)
    loo = loos[j].copy()
    by_model = {pb.model_names[m]: float(scales[j]) for m in range(n_models)}
    if nested:
        pair_row = {p: 1 + n_models + i for i, p in enumerate(model_pairs(n_models))}
        for m in range(n_models):
            inner = []
            for jj in range(len(scales)):
                pred, sel = np.zeros(len(rows)), pb.model != m
                for m2 in range(n_models):
                    if m2 != m:
                        own = pb.model == m2
                        pred[own] = fit.log_pred[jj * k + pair_row[tuple(sorted((m, m2)))], own]
                inner.append(_mape(pred, y, sel))
            jm = int(np.argmin(inner))
            own = pb.model == m
            loo[own] = loos[jm][own]
            by_model[pb.model_names[m]] = float(scales[jm])
    return Lomo(full, fit.log_pred[j * k], loo, float(scales[j]), mapes, by_model)


def sol_log(pb: Problem) -> np.ndarray:
    """Log SOL step time of every row."""
    out = np.zeros(len(pb.rows))
    for idx, cfg in pb.groups:
        r = jax.jit(jax.vmap(lambda *c: decode_step(*c, SOL).step_time_s))(*cfg)
        out[idx] = np.log(np.asarray(r))
    return out


def _mape(pred_log, log_t, sel) -> float:
    if not sel.any():
        return float("nan")
    return float(np.mean(np.abs(np.exp(pred_log[sel] - log_t[sel]) - 1.0)) * 100)


def _held_out_coverage(pb: Problem, resid, q) -> float:
    hit = np.zeros(len(resid), bool)
    for m in range(len(pb.model_names)):
        own = pb.model == m
        lo, hi = np.quantile(resid[~own], q)
        hit[own] = (resid[own] >= lo) & (resid[own] <= hi)
    return float(hit.mean())


def coverage(pb: Problem, loo) -> tuple[float, tuple[float, float]]:
    """``(held-out coverage, (log_q_low, log_q_high))`` of the interval.

    The LOMO residuals ``log t − log t̂`` cluster by model, so quantiles of all of them
    cover a *new* model's rows less often than nominal. The stored band is the narrowest
    pair of :data:`INTERVALS` whose coverage, judged per held-out model with the quantiles
    of the other models' residuals, reaches 80 % (else the widest)."""
    resid = pb.log_t - loo
    for q in INTERVALS:
        cov = _held_out_coverage(pb, resid, q)
        if cov >= 0.8:
            break
    lo, hi = np.quantile(resid, q)
    return cov, (float(lo), float(hi))


def report(pb: Problem, insample, loo, sol) -> dict:
    """MAPE tables (per stack, software, model), SOL violations, worst rows."""
    lt = pb.log_t
    out = {"rows": len(lt), "mape_lomo_pct": _mape(loo, lt, lt == lt)}
    out["mape_in_pct"] = _mape(insample, lt, lt == lt)
    for key, names, idx in (
        ("stack", pb.fam_names, pb.fam),
        ("software", pb.sw_names, pb.sw),
        ("model", pb.model_names, pb.model),
    ):
        out[f"by_{key}"] = {
            n: {
                "rows": int((idx == i).sum()),
                "mape_lomo_pct": round(_mape(loo, lt, idx == i), 1),
                "mape_in_pct": round(_mape(insample, lt, idx == i), 1),
            }
            for i, n in enumerate(names)
        }
    viol = np.nonzero(lt < sol)[0]
    out["sol_violations"] = [
        {"id": pb.rows[i].id, "measured_over_sol": round(float(np.exp(lt[i] - sol[i])), 3)}
        for i in viol
    ]
    out["calibrated_below_sol"] = int(np.sum(insample < sol - 1e-9) + np.sum(loo < sol - 1e-9))
    cov, q = coverage(pb, loo)
    out["interval_coverage_lomo"] = round(cov, 3)
    out["interval_log_q"] = [round(q[0], 4), round(q[1], 4)]
    out["interval_coverage_in"] = round(float(np.mean((lt - loo >= q[0]) & (lt - loo <= q[1]))), 3)
    err = np.abs(np.exp(loo - lt) - 1.0)
    out["worst"] = [
        {
            "id": pb.rows[i].id,
            "stack": pb.rows[i].stack,
            "model": pb.rows[i].model,
            "recipe": pb.rows[i].recipe,
            "users": pb.rows[i].concurrency,
            "split": f"tp{pb.rows[i].attn_tp} dp{pb.rows[i].attn_dp} ep{pb.rows[i].ep}",
            "measured_ms": round(math.exp(lt[i]) * 1e3, 2),
            "lomo_ms": round(math.exp(loo[i]) * 1e3, 2),
            "sol_ms": round(math.exp(sol[i]) * 1e3, 2),
        }  # fmt: skip
        for i in np.argsort(-err)[:10]
    ]
    return out


def _offset_lines(vec) -> list[str]:
    return [f'"{k}" = {float(v):.6g}' for k, v in zip(ec.PARAM_NAMES, vec, strict=True)]


def to_toml(pb: Problem, params: dict, rep: dict) -> str:
    """The stored calibration (``hardware_db/data/e2e_calibration.toml``)."""
    q = rep["interval_log_q"]
    lines = [
        "# Kernel-level calibrated mode: offsets (transformed space, hardware_db/",
        "# e2e_calibration.py) from the kernel-table prior, fitted end to end to",
        "# hardware_db/data/serving_measurements.csv (≤ 8 users) by search/fidelity/e2e_fit.py.",
        f"# Generated by `{ec.REGENERATE}`; do not edit by hand.",
        "",
        "[meta]",
        'source = "hardware_db/data/serving_measurements.csv (aiconfigurator-core 0.12.0 '
        'sample, Apache-2.0)"',
        f'date = "{datetime.date.today().isoformat()}"',
        f"rows = {rep['rows']}",
        f"max_users = {MAX_USERS}",
        f"mape_lomo_pct = {rep['mape_lomo_pct']:.2f}",
        f"mape_in_pct = {rep['mape_in_pct']:.2f}",
        f"prior_scale = {rep.get('prior_scale', 1.0)}",
        "",
        "[interval]",
        "# quantiles of the leave-one-model-out log residuals log(t / t̂): 80 % band",
        f"log_q_low = {q[0]:.6g}",
        f"log_q_high = {q[1]:.6g}",
        f"coverage_lomo = {rep['interval_coverage_lomo']}",
    ]
    eta_p = 1 / (1 + np.exp(-(np.asarray(params["p"]) + math.log(PREFILL_ETA / (1 - PREFILL_ETA)))))
    for i, s in enumerate(pb.sw_names):
        lines += ["", f'[software."{s}"]', f"prefill_eta = {float(eta_p[i]):.4g}"]
        lines += _offset_lines(params["s"][i])
    for i, f in enumerate(pb.fam_names):
        lines += ["", f'[families."{f}"]'] + _offset_lines(params["f"][i])
    return "\n".join(lines) + "\n"


def run(max_users: int = MAX_USERS, iterations: int = ITERATIONS, rows=None):
    """Load, fit with LOMO, report: ``(problem, full params, report)``."""
    rows = load_serving(usable_only=True, max_users=max_users) if rows is None else rows
    pb = build_problem(rows)
    lo = lomo(pb, iterations=iterations)
    with jax.enable_x64(True):
        sol = sol_log(pb)
    rep = report(pb, lo.insample, lo.loo, sol)
    rep["prior_scale"] = lo.scale
    rep["lomo_mape_by_scale"] = {
        str(s): round(m, 2) for s, m in zip(PRIOR_SCALES, lo.mape_by_scale, strict=True)
    }
    rep["prior_scale_by_model"] = lo.scale_by_model
    return pb, lo.params, rep
