r"""The cost model's small-message collective latencies against published measurements.

Each row of ``hardware_db/data/collective_measurements.csv`` is evaluated with
:func:`costmodel.collectives.collective` on its database system, in SOL mode and in
calibrated mode (the system's calibrated family, ``hardware_db.calibration.efficiency_for``:
``collective_overhead_s`` is added once per collective), and compared with the measured
latency: ``error = (model − measured) / measured``. SOL should sit below every
measurement (hardware terms only); calibrated mode should land near measurements that,
like the decode steps it was fitted on, include launch and synchronisation overheads.
"""

from __future__ import annotations

import jax

import hardware_db as db
from costmodel.collectives import collective
from costmodel.specs import SOL
from hardware_db.calibration import efficiency_for
from hardware_db.collective_measurements import load_collective_measurements


def _time(kind, msg, ranks, stride, system, eff) -> float:
    with jax.enable_x64(True):
        lat, band, _ = collective(kind, float(msg), float(ranks), float(stride), system, eff)
        return float(lat) + float(band)


def collective_checks(calibration_path=None, path=None) -> list[dict]:
    """One dict per measured collective: measured, SOL and calibrated seconds, errors (%)."""
    out = []
    for c in load_collective_measurements(path):
        system = db.load_system(c.system, max_chips=c.chips)
        eff, mode, _ = efficiency_for(c.system, c.software or None, calibration_path)
        sol = _time(c.kind, c.msg_bytes, c.ranks, c.stride, system, SOL)
        calib = _time(c.kind, c.msg_bytes, c.ranks, c.stride, system, eff)
        out.append(
            {
                "id": c.id,
                "operation": c.operation,
                "system": c.system,
                "ranks": int(c.ranks),
                "msg_bytes": int(c.msg_bytes),
                "cuda_graph": c.cuda_graph,
                "measured_s": c.latency_s,
                "sol_s": sol,
                "calibrated_s": calib,
                "calibration": mode,
                "err_sol_pct": (sol - c.latency_s) / c.latency_s * 100,
                "err_calibrated_pct": (calib - c.latency_s) / c.latency_s * 100,
                "sol_lower_bound": sol <= c.latency_s,
                "notes": c.notes,
            }
        )
    return out
