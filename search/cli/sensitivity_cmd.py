"""``tpsopt sensitivity``: which hardware number is worth improving (elasticities)."""

from __future__ import annotations

from search.cli import report
from search.cli.common import (
    add_degree_args,
    add_json_arg,
    add_scenario_args,
    scenario_dict,
    scenario_from_args,
)
from search.errors import check_number


def register(sub) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="elasticities d log UTPS / d log x of every hardware number, ranked",
        description="Elasticities of single-user tokens/s to every hardware number at the "
        "best split (or the split given by the degree flags), from jax.grad in float64.",
    )
    add_scenario_args(p)
    add_degree_args(p)
    p.add_argument("--chips-max", default=None, help="chip budget for the best split")
    p.add_argument("--top", default="20", help="rows to show (default 20)")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(a) -> int:
    from costmodel.specs import Parallelism
    from search.cli.common import parallelism_from_args
    from search.jit import enable_cache
    from search.optimize import exhaustive_best, split_table
    from search.sensitivity import elasticities

    enable_cache()
    top = int(check_number("--top", a.top, 1, 10000, integer=True))
    sc = scenario_from_args(a)
    given = any(getattr(a, k) for k in ("tp", "ep", "pp", "attn_dp", "kvp", "moe_tp"))
    if given:
        par = parallelism_from_args(sc, a)
    else:
        cm = check_number("--chips-max", a.chips_max, 1, 1e9, integer=True) if a.chips_max else None
        table = split_table(sc, cm)
        i, _ = exhaustive_best(sc, table)
        par = Parallelism(*(float(v) for v in table[i]))
    with report.console(True).status("differentiating"):
        el = elasticities(sc, par)[:top]
    pd = report.parallelism_dict(par)
    if a.json:
        print(
            report.dumps(
                {
                    "scenario": scenario_dict(sc),
                    "parallelism": pd,
                    "sensitivities": [e.__dict__ for e in el],
                }
            )
        )
        return 0
    from rich.table import Table

    con = report.console()
    split = " ".join(f"{k}={v}" for k, v in pd.items() if v != 1) or "single chip"
    t = Table(
        title=f"{sc.model_name} on {sc.system_name}, split {split}: d log UTPS / d log x",
        title_justify="left",
    )
    t.add_column("hardware number")
    t.add_column("value", justify="right")
    t.add_column("elasticity", justify="right")
    for e in el:
        t.add_row(e.name, f"{e.value:.4g}", f"{e.elasticity:+.4f}")
    con.print(t)
    return 0
