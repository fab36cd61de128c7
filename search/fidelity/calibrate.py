"""Calibrated mode: fit the six numbers per hardware × software family and summarise them.

:func:`calibrate` tunes the prior scale λ by leave-out error, fits every usable row of
``hardware_db/data/measurements.csv`` (grades A and B) with the hierarchical MAP model
of :mod:`search.fidelity.map_fit`, and returns the :class:`~hardware_db.calibration.
Calibration` that ``tpsopt calibrate --write`` stores (:mod:`hardware_db.calibration`
reads it back and looks a family up). A family is ``"<chip>/<software>"``
(``b200/trtllm``, ``mi300x/vllm``, …).
"""

from __future__ import annotations

import datetime

import numpy as np

from hardware_db.calibration import REGENERATE, Calibration, values_of
from search.fidelity.leave_out import mape, tune_prior_scale
from search.fidelity.map_fit import ITERATIONS, PRIOR_SCALES
from search.fidelity.problem import GRADES_FIT, Problem, build_problem, fit_rows


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
        "L-BFGS on squared log step time; see search/fidelity/",
        "prior_scale": float(best),
        "leave_out_score_by_prior_scale": {f"{s:g}": round(v, 3) for s, v in scores.items()},
        "in_sample_mape": round(mape(outs[best].full, pb.log_t), 3),
        "loo_row_mape": round(mape(outs[best].row, pb.log_t), 3),
        "loo_family_mape": round(mape(outs[best].family, pb.log_t), 3),
        "iterations": iterations,
    }
    return summarise(pb, outs[best].params, meta)
