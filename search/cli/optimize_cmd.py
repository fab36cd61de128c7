"""``tpsopt optimize``: the main job — best split, latency targets, sensitivities."""

from __future__ import annotations

from search.cli import report
from search.cli.common import add_json_arg, add_scenario_args, scenario_dict, scenario_from_args
from search.errors import check_number


def register(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="the main job: best split, latency needed for 2x/5x UTPS, top sensitivities",
        description="Find the best parallel split for a model on a system, the per-hop "
        "latency (all tiers scaled) needed for 2x and 5x its single-user tokens/s, and which "
        "hardware numbers matter most. With no arguments: Kimi-K2.5 on the default system.",
    )
    add_scenario_args(p)
    p.add_argument("--chips-max", default=None, help="chip budget (default: the system's chips)")
    p.add_argument("--objective", default="utps", choices=("utps", "system_tps", "tps_per_chip"))
    p.add_argument(
        "--multiples", default="2,5", help="UTPS multiples to solve latency for (default 2,5)"
    )
    p.add_argument("--top", default="8", help="sensitivities to show (default 8)")
    add_json_arg(p)
    p.set_defaults(func=run)


def _multiples(text: str) -> tuple[float, ...]:
    vals = [v for v in text.split(",") if v.strip()]
    if not vals:
        raise ValueError
    return tuple(check_number("--multiples", v, 0, 1e6, lo_open=True) for v in vals)


def run(a) -> int:
    from search.errors import UserError
    from search.jit import enable_cache
    from search.optimize import main_job

    enable_cache()
    try:
        mult = _multiples(a.multiples)
    except ValueError:
        raise UserError(f"--multiples {a.multiples!r}: give comma-separated numbers > 0") from None
    top = int(check_number("--top", a.top, 0, 1000, integer=True))
    chips_max = (
        check_number("--chips-max", a.chips_max, 1, 1e9, integer=True) if a.chips_max else None
    )
    sc = scenario_from_args(a)
    con = report.console(a.json)
    with con.status("optimizing", spinner="dots") as st:
        out = main_job(sc, chips_max, a.objective, mult, top, progress=lambda m: st.update(m))
    if a.json:
        print(report.dumps({"scenario": scenario_dict(sc), **out}))
        return 0
    print_main_job(con, sc, out)
    return 0


def print_main_job(con, sc, out: dict) -> None:
    from rich.table import Table

    d, pd = out["result"], out["parallelism"]
    title = (
        f"{sc.model_name} on {sc.system_name} ({sc.precision_name}, "
        f"{sc.mode_name.upper()}): best split, {out['method']}"
    )
    con.print(report.summary_table(d, pd, title=title))
    con.print(report.breakdown_table(d))
    t = Table(
        title="Latency needed (every per-hop latency and per-step overhead scaled; "
        "split re-optimised)",
        title_justify="left",
    )
    for c in ("target", "UTPS", "status", "latency factor", "per-hop + overhead", "split"):
        t.add_column(c, justify="right" if c in ("UTPS", "latency factor") else "left")
    reasons = []
    for ans in out["targets"]:
        if ans["status"] == "reachable":
            vals = "; ".join(
                f"{tier} {report.fmt_time(v['hop_latency_s'])} + {report.fmt_time(v['overhead_s'])}"
                for tier, v in ans["values"].items()
                if v["hop_latency_s"] or v["overhead_s"]
            )
            fac = f"×{ans['factor']:.3g} ({1 / ans['factor']:.3g}x lower)"
            split = " ".join(f"{k}={v}" for k, v in ans["split"].items() if v != 1)
        else:
            vals, fac, split = "-", "-", "-"
            if ans["why"]:
                reasons.append(f"{ans['multiple']:g}x: {ans['why']}")
        t.add_row(
            f"{ans['multiple']:g}x",
            report.fmt_rate(ans["target_utps"]),
            ans["status"],
            fac,
            vals,
            split,
        )
    con.print(t)
    ceiling = out["zero_latency_utps"]
    con.print(
        f"With zero interconnect latency the best split reaches {report.fmt_rate(ceiling)} "
        f"({ceiling / d['utps']:.3g}x today)."
    )
    for r in reasons:
        con.print(f"  unreachable {r}")
    s = Table(title="Sensitivities at the best split: d log UTPS / d log x", title_justify="left")
    s.add_column("hardware number")
    s.add_column("value", justify="right")
    s.add_column("elasticity", justify="right")
    for e in out["sensitivities"]:
        s.add_row(
            e["name"],
            report.fmt_si(e["value"], report.unit_of(e["name"])),
            f"{e['elasticity']:+.3f}",
        )
    con.print(s)
    con.print(f"[dim]{out['splits']} valid splits; {out['seconds']:.1f} s[/dim]")
