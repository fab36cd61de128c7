"""``tpsopt eval``: evaluate one configuration (or a file of them) with the cost model."""

from __future__ import annotations

from search.cli import report
from search.cli.common import (
    add_degree_args,
    add_json_arg,
    add_scenario_args,
    parallelism_from_args,
    scenario_dict,
    scenario_from_args,
)


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate one configuration: UTPS, TPOT, breakdown, memory, feasibility",
        description="Evaluate one decode configuration with the cost model. Missing "
        "parallel degrees take a sensible default for the model and system.",
    )
    add_scenario_args(p)
    add_degree_args(p)
    p.add_argument("--cases", default=None, help="CSV file of configurations (one per row)")
    p.add_argument("--out", default=None, help="with --cases: write the results CSV here")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(a) -> int:
    if a.cases:
        from search.cli.cases import run_cases  # batch evaluation (fidelity issue)

        return run_cases(a)
    from search.defaults import eval_first  # no compilation: the jaxpr run by NumPy

    sc = scenario_from_args(a)
    par = parallelism_from_args(sc, a)
    r = eval_first(sc, par)
    d = report.result_dict(r)
    if sc.interval:  # 80 % band of the calibrated mode (leave-one-model-out residuals)
        import math

        d["tpot_s_low"] = d["tpot_s"] * math.exp(sc.interval[0])
        d["tpot_s_high"] = d["tpot_s"] * math.exp(sc.interval[1])
    pd = report.parallelism_dict(par)
    if a.json:
        print(report.dumps({"scenario": scenario_dict(sc), "parallelism": pd, "result": d}))
        return 0
    con = report.console()
    title = f"{sc.model_name} on {sc.system_name} ({sc.precision_name}, {sc.mode_name.upper()})"
    con.print(report.summary_table(d, pd, title=title))
    con.print(report.breakdown_table(d))
    return 0
