"""Printing results: JSON, human units, rich tables (the front end's one place for it).

Everything that prints goes through here so that units, rounding and the JSON schema stay
the same across commands. ``--json`` output is plain ``json.dumps`` of the dicts of
:mod:`search.results`.
"""

from __future__ import annotations

import json
import math
import sys

_FROM_RESULTS = ("BREAKDOWN", "parallelism_dict", "result_dict")


def __getattr__(name: str):
    """``BREAKDOWN``, ``parallelism_dict``, ``result_dict`` of :mod:`search.results`,
    imported on first use (it imports JAX; ``tpsopt --help`` must not)."""
    if name in _FROM_RESULTS:
        import search.results

        return getattr(search.results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dumps(obj) -> str:
    """JSON with non-finite floats as null (valid JSON for every consumer)."""

    np = sys.modules.get("numpy")  # no NumPy loaded: no NumPy scalars to convert

    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if np is not None and isinstance(o, np.generic):
            return clean(o.item())
        return o

    return json.dumps(clean(obj), indent=2, sort_keys=False)


def fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "inf"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(s) >= f or unit == "ns":
            return f"{s / f:.3g} {unit}"
    return f"{s:.3g} s"


def fmt_bytes(b: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= f:
            return f"{b / f:.3g} {unit}"
    return f"{b:.3g} B"


def fmt_rate(x: float, unit: str = "tok/s") -> str:
    return f"{x:,.1f} {unit}" if abs(x) < 1e6 else f"{x:.3g} {unit}"


def fmt_mape(x: float | None) -> str:
    """A mean absolute percentage error (``None``: no rows) as ``"12.3%"``."""
    return "-" if x is None else f"{x:.1f}%"


def fmt_si(x: float, unit: str) -> str:
    """Engineering notation with an SI prefix: 3.35e12 B/s → '3.35 TB/s'."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g} {unit}"
    for p, f in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)):
        if abs(x) >= f:
            return f"{x / f:.3g} {p}{unit}"
    for p, f in (("m", 1e-3), ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if abs(x) >= f:
            return f"{x / f:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def unit_of(name: str) -> str:
    """SI unit of a field from its name suffix (``_bytes_per_s`` → B/s, ``_s`` → s, …)."""
    for suffix, unit in (
        ("_bytes_per_s", "B/s"),
        ("_flops_per_s", "FLOP/s"),
        ("_per_s", "/s"),
        ("_j_per_byte", "J/B"),
        ("_j_per_flop", "J/FLOP"),
        ("_bytes", "B"),
        ("_s", "s"),
        ("_w", "W"),
        ("latency_scale", "×"),
    ):
        if name.endswith(suffix) or f"{suffix}_" in name:
            return unit
    return ""


def console(json_mode: bool = False):
    """A rich console on stdout (plain when piped), or stderr when JSON goes to stdout."""
    from rich.console import Console

    return Console(file=sys.stderr if json_mode else sys.stdout, highlight=False)


def breakdown_table(d: dict, title: str = "Time per step"):
    """A rich table of the breakdown (seconds and share of the step)."""
    from rich.table import Table

    bd = d["breakdown_s"]
    total = sum(bd.values()) or 1.0
    t = Table(title=title, title_justify="left")
    t.add_column("term")
    t.add_column("time", justify="right")
    t.add_column("share", justify="right")
    from search.results import BREAKDOWN

    for k in BREAKDOWN:
        t.add_row(k.replace("_", " "), fmt_time(bd[k]), f"{100 * bd[k] / total:5.1f} %")
    t.add_row("[b]step[/b]", f"[b]{fmt_time(total)}[/b]", "100.0 %")
    return t


def summary_table(d: dict, par: dict, title: str = "Result"):
    """Key outputs of one evaluation."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    split = " ".join(f"{k}={v}" for k, v in par.items() if v != 1) or "single chip"
    t.add_row("split", split)
    t.add_row("chips", f"{d['chips']:.0f}")
    t.add_row("user tokens/s (UTPS)", fmt_rate(d["utps"]))
    t.add_row("TPOT", fmt_time(d["tpot_s"]))
    t.add_row("tokens per step", f"{d['tokens_per_step']:.3g}")
    t.add_row("system tokens/s", fmt_rate(d["system_tps"]))
    t.add_row("tokens/s per chip", fmt_rate(d["tps_per_chip"]))
    t.add_row(
        "memory per chip",
        f"{fmt_bytes(d['memory_per_chip_bytes'])} of {fmt_bytes(d['capacity_per_chip_bytes'])}",
    )
    t.add_row("collectives per step", f"{d['collectives_per_step']:.0f}")
    if d["energy_j_per_token"] > 0:
        t.add_row("energy per token", fmt_si(d["energy_j_per_token"], "J"))
    t.add_row("fits", "yes" if d["fits"] else f"[red]no: {d['reason']}[/red]")
    return t
