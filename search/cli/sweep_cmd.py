"""``tpsopt sweep``: UTPS and its breakdown against any spec field, best split each point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.cli import report
from search.cli.common import add_json_arg, add_scenario_args, scenario_dict, scenario_from_args
from search.errors import UserError, check_number

if TYPE_CHECKING:
    import numpy as np


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sweep any spec field (e.g. tiers.nvlink.hop_latency_s); best split at each point",
        description="Sweep one spec field over a range, re-optimising the parallel split at "
        "each point; print and plot UTPS and the time breakdown. PATH examples: "
        "tiers.nvlink.hop_latency_s, chip.hbm_bw_bytes_per_s, context, latency_scale, "
        "chips (the chip budget).",
    )
    add_scenario_args(p)
    p.add_argument("--param", required=True, help="the spec field to sweep (a path)")
    p.add_argument("--range", required=True, help="LO:HI[:N] (N points, default 9)")
    p.add_argument("--log", action="store_true", help="log-spaced points (and a log x axis)")
    p.add_argument("--chips-max", default=None, help="chip budget (default: the system's)")
    p.add_argument("--objective", default="utps", choices=("utps", "system_tps", "tps_per_chip"))
    p.add_argument("--plot", default=None, help="write UTPS and stacked breakdown (PNG/SVG)")
    add_json_arg(p)
    p.set_defaults(func=run)


def parse_range(text: str, log: bool) -> np.ndarray:
    import numpy as np

    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise UserError(f"--range {text!r}: expected LO:HI or LO:HI:N")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(
            f"--range {text!r}: LO and HI must be plain numbers in SI units (e.g. 1e-7 for 100 ns)"
        ) from None
    lo = check_number("--range", lo)
    hi = check_number("--range", hi)
    n = int(check_number("--range", parts[2], 1, 10000, integer=True)) if len(parts) == 3 else 9
    if hi < lo:
        raise UserError(f"--range {text!r}: HI must be ≥ LO")
    if log:
        if lo <= 0:
            raise UserError(f"--range {text!r}: --log needs LO > 0")
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def run(a) -> int:
    import numpy as np

    from search.cli.plots import plot_sweep
    from search.jit import enable_cache
    from search.param_sweep import sweep_param
    from search.paths import check_value, records_of, resolve_path

    enable_cache()
    if a.plot:
        from search.cli.io import check_plot_path

        check_plot_path(a.plot)
    values = parse_range(a.range, a.log)
    sc = scenario_from_args(a)
    path = a.param
    canon = (
        "system.max_chips" if path in ("chips", "max_chips") else resolve_path(records_of(sc), path)
    )
    try:
        values = np.array([check_value(canon, v, arg="--range") for v in values])
    except UserError:  # an integer field: round the points (log spacing gives fractions)
        values = np.unique(np.round(values))
        values = np.array([check_value(canon, v, arg="--range") for v in values])
    cm = check_number("--chips-max", a.chips_max, 1, 1e9, integer=True) if a.chips_max else None
    with report.console(True).status(f"sweeping {canon} over {len(values)} points"):
        out = sweep_param(sc, canon, values, cm, a.objective)
    if a.plot:
        plot_sweep(a.plot, sc, out, a.log)
    if a.json:
        print(report.dumps({"scenario": scenario_dict(sc), **out}))
        return 0
    from rich.table import Table

    con = report.console()
    t = Table(
        title=f"{sc.model_name} on {sc.system_name}: sweep of {out['path']}", title_justify="left"
    )
    for c in (out["path"], "UTPS", "TPOT", "comm share", "split"):
        t.add_column(c, justify="left" if c == "split" else "right")
    for v, r, p in zip(out["values"], out["results"], out["parallelism"], strict=True):
        if r is None:
            t.add_row(f"{v:.4g}", "-", "-", "-", "no feasible split")
            continue
        bd = r["breakdown_s"]
        comm = (bd["comm_latency"] + bd["comm_bandwidth"]) / max(r["step_time_s"], 1e-30)
        split = " ".join(f"{k}={x}" for k, x in p.items() if x != 1) or "single chip"
        t.add_row(
            f"{v:.4g}",
            report.fmt_rate(r["utps"]),
            report.fmt_time(r["tpot_s"]),
            f"{100 * comm:.0f} %",
            split,
        )
    con.print(t)
    if a.plot:
        con.print(f"[dim]plot written to {a.plot}[/dim]")
    return 0
