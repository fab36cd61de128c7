r"""The calibrated mode on the offline-batch benchmarks (``tpsopt validate --level e2e
--set extra``): Argonne LLM-Inference-Bench and ROCm vLLM (``hardware_db/data/
extra_measurements.csv``, :mod:`hardware_db.extra_e2e`).

**Measurement model.** These TPOTs are the end-to-end latency of an offline batch divided
by the output length: ``c`` requests of ``isl`` prompt tokens are prefilled, then decoded
together for ``osl`` steps (context growing from ``isl`` to ``isl + osl``). So::

    TPOT_measured = t_step(batch c, context isl + osl/2) + T_prefill / osl
    T_prefill     = max(F_p / (tp · P · η_p),  W_chip / BW)
    F_p           = c · isl · (2·N_active + L·H·(d_qk + d_v)·isl)

``t_step`` is the decode step of the cost model at the mean context (the KV traffic is
linear in the context, so the mean step is the step at the mean context); ``F_p`` the
prefill FLOPs as in :func:`search.fidelity.e2e_fit.prefill_flops` (the matmuls, 2 FLOPs
per active parameter per token, and causal attention, ``QKᵀ`` and ``PV`` over on average
``isl/2`` keys: Kaplan et al. 2020, arXiv:2001.08361, Table 1); ``P`` the chip's dense
peak at the recipe's GEMM precision (:func:`search.fidelity.e2e_fit.prefill_peak_flops`),
``tp`` the GPUs of the row (Argonne: ``tp = num_gpus``); ``W_chip`` the resident weight
bytes of one chip (:func:`costmodel.decode.weight_bytes_per_chip`; a prefill of ≥ 128
tokens touches every expert of the models here) over its HBM bandwidth — the prefill
reads the weights at least once. ``η_p`` is the **assumed** prefill efficiency: the one
fitted per software on the 2026 serving rows (``prefill_eta`` of
``hardware_db/data/e2e_calibration.toml``: vLLM 0.81, TensorRT-LLM 0.92) and
:data:`~search.fidelity.e2e_fit.PREFILL_ETA` (0.5) for other software.

**SOL** of a row: the same expression with ``t_step`` in SOL mode and ``η_p = 1`` — a lower
bound of the measured TPOT (both the decode steps and the prefill are bounded below).

**Modes** (as a user gets them, :func:`search.scenario.calibrated_mode`): the kernel-level
mode where the hardware × software was fitted (H100 with vLLM / TensorRT-LLM),
*transferred* from the nearest measured hardware otherwise (A100, GH200, MI300X), the
six-scalar mode for DeepSpeed (A100, Gaudi2).

**Fit on this set, leave one family out** (:func:`lofo`): three global numbers — a scale
``k`` of the calibrated step, an added per-step overhead ``o`` and ``η_p`` — chosen on a
grid (:data:`GRID_K`, :data:`GRID_O_S`, :data:`GRID_ETA`) to minimise the MAPE of::

    TPOT = k · t_step + o + max(F_p / (tp·P·η_p), W_chip/BW) / osl

on the rows of every **other** family (hardware × framework); the held-out family's rows
never influence its prediction. Reported next to the out-of-sample figures *as is* (no
fit: ``k = 1``, ``o = 0``, ``η_p`` as assumed above).
"""

from __future__ import annotations

import numpy as np

GRID_K = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))
"""Grid of the step scale ``k`` (×0.25 … ×4, log-spaced)."""

GRID_O_S = np.concatenate([[0.0], np.geomspace(1e-4, 3e-2, 19)])
"""Grid of the added step overhead ``o`` (0, then 0.1 … 30 ms)."""

