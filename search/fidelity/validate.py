r"""Validation: predicted vs measured decode step time, per row and per family.

For every usable row of ``hardware_db/data/measurements.csv`` (grades A and B are fitted)
:func:`validation_report` computes the step time

* in **SOL** mode (efficiencies 1, no overheads — the speed-of-light bound; it must not
  exceed the measurement, exceptions are listed with their cause),
* **calibrated in-sample** (the fit on every row, prior scale λ from
  ``calibration.toml``),
* **leave-one-row-out** (the fit without that row) and **leave-one-family-out** (the fit
  without any row of its ``chip/software`` family: the row is predicted from its hardware
  and software levels, or the default family),

with the signed error ``(pred − meas)/meas`` and the mean absolute percentage error
(MAPE) per family and overall. All ``1 + N + F`` fits run at once (vmapped L-BFGS,
:mod:`search.fidelity.map_fit`). It also re-checks that the stored calibration matches a fresh
fit (``stale`` if the data or the code changed since ``calibration.toml`` was written).
"""

from __future__ import annotations

import math

import numpy as np

from hardware_db.calibration import PARAMS, REGENERATE, Calibration, load_calibration
from search.fidelity.calibrate import summarise
from search.fidelity.collective_checks import collective_checks
from search.fidelity.leave_out import leave_out
from search.fidelity.problem import build_problem, fit_rows, sol_log_step


def _err(pred, meas):
    return (np.exp(pred) - np.exp(meas)) / np.exp(meas) * 100.0


def _mape(err) -> float | None:
    err = np.asarray(err)
    return float(np.mean(np.abs(err))) if err.size else None


def sol_exception_cause(row, sol_s: float) -> str:
    """Why a row's SOL time exceeds its measurement (a spec or data problem to fix)."""
    return (
        f"SOL {sol_s * 1e3:.3g} ms > measured {row['measured_s'] * 1e3:.3g} ms: a peak in the "
        f"database ({row['system']}) is too low, the precision recipe ({row['precision']}) "
        "stores too many bytes, or the measurement's configuration differs from the row"
    )


def validation_report(grades=("A", "B"), path=None, calibration_path=None) -> dict:
    """The full validation as a JSON-ready dict (see module docstring).

    *Length:* Mostly the assembly of one JSON document, field by field.

    Args:
      grades: rows reported and scored (fits always use every usable A/B row).
      path: measurements CSV (default: the packaged one).
      calibration_path: calibration TOML (default: the packaged one).
    """
    cal = load_calibration(calibration_path)
    scale = float(cal.meta.get("prior_scale", 1.0))
    rows = fit_rows(path=path)
    pb = build_problem(rows)
    lo = leave_out(pb, scale)
    sol = sol_log_step(pb)
    fresh = summarise(pb, lo.params, {})
    stale = _stale(cal, fresh)

    by_id = {m.id: m for m in rows}
    out_rows = []
    for i, rid in enumerate(pb.ids):
        m = by_id[rid]
        if m.grade not in grades:
            continue
        meas = pb.log_t[i]
        r = {
            "id": rid,
            "family": pb.families[i],
            "grade": m.grade,
            "model": m.model,
            "system": m.system,
            "precision": m.precision,
            "chips": int(m.chips),
            "batch": int(m.batch),
            "mtp_depth": int(m.mtp_depth),
            "measured_s": float(math.exp(meas)),
            "sol_s": float(math.exp(sol[i])),
            "calibrated_s": float(math.exp(lo.full[i])),
            "loo_row_s": float(math.exp(lo.row[i])),
            "loo_family_s": float(math.exp(lo.family[i])),
        }
        for k, p in (("sol", sol[i]), ("in", lo.full[i]), ("loo", lo.row[i])):
            r[f"err_{k}_pct"] = float(_err(p, meas))
        r["err_lofo_pct"] = float(_err(lo.family[i], meas))
        r["sol_lower_bound"] = bool(sol[i] <= meas)
        out_rows.append(r)

    families = []
    for f in sorted({r["family"] for r in out_rows}):
        rs = [r for r in out_rows if r["family"] == f]
        families.append(_scores(f, rs))
    overall = {"selected": _scores("all selected rows", out_rows)}
    a_rows = [r for r in out_rows if r["grade"] == "A"]
    if a_rows:
        overall["grade_A"] = _scores("grade A", a_rows)
    exceptions = [
        {"id": r["id"], "family": r["family"], "cause": sol_exception_cause(r, r["sol_s"])}
        for r in out_rows
        if not r["sol_lower_bound"]
    ]
    return {
        "grades": list(grades),
        "calibration": {
            "prior_scale": scale,
            "fit_date": cal.meta.get("fit_date"),
            "command": REGENERATE,
            "stale": stale,
            "rows_fitted": len(pb.ids),
        },
        "rows": out_rows,
        "families": families,
        "overall": overall,
        "sol_exceptions": exceptions,
        "collectives": collective_checks(calibration_path),
    }


def _scores(name: str, rs: list) -> dict:
    return {
        "name": name,
        "n": len(rs),
        "sol_mape": _mape([r["err_sol_pct"] for r in rs]),
        "in_sample_mape": _mape([r["err_in_pct"] for r in rs]),
        "loo_row_mape": _mape([r["err_loo_pct"] for r in rs]),
        "loo_family_mape": _mape([r["err_lofo_pct"] for r in rs]),
    }


def _stale(stored: Calibration, fresh: Calibration) -> str:
    """'' if the stored calibration matches the fresh fit (0.5 %), else what differs."""
    if set(stored.families) != set(fresh.families):
        return "families differ from the measurements; regenerate"
    for name, p in fresh.families.items():
        q = stored.families[name]
        for k in PARAMS:
            if abs(p[k] - q[k]) > 5e-3 * abs(q[k]):
                return f"{name}.{k}: stored {q[k]:.4g}, fresh fit {p[k]:.4g}; regenerate"
    return ""
