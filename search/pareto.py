"""Pareto fronts of grid results (host side, on the per-group winners).

The engine keeps, per (composition group, batch value), the candidate with the highest
UTPS. That set contains both fronts exactly:

* **UTPS vs tokens/s per chip** (both maximised): tokens/s per chip is
  ``batch·UTPS/chips``, so within one (chips, batch) group the highest UTPS also has the
  highest tokens/s per chip and dominates the rest of the group.
* **UTPS vs chips** (UTPS maximised, chips minimised): the best UTPS per chip count is
  the best over its groups.

Rows are the grid's result rows (``row["result"]["utps"]`` etc.).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def _get(name: str) -> Callable[[dict], float]:
    return lambda row: float(row["result"][name])


def front(rows: Sequence[dict], x: Callable, y: Callable) -> list[dict]:
    """Rows not dominated when minimising ``x(row)`` and maximising ``y(row)``, by ``x``
    ascending (``y`` ascends along the front); to maximise both, pass ``x = −value``. Of
    equal points the first (lowest ``row["index"]``) is kept.

    >>> pts = [(1, 1), (2, 3), (2, 2), (3, 3)]
    >>> rows = [{"index": i, "x": x, "y": y} for i, (x, y) in enumerate(pts)]
    >>> [r["index"] for r in front(rows, lambda r: r["x"], lambda r: r["y"])]
    [0, 1]
    """
    pts = sorted(rows, key=lambda r: (x(r), -y(r), r["index"]))
    out, best = [], -float("inf")
    for r in pts:
        if y(r) > best:
            out.append(r)
            best = y(r)
    return out


def fronts(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Both fronts: ``utps_vs_tps_per_chip`` and ``utps_vs_chips``."""
    utps, tpc, chips = _get("utps"), _get("tps_per_chip"), _get("chips")
    return {
        "utps_vs_tps_per_chip": front(rows, lambda r: -utps(r), tpc),
        "utps_vs_chips": front(rows, chips, utps),
    }
