"""``tpsopt target``: the latency, bandwidth or chip count needed for a UTPS target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.cli import report
from search.cli.common import (
    add_degree_args,
    add_json_arg,
    add_scenario_args,
    scenario_dict,
    scenario_from_args,
)
from search.errors import UserError, check_number

if TYPE_CHECKING:
    import numpy as np


def register(sub) -> None:
    p = sub.add_parser(
        "target",
        help="the per-hop latency, bandwidth or chip count needed to reach a UTPS target",
        description="Solve backwards from single-user tokens/s targets: the factor on every "
        "per-hop latency and per-step overhead (or on link bandwidth, or the chip count) "
        "needed, with the best split re-optimised at each point (or a fixed split when "
        "degree flags are given). Unreachable targets say which term alone exceeds the budget.",
    )
    add_scenario_args(p)
    add_degree_args(p)
    p.add_argument("--utps", required=True, help="target(s): X, X,Y,... or LO:HI:N (log-spaced)")
    p.add_argument("--knob", default="latency", choices=("latency", "bandwidth", "chips"))
    p.add_argument("--tier", default=None, help="only this tier's latency/bandwidth (default: all)")
    p.add_argument("--chips-max", default=None, help="chip budget (default: the system's chips)")
    p.add_argument("--plot", default=None, help="write the required-knob curve (PNG/SVG)")
    add_json_arg(p)
    p.set_defaults(func=run)


def parse_targets(text: str) -> np.ndarray:
    """``X``, ``X,Y,...`` or ``LO:HI:N`` (log-spaced) → array of targets."""
    import numpy as np

    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            lo = check_number("--utps", lo, 0, 1e9, lo_open=True)
            hi = check_number("--utps", hi, lo, 1e9)
            n = int(check_number("--utps", n, 1, 10000, integer=True))
            return np.geomspace(lo, hi, n)
        vals = [
            check_number("--utps", v, 0, 1e9, lo_open=True) for v in text.split(",") if v.strip()
        ]
    except ValueError:
        vals = []
    if not vals:
        raise UserError(f"--utps {text!r}: give X, X,Y,... or LO:HI:N with values in (0, 1e9]")
    return np.asarray(vals, dtype=float)


def run(a) -> int:
    """Run ``tpsopt target``.

    *Length:* the command's sequence (check flags, enumerate splits, solve, print) reads
    top to bottom.
    """
    from search.jit import enable_cache
    from search.optimize import as_parallelism, split_table
    from search.target import solve_chips, solve_targets

    enable_cache()
    if a.plot:
        from search.cli.io import check_plot_path

        check_plot_path(a.plot)
    targets = parse_targets(a.utps)
    sc = scenario_from_args(a)
    if a.tier is not None and a.tier not in [t.name for t in sc.system.tiers]:
        names = ", ".join(t.name for t in sc.system.tiers)
        raise UserError(f"--tier {a.tier!r}: {sc.system_name} has tiers {names}")
    cm = check_number("--chips-max", a.chips_max, 1, 1e9, integer=True) if a.chips_max else None
    given = any(getattr(a, k) for k in ("tp", "ep", "pp", "attn_dp", "kvp", "moe_tp"))
    if given:
        from search.cli.common import parallelism_from_args
        from search.target import single_split

        splits = single_split(parallelism_from_args(sc, a))
        table = None
    else:
        table = split_table(sc, cm)
        splits = as_parallelism(table)
    if a.knob == "chips" and table is None:
        raise UserError("--knob chips searches over splits; drop the degree flags")
    with report.console(True).status(f"solving {len(targets)} target(s) for {a.knob}"):
        if a.knob == "chips":
            answers = solve_chips(sc, table, targets)
        else:
            answers = [x.as_dict() for x in solve_targets(sc, splits, targets, a.knob, a.tier)]
    if a.plot:
        from search.cli.plots import plot_targets

        plot_targets(a.plot, sc, answers, a.knob)
    if a.json:
        print(report.dumps({"scenario": scenario_dict(sc), "answers": answers}))
        return 0
    from rich.table import Table

    con = report.console()
    t = Table(
        title=f"{sc.model_name} on {sc.system_name}: {a.knob} needed"
        + (f" (tier {a.tier})" if a.tier else ""),
        title_justify="left",
    )
    for c in ("target UTPS", "status", "answer", "UTPS there", "split", "why"):
        t.add_column(c)
    for x in answers:
        if a.knob == "chips":
            ans = f"{x['chips']:g} chips" if x["status"] == "reachable" else "-"
        elif x["status"] == "reachable":
            ans = f"×{x['factor']:.4g}"
        else:
            ans = "-"
        split = " ".join(f"{k}={v}" for k, v in x.get("split", {}).items() if v != 1)
        t.add_row(
            report.fmt_rate(x["target_utps"]),
            x["status"],
            ans,
            report.fmt_rate(x["utps_at_answer"]) if x["status"] == "reachable" else "-",
            split,
            x.get("why", ""),
        )
    con.print(t)
    return 0
