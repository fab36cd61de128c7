"""Results as plain data: degrees as ints and a :class:`DecodeResult` as a JSON-ready dict.

The engine's searches return these dicts, so that every command and script sees the same
schema; printing them (JSON, tables, units) is the front end's job
(:mod:`search.cli.report`).
"""

from __future__ import annotations

import jax
import numpy as np

from costmodel.decode import Breakdown, DecodeResult
from costmodel.feasibility import explain
from costmodel.specs import DEGREES, Parallelism

BREAKDOWN = tuple(Breakdown.__dataclass_fields__)
"""Terms of the step-time breakdown, in :class:`~costmodel.decode.Breakdown` order."""


def _f(x) -> float:
    return float(np.asarray(x))


def parallelism_dict(par: Parallelism, i=None) -> dict:
    """Degrees as ints (``i`` selects one row of a stacked record)."""
    out = {}
    for k in DEGREES:
        v = np.asarray(getattr(par, k))
        v = v if i is None else v[i]
        out[k] = int(round(float(v)))
    return out


def result_dict(r: DecodeResult, i=None) -> dict:
    """A :class:`DecodeResult` (or row ``i`` of a stacked one) as a JSON-ready dict."""
    if i is not None:
        r = jax.tree.map(lambda x: np.asarray(x)[i], r)
    out = {}
    for k in DecodeResult.__dataclass_fields__:
        if k == "breakdown_s":
            continue
        v = getattr(r, k)
        if k == "fits":
            out[k] = bool(np.asarray(v))
        elif k == "reason":
            out[k] = explain(v)
        else:
            out[k] = _f(v)
    out["breakdown_s"] = {k: _f(getattr(r.breakdown_s, k)) for k in BREAKDOWN}
    return out