GRID_ETA = np.asarray([0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
"""Grid of the prefill efficiency ``η_p``."""


def prefill_terms_s(spec, prec, system, par, wl, isl: int) -> tuple[float, float]:
    """``(F_p / (tp·P), W_chip / BW)`` seconds of an offline batch's prefill at η_p = 1
    (module doc; ``wl.batch`` requests of ``isl`` tokens on ``par.attn_tp`` GPUs)."""
    from costmodel.decode import weight_bytes_per_chip
    from search.fidelity.e2e_fit import prefill_flops, prefill_peak_flops

    f_p = float(wl.batch) * prefill_flops(spec, isl)
    compute = f_p / (float(par.attn_tp) * prefill_peak_flops(prec, system.chip))
    weights = float(weight_bytes_per_chip(spec, prec, par, wl))
    return compute, weights / float(system.chip.hbm_bw_bytes_per_s)


HBM_USABLE = 0.9
"""Share of HBM a serving stack gives to weights and KV cache (vLLM's default
``gpu_memory_utilization`` = 0.9, vllm ``EngineArgs``)."""


def fits_in_hbm(spec, prec, system, par, tp: int, batch: int, tokens: int) -> bool:
    """Whether the weights plus the KV of ``batch`` sequences of ``tokens`` tokens fit in
    :data:`HBM_USABLE` of one chip's HBM (:func:`costmodel.decode.weight_bytes_per_chip`,
    :func:`~costmodel.decode.kv_bytes_per_chip`). When they do not, the stack cannot hold
    the whole batch: it preempts or queues requests and the batch runs in waves, which
    the decode-step model does not represent (such rows are reported separately)."""
    from costmodel.decode import kv_bytes_per_chip, weight_bytes_per_chip
    from costmodel.specs import Workload

    wl = Workload(batch=float(batch), context_tokens=float(tokens))
    need = float(weight_bytes_per_chip(spec, prec, par, wl)) + float(
        kv_bytes_per_chip(spec, prec, par, wl)
    )
    return need <= HBM_USABLE * float(system.chip.hbm_capacity_bytes)


def tpot_model_s(step_s, compute_s, weights_s, osl, eta_p, k=1.0, o_s=0.0):
    """``k·t_step + o + max(compute/η_p, weights)/osl`` (broadcasting numpy)."""
    return k * step_s + o_s + np.maximum(compute_s / eta_p, weights_s) / osl


def _assumed_eta(software: str) -> float:
    from hardware_db.e2e_calibration import E2E_TOML
    from hardware_db.loader import read_toml
    from search.fidelity.e2e_fit import PREFILL_ETA

    sw = read_toml(E2E_TOML).get("software", {}).get(software, {})
    return float(sw.get("prefill_eta", PREFILL_ETA))


def evaluate_rows(rows) -> dict:
    """Per row (arrays ``[N]``): calibrated and SOL step times, prefill terms, assumed
    η_p, mode name and kind; every row stacked per structure (:func:`search.stacking.
    evaluate`, one vmapped call per structure and mode type)."""
    import hardware_db as db
    from costmodel.specs import SOL, Parallelism, Workload
    from hardware_db.extra_models import load_model_any
    from search.scenario import calibrated_mode
    from search.stacking import Config, evaluate

    models, precs, systems, modes = {}, {}, {}, {}
    cfgs, sols, names, kinds, comp, wts, eta, fits = [], [], [], [], [], [], [], []
    for r in rows:
        if r.model not in models:
            models[r.model] = load_model_any(r.model)[0]
        if r.recipe not in precs:
            precs[r.recipe] = db.load_precision(r.recipe)
        if r.system not in systems:
            systems[r.system] = db.load_system(r.system)
        key = (r.system, r.software, r.recipe)
        if key not in modes:
            mode, name, _, _ = calibrated_mode(r.system, r.software, precs[r.recipe])
            head = name.split(":")[0]
            kind = head if head in ("kernel", "transferred") else "six_scalar"
            modes[key] = (mode, name, kind, _assumed_eta(r.software))
        mode, name, kind, e = modes[key]
        spec, prec, system = models[r.model], precs[r.recipe], systems[r.system]
        par = Parallelism(r.tp, 1, 1, 1, r.tp, 1)
        wl = Workload(batch=r.batch, context_tokens=r.context)
        cfgs.append(Config(spec, prec, system, par, wl, mode))
        sols.append(Config(spec, prec, system, par, wl, SOL))
        c, w = prefill_terms_s(spec, prec, system, par, wl, r.isl)
        comp.append(c)
        wts.append(w)
        fits.append(fits_in_hbm(spec, prec, system, par, r.tp, r.concurrency, r.isl + r.osl))
        names.append(name)
        kinds.append(kind)
        eta.append(e)
    return {
        "step_s": np.asarray(evaluate(cfgs).step_time_s, np.float64),
        "sol_step_s": np.asarray(evaluate(sols).step_time_s, np.float64),
        "compute_s": np.asarray(comp),
        "weights_s": np.asarray(wts),
        "osl": np.asarray([r.osl for r in rows], np.float64),
        "meas_s": np.asarray([r.tpot_s for r in rows], np.float64),
        "eta": np.asarray(eta),
        "fits": np.asarray(fits, bool),
        "mode": names,
        "kind": kinds,
    }


def fit_globals(ev: dict, sel) -> tuple[float, float, float]:
    """``(k, o_s, η_p)`` on the grids minimising the MAPE of the rows ``sel`` (module doc)."""
    sel = np.asarray(sel, bool)
    step, comp, wts = ev["step_s"][sel], ev["compute_s"][sel], ev["weights_s"][sel]
    osl, meas = ev["osl"][sel], ev["meas_s"][sel]
    best = (np.inf, 1.0, 0.0, 0.5)
    ks, os_ = GRID_K[:, None, None], GRID_O_S[None, :, None]
    for e in GRID_ETA:
        pre = np.maximum(comp / e, wts) / osl
        err = np.abs((ks * step + os_ + pre) / meas - 1.0).mean(axis=-1)
        i, j = np.unravel_index(np.argmin(err), err.shape)
        if err[i, j] < best[0]:
            best = (float(err[i, j]), float(GRID_K[i]), float(GRID_O_S[j]), float(e))
    return best[1:]


def lofo(ev: dict, families) -> tuple[np.ndarray, dict]:
    """Leave-one-family-out predictions ``[N]`` and each family's ``(k, o_s, η_p)`` fitted
    on the other families' rows."""
    fam = np.asarray(families)
    pred = np.empty(len(fam))
    fitted = {}
    for f in sorted(set(families)):
        held = fam == f
        k, o, e = fit_globals(ev, ~held)
        fitted[f] = {"k": round(k, 4), "o_ms": round(o * 1e3, 4), "eta_p": e}
        pred[held] = tpot_model_s(
            ev["step_s"][held], ev["compute_s"][held], ev["weights_s"][held],
            ev["osl"][held], e, k, o,
        )  # fmt: skip
    return pred, fitted


def _ms(x) -> float:
    return round(float(x) * 1e3, 3)


def score_rows(err, sel, sol_viol) -> dict:
    """Rows, MAPE and median relative error (percent) and SOL violations of the selected
    rows (``err``: relative errors; ``sel``, ``sol_viol``: boolean masks)."""
    sel = np.asarray(sel, bool)
    if not sel.any():
        return {"rows": 0}
    return {
        "rows": int(sel.sum()),
        "mape_pct": round(float(np.mean(np.abs(err[sel])) * 100), 2),
        "median_err_pct": round(float(np.median(err[sel]) * 100), 2),
        "sol_violations": int(np.sum(sol_viol[sel])),
    }


def extra_level_report(path=None) -> dict:
    """The extra set as a JSON-ready dict (module doc).

    *Length:* the assembly of one JSON document (skipped rows, per-source / per-family /
    per-mode scores as-is and LOFO, SOL check, worst rows) from one evaluation pass.

    Keys: ``rows_total``, ``rows_used``, ``skipped`` (reason → count), ``measurement_model``,
    ``by_source`` / ``by_family`` / ``by_mode_kind`` (``as_is`` and ``lofo`` scores: rows,
    MAPE, median signed error, SOL violations; per family also the mode, the median prefill
    share of the predicted TPOT, the scores of its rows whose batch fits in HBM and the
    LOFO-fitted ``k, o, η_p``), ``overall``, ``overall_fits_hbm``, ``overall_le8_users``
    (rows with ≤ 8 concurrent requests), ``rows_not_fitting_hbm``,
    ``sol_violations`` (id, measured/SOL, reason), ``worst`` (ten largest LOFO errors).
    """
    from collections import Counter

    from hardware_db.extra_e2e import load_extra

    every = load_extra(path)
    rows = [r for r in every if r.usable]
    skipped = Counter(r.reason for r in every if not r.usable)
    from search.errors import UserError

    if not rows:
        raise UserError("--set extra: no usable rows (models and hardware not in the database)")
    ev = evaluate_rows(rows)
    meas = ev["meas_s"]
    as_is = tpot_model_s(ev["step_s"], ev["compute_s"], ev["weights_s"], ev["osl"], ev["eta"])
    sol = tpot_model_s(ev["sol_step_s"], ev["compute_s"], ev["weights_s"], ev["osl"], 1.0)
    fams = [r.family for r in rows]
    pred_lofo, fitted = lofo(ev, fams)
    err_a, err_l = as_is / meas - 1.0, pred_lofo / meas - 1.0
    viol = sol > meas
    pre_share = (as_is - ev["step_s"]) / as_is

    def both(sel) -> dict:
        return {"as_is": score_rows(err_a, sel, viol), "lofo": score_rows(err_l, sel, viol)}

    fam_a, src_a, kind_a = np.asarray(fams), np.asarray([r.source_id for r in rows]), None
    kind_a = np.asarray(ev["kind"])
    by_family = {}
    for f in sorted(set(fams)):
        sel = fam_a == f
        by_family[f] = both(sel) | {
            "fits_hbm": both(sel & ev["fits"]),
            "mode": sorted({ev["mode"][i] for i in np.nonzero(sel)[0]}),
            "prefill_share_median": round(float(np.median(pre_share[sel])), 3),
            "lofo_fit": fitted[f],
        }
    worst = []
    for i in np.argsort(-np.abs(err_l))[:10]:
        r = rows[i]
        worst.append({
            "id": r.id, "family": r.family, "model": r.model, "gpus": r.tp,
            "users": r.concurrency, "isl": r.isl, "osl": r.osl,
            "measured_ms": _ms(meas[i]), "lofo_ms": _ms(pred_lofo[i]),
            "as_is_ms": _ms(as_is[i]), "sol_ms": _ms(sol[i]),
            "prefill_share": round(float(pre_share[i]), 3),
            "fits_hbm": bool(ev["fits"][i]),
            "err_lofo_pct": round(float(err_l[i] * 100), 1),
        })  # fmt: skip
    return {
        "level": "e2e",
        "set": "extra",
        "note": (
            "offline-batch TPOT = e2e latency / osl, prefill included: predicted as "
            "t_step + max(F_p/(tp·P·η_p), W/BW)/osl; as_is = calibrated mode out of sample, "
            "lofo = (k, o, η_p) fitted on the other families"
        ),
        "rows_total": len(every),
        "rows_used": len(rows),
        "skipped": dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
        "by_source": {s: both(src_a == s) for s in sorted(set(src_a))},
        "by_family": by_family,
        "by_mode_kind": {k: both(kind_a == k) for k in sorted(set(kind_a))},
        "overall": both(np.ones(len(rows), bool)),
        "overall_fits_hbm": both(ev["fits"]),
        "overall_le8_users": both(np.asarray([r.concurrency <= 8 for r in rows])),
        "rows_not_fitting_hbm": int(np.sum(~ev["fits"])),
        "sol_violations": [
            {
                "id": rows[i].id,
                "family": rows[i].family,
                "measured_over_sol": round(float(meas[i] / sol[i]), 3),
                "reason": _why(rows[i], ev, i),
            }
            for i in np.nonzero(viol)[0]
        ],
        "worst": worst,
    }


def _why(r, ev: dict, i: int) -> str:
    """A one-line reason a row is measured below SOL (which bound it breaks)."""
    pre = max(ev["compute_s"][i], ev["weights_s"][i]) / ev["osl"][i]
    if ev["sol_step_s"][i] > ev["meas_s"][i]:
        return (
            f"the decode-step SOL alone ({ev['sol_step_s'][i] * 1e3:.3g} ms: the {r.recipe} "
            f"weights over {r.tp} GPUs read once at peak HBM bandwidth) exceeds the measured "
            f"{ev['meas_s'][i] * 1e3:.3g} ms: the run's precision, split or expert traffic "
            "is not what the source labels"
        )
    if pre > ev["meas_s"][i] - ev["sol_step_s"][i]:
        return "prefill bound at peak does not fit in the measured time (prefill not as assumed)"
    return "sum of both bounds exceeds the measurement"
