r"""Calibrated parameters as data: their parametrisation, the stored TOML, the lookup.

The calibrated mode's six numbers per hardware × software family (fields of
:class:`~costmodel.specs.Efficiency`, listed in :data:`PARAMS`) are fitted by
:mod:`search.fidelity.calibrate` and stored in ``hardware_db/data/calibration.toml``
(regenerate with ``tpsopt calibrate --write``). This module reads and writes that file
and answers "which parameters does this system and software get" (:func:`efficiency_for`).

**Parametrisation** (unconstrained vector θ of six entries, :func:`from_theta`)::

    η = f + (1 − f)·sigmoid(θ_η)        efficiencies bounded in (f, 1]; f = 0.2
                                        (0.02 for η_kv, see :data:`FLOORS`)
    o = exp(θ_o)                        overheads positive, log-space

**Lookup** (:func:`resolve_theta`): a fitted family → its θ; hardware and software both
seen but not together → ``θ_h + θ_s − θ_g`` (the hierarchy is additive in θ); only one
seen → that level; neither → the **default family** θ_g (the global level), and the
notes say which was used.

>>> theta = to_theta({k: 0.5 if k.endswith("_efficiency") else 1e-5 for k in PARAMS})
>>> round(values_of(theta)["kernel_overhead_s"], 12), round(values_of(theta)["mem_efficiency"], 9)
(1e-05, 0.5)
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.specs import SOL, Efficiency
from hardware_db import DbError
from hardware_db.loader import CALIBRATION_TOML, read_toml  # noqa: F401  (re-exported)
from hardware_db.measurements import hardware_of, software_slug

REGENERATE = "tpsopt calibrate --write"
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


def param_kind(name: str) -> str:
    """``"efficiency"`` (bounded in (floor, 1]) or ``"time"`` (positive seconds)."""
    return "efficiency" if name.endswith("_efficiency") else "time"


def to_theta(values: dict) -> np.ndarray:
    """θ ``[P]`` of a parameter dict (inverse of :func:`from_theta`)."""
    out = []
    for k in PARAMS:
        v = float(values[k])
        if param_kind(k) == "efficiency":
            lo = floor_of(k)
            p = (v - lo) / (1.0 - lo)
            p = min(max(p, 1e-9), 1 - 1e-9)
            out.append(math.log(p / (1 - p)))
        else:
            out.append(math.log(v))
    return np.asarray(out)


def from_theta(theta) -> dict:
    """Parameter values of θ (``[..., P]``): ``{name: array [...]}`` (traceable)."""
    out = {}
    for i, k in enumerate(PARAMS):
        t = theta[..., i]
        if param_kind(k) == "efficiency":
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
    """Plain-float parameter dict of one θ ``[P]`` (numpy, float64)."""
    t = np.asarray(theta, np.float64)
    out = {}
    for i, k in enumerate(PARAMS):
        if param_kind(k) == "efficiency":
            out[k] = float(floor_of(k) + (1 - floor_of(k)) / (1.0 + np.exp(-t[i])))
        else:
            out[k] = float(np.exp(t[i]))
    return out


class Calibration(NamedTuple):
    """Stored parameters (values, not θ) per level, with the rows they came from."""

    default: dict
    hardware: dict  # chip -> params (θ_g + a_h)
    software: dict  # software -> params (θ_g + b_s)
    families: dict  # "chip/software" -> params
    rows: dict  # level key ("default", "hardware.<chip>", …) -> tuple of row ids
    meta: dict


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
        f"# Generated by `{REGENERATE}`; do not edit by hand. See search/fidelity/ for the",
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
        raise DbError(f"{path}: {where_}: expected a table")
    out = {}
    for k in PARAMS:
        v = table.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise DbError(f"{path}: {where_}.{k}: expected a finite number, got {v!r}")
        if k.endswith("_efficiency") and not floor_of(k) <= v <= 1:
            raise DbError(f"{path}: {where_}.{k}: {v!r} outside [{floor_of(k)}, 1]")
        if k.endswith("_s") and not 0 < v < 1:
            raise DbError(f"{path}: {where_}.{k}: {v!r} s outside (0, 1) s")
        out[k] = float(v)
    return out


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> Calibration:
    del mtime_ns
    doc = read_toml(path)
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
        raise DbError(f"{p}: no calibration file; run `{REGENERATE}`")
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
    """``(Efficiency, mode_name, notes)`` for the calibrated mode on ``system_name``.

    ``software`` is a family slug or alias (``trtllm``, ``vllm``, …) or ``None``; an
    unknown one is a :class:`DbError` starting ``software: ``. Falls back as documented in
    the module docstring; the notes say which level was used.
    """
    cal = load_calibration(path)
    sw = None
    if software:
        try:
            sw = software_slug(software)
        except DbError as e:
            raise DbError(f"software: {e}") from None
    hw = hardware_of(system_name)
    theta, mode_name, note = resolve_theta(cal, hw, sw)
    eff = jax.tree.map(float, efficiency_of(jnp.asarray(theta)))
    return eff, mode_name, (note,)
