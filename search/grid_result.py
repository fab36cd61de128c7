"""The result of a grid search: best configurations, fronts, counts; dicts and DataFrames.

A *row* is one configuration, re-scored in float64::

    {"rank": 1, "index": 1234, "model": "kimi-k2.5", "system": "gb200-nvl72",
     "family": "TP+EP", "parallelism": {"attn_tp": 8, ...}, "axes": {"workload.batch": 1.0},
     "score": 512.3, "result": {"utps": ..., "breakdown_s": {...}, ...}}

``index`` is the candidate's position in its sub-grid (``sub_grid`` says which, when a
space has several); ``score`` is the objective as maximised (``tpot``/``energy`` are
negated).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def flat_row(row: dict) -> dict:
    """One row as a flat dict (CSV / DataFrame): degrees, axes and result fields as
    columns, breakdown terms as ``breakdown_<term>_s``."""
    out = {k: row[k] for k in ("rank", "index", "model", "system", "family", "score") if k in row}
    if "sub_grid" in row:
        out["sub_grid"] = row["sub_grid"]
    out.update(row["parallelism"])
    out.update(row["axes"])
    for k, v in row["result"].items():
        if k == "breakdown_s":
            out.update({f"breakdown_{t}_s": x for t, x in v.items()})
        else:
            out[k] = v
    return out


@dataclass
class GridResult:
    """What :func:`search.grid.grid` returns.

    Attributes:
      top: the best rows, best first (float64 values).
      pareto: ``{"utps_vs_tps_per_chip": rows, "utps_vs_chips": rows}`` or None.
      groups: the best row per (chips, composition, batch) group (for plots), or None.
      counts: ``{"evaluated", "feasible", "infeasible", "rejected": {reason: n}, ...}``.
      partial: True if the sweep stopped early (time limit, Ctrl-C); the other fields
        then describe the candidates evaluated so far.
      evaluated: candidates evaluated.
      total: candidates in the space.
      objective: the objective maximised.
      elapsed_s: wall time, compile included; ``rate`` is evaluated / sweep time.
    """

    top: list[dict]
    pareto: dict | None
    groups: list[dict] | None
    counts: dict
    partial: bool
    evaluated: int
    total: int
    objective: str
    elapsed_s: float
    rate: float
    info: dict = field(default_factory=dict)

    @property
    def best(self) -> dict | None:
        """The best row (None if no candidate is feasible)."""
        return self.top[0] if self.top else None

    def to_dicts(self) -> list[dict]:
        """The top rows as flat dicts (see :func:`flat_row`)."""
        return [flat_row(r) for r in self.top]

    def to_dataframe(self, which: str = "top"):
        """A pandas DataFrame of ``top``, ``groups`` or a front (``utps_vs_chips``,
        ``utps_vs_tps_per_chip``). pandas is imported lazily."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "GridResult.to_dataframe needs pandas: pip install pandas "
                "(or use GridResult.to_dicts())"
            ) from None
        if which == "top":
            rows = self.top
        elif which == "groups":
            rows = self.groups or []
        else:
            if not self.pareto or which not in self.pareto:
                raise ValueError(f"no {which!r} in this result (run with pareto=True)")
            rows = self.pareto[which]
        return pd.DataFrame([flat_row(r) for r in rows])

    def to_json_dict(self) -> dict:
        """Everything, as plain JSON-ready data."""
        return {
            "objective": self.objective,
            "partial": self.partial,
            "evaluated": self.evaluated,
            "total": self.total,
            "elapsed_s": self.elapsed_s,
            "candidates_per_s": self.rate,
            "counts": self.counts,
            "top": self.top,
            "pareto": self.pareto,
            "info": self.info,
        }
