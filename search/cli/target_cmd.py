"""``tpsopt target``: the latency, bandwidth or chip count needed for a UTPS target."""

from __future__ import annotations

import numpy as np

from search import report
from search.cli.common import (
    add_degree_args,
    add_json_arg,
    add_scenario_args,
    scenario_dict,
    scenario_from_args,
)
from search.errors import UserError
from search.jit import enable_cache, jit_fast_compile
from search.scenario import check_range


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
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            lo = check_range("--utps", lo, 0, 1e9, lo_open=True)
            hi = check_range("--utps", hi, lo, 1e9)
            n = int(check_range("--utps", n, 1, 10000, integer=True))
            return np.geomspace(lo, hi, n)
        vals = [
            check_range("--utps", v, 0, 1e9, lo_open=True) for v in text.split(",") if v.strip()
        ]
    except ValueError:
        vals = []
    if not vals:
        raise UserError(f"--utps {text!r}: give X, X,Y,... or LO:HI:N with values in (0, 1e9]")
    return np.asarray(vals, dtype=float)


def solve_chips(sc, table, targets):
    """Minimal chips over valid splits reaching each target (exact, from one sweep)."""
    import jax
    import jax.numpy as jnp

    from costmodel.decode import decode_step
    from search.optimize import as_parallelism

    def one(par):
        r = decode_step(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)
        return jnp.where(r.fits, r.utps, 0.0), r.chips

    u, chips = (np.asarray(x) for x in jit_fast_compile(jax.vmap(one))(as_parallelism(table)))
    out = []
    for x in targets:
        ok = u >= x
        if ok.any():
            j = int(np.argmin(np.where(ok, chips, np.inf)))
            out.append(
                {
                    "target_utps": float(x),
                    "knob": "chips",
                    "status": "reachable",
                    "chips": float(chips[j]),
                    "utps_at_answer": float(u[j]),
                    "split": report.parallelism_dict(as_parallelism(table[j : j + 1]), 0),
                }
            )
        else:
            out.append(
                {
                    "target_utps": float(x),
                    "knob": "chips",
                    "status": "unreachable",
                    "chips": float("nan"),
                    "utps_at_answer": float("nan"),
                    "split": {},
                    "why": f"the best split with up to {chips.max():g} chips "
                    f"reaches {u.max():.4g} tok/s",
                }
            )
    return out


def run(a) -> int:
    from search.optimize import as_parallelism, split_table
    from search.target import solve_targets

    enable_cache()
    if a.plot:
        from search.io import check_plot_path

        check_plot_path(a.plot)
    targets = parse_targets(a.utps)
    sc = scenario_from_args(a)
    if a.tier is not None and a.tier not in [t.name for t in sc.system.tiers]:
        names = ", ".join(t.name for t in sc.system.tiers)
        raise UserError(f"--tier {a.tier!r}: {sc.system_name} has tiers {names}")
    cm = check_range("--chips-max", a.chips_max, 1, 1e9, integer=True) if a.chips_max else None
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


def plot_targets(path, sc, answers, knob):
    """Required factor (or chips) against target UTPS, log-log; written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from search.io import atomic_write

    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix not in ("png", "svg", "pdf"):
        raise UserError(f"--plot {path}: use a .png, .svg or .pdf file name")
    x = [a["target_utps"] for a in answers if a["status"] == "reachable"]
    y = [
        a["chips"] if knob == "chips" else a["factor"]
        for a in answers
        if a["status"] == "reachable"
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(x, y, "o-", label="reachable")
    bad = [a["target_utps"] for a in answers if a["status"] == "unreachable"]
    if bad:
        ax.axvline(min(bad), color="C3", ls=":", label=f"unreachable from {min(bad):,.0f} tok/s")
        ax.legend(fontsize=8)
    if knob == "chips":
        from matplotlib.ticker import ScalarFormatter

        ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("target single-user tokens/s (tok/s)")
    label = {
        "latency": "required latency factor (× today's per-hop latency and overhead)",
        "bandwidth": "required link-bandwidth factor (×)",
        "chips": "chips needed",
    }[knob]
    ax.set_ylabel(label)
    ax.set_title(f"{sc.model_name} on {sc.system_name}")
    ax.grid(True, which="both", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix, bbox_inches="tight", dpi=120)
    plt.close(fig)
    atomic_write(path, buf.getvalue(), flag="--plot")
