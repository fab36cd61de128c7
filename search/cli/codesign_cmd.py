"""``tpsopt codesign``: hardware numbers and the parallel split together, by gradient search.

Each ``--knob PATH=LO:HI[:N]`` frees one hardware number of the system: ``PATH`` is
``chip.<field>`` or ``tiers.<tier name or index>.<field>`` (``system.`` may prefix
either), ``LO:HI`` are factors of the database value (``0.1:1``: up to 10x lower), and
``N`` (optional, ≥ 2) the number of log-spaced levels the answer may take (without it
the value is continuous). ``--budget X`` bounds the improvement: the product over knobs
of each knob's improvement factor (x_new/x_db for numbers where higher is better, x_db/x_new
for seconds and energies) is at most X; a knob made worse earns nothing
(:func:`search.gradient.log_improvement_budget`). The search is
:func:`search.gradient.optimize`.
"""

from __future__ import annotations

import math

from search.cli.common import add_json_arg, add_scenario_args, scenario_dict, scenario_from_args
from search.errors import UserError, check_number


def register(sub) -> None:
    p = sub.add_parser(
        "codesign",
        help="co-design hardware numbers and the parallel split (gradient search)",
        description="Choose hardware numbers (--knob) and the parallel split together to "
        "maximise the objective, optionally under an improvement budget. Prints the chosen "
        "numbers beside the split, how far each knob moved, and which constraint binds.",
    )
    add_scenario_args(p)
    p.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="PATH=LO:HI[:N]",
        help="a hardware number to co-design: factors LO..HI of its database value, "
        "optionally N log-spaced levels (repeatable), e.g. tiers.nvlink.hop_latency_s=0.1:1:8",
    )
    p.add_argument(
        "--budget",
        default=None,
        help="product of the knobs' improvement factors ≤ X (e.g. 4: 4x lower latency, or "
        "2x lower latency and 2x the bandwidth); default: no budget",
    )
    p.add_argument("--chips-max", default=None, help="chip budget (default: the system's chips)")
    p.add_argument("--objective", default="utps", choices=("utps", "system_tps", "tps_per_chip"))
    p.add_argument("--starts", default=None, help="relaxed starts (default: the library's, 6)")
    p.add_argument(
        "--steps", default=None, help="Adam steps per start (default: the library's, 40)"
    )
    p.add_argument("--seed", default="0", help="seed of the starts (default 0)")
    add_json_arg(p)
    p.set_defaults(func=run)


def lower_is_better(path: str) -> bool:
    """Seconds (latencies, overheads) and energies improve downwards."""
    field = path.rsplit(".", 1)[-1]
    return (field.endswith("_s") and not field.endswith("_per_s")) or "energy" in field


def parse_knob(text: str, system):
    """``PATH=LO:HI[:N]`` → ``(Knob, database value)`` (one-line UserError otherwise)."""
    import numpy as np

    from search.gradient import Knob
    from search.paths import set_system_path

    path, sep, rng = text.partition("=")
    parts = rng.split(":")
    if not sep or len(parts) not in (2, 3):
        raise UserError(f"--knob {text!r}: expected PATH=LO:HI or PATH=LO:HI:N")
    path = path.strip().removeprefix("system.")
    bits = path.split(".")
    if len(bits) == 3 and bits[0] == "tiers":
        if bits[1] == "*":
            raise UserError(f"--knob {text!r}: name one tier ({_tiers(system)})")
        if bits[1].isdigit() and int(bits[1]) < len(system.tiers):
            bits[1] = system.tiers[int(bits[1])].name
        path = ".".join(bits)
    set_system_path(system, path, 1.0)  # validates the path (one-line UserError)
    if bits[0] == "chip":
        db_value = float(getattr(system.chip, bits[1]))
    else:
        db_value = float(getattr(next(t for t in system.tiers if t.name == bits[1]), bits[2]))
    if not (db_value > 0 and math.isfinite(db_value)):
        raise UserError(f"--knob {text!r}: database value {db_value:g} is not > 0")
    lo = check_number(f"--knob {path} LO", parts[0], 0, 1e9, lo_open=True)
    hi = check_number(f"--knob {path} HI", parts[1], 0, 1e9, lo_open=True)
    if lo > hi:
        raise UserError(f"--knob {text!r}: LO must be ≤ HI")
    levels = None
    if len(parts) == 3:
        n = int(check_number(f"--knob {path} N", parts[2], 2, 1000, integer=True))
        levels = tuple(float(v) for v in np.geomspace(lo * db_value, hi * db_value, n))
    return Knob(path, lo * db_value, hi * db_value, levels), db_value


def _tiers(system) -> str:
    return "tiers are " + ", ".join(t.name for t in system.tiers)


def run(a) -> int:
    from search.cli import report
    from search.gradient import log_improvement_budget, optimize
    from search.jit import enable_cache
    from search.optimize import split_table

    enable_cache()
    from search.gradient import SearchSettings

    starts = SearchSettings.n_starts if a.starts is None else a.starts
    steps = SearchSettings.steps if a.steps is None else a.steps
    starts = int(check_number("--starts", starts, 1, 4096, integer=True))
    steps = int(check_number("--steps", steps, 1, 100000, integer=True))
    seed = int(check_number("--seed", a.seed, 0, 2**31 - 1, integer=True))
    budget = None if a.budget is None else check_number("--budget", a.budget, 1, 1e9)
    if not a.knob:
        raise UserError("--knob: give at least one PATH=LO:HI[:N] (see --help)")
    sc = scenario_from_args(a)
    parsed = [parse_knob(k, sc.system) for k in a.knob]
    knobs = tuple(k for k, _ in parsed)
    if len({k.path for k in knobs}) != len(knobs):
        raise UserError("--knob: each PATH at most once")
    nominal = {k.path: v for k, v in parsed}
    sign = {p: (-1.0 if lower_is_better(p) else 1.0) for p in nominal}
    bud = None
    if budget is not None:
        bud = {"nominal": nominal, "sign": sign, "log_budget": math.log(budget) + 1e-9}
    table = split_table(sc, a.chips_max)
    con = report.console(a.json)
    with con.status("co-designing", spinner="dots"):
        g = optimize(
            sc,
            table,
            knobs,
            log_improvement_budget if bud else None,
            bud,
            objective=a.objective,
            n_starts=starts,
            steps=steps,
            seed=seed,
        )
    chips_max = float(a.chips_max) if a.chips_max else float(sc.system.max_chips)
    out = {
        "scenario": scenario_dict(sc),
        "objective": a.objective,
        "score": g.score,
        "parallelism": g.parallelism,
        "knobs": [_knob_row(k, nominal[k.path], g.knobs[k.path]) for k in knobs],
        "budget": budget,
        "binding": binding(g, knobs, bud, chips_max),
        "evaluations": g.evaluations,
        "splits": int(len(table)),
        "result": report.result_dict(g.result),
    }
    if a.json:
        print(report.dumps(out))
    else:
        _print(con, sc, out)
    return 0


def _knob_row(k, db_value: float, value: float) -> dict:
    return {
        "path": k.path,
        "database": db_value,
        "value": value,
        "factor": value / db_value,
        "lo": k.lo,
        "hi": k.hi,
        "levels": len(k.levels) if k.levels else None,
    }


def binding(g, knobs, bud, chips_max: float) -> list[str]:
    """Constraints that hold the answer back: capacity (memory ≥ 95 % of the chip's),
    the chip budget, knob bounds in the improving direction, and the budget (no knob
    can take one more step — a level, or 1 % — in its improving direction within it)."""
    import numpy as np

    from search.gradient import log_improvement_budget

    out = []
    if float(g.result.log_capacity_ratio) > math.log(0.95):
        out.append("capacity")
    if float(g.result.chips) >= chips_max:
        out.append("chip budget")
    movable = []
    for k in knobs:
        v = g.knobs[k.path]
        better_hi = bud is None or bud["sign"][k.path] > 0
        if k.levels:
            lv = sorted(k.levels)
            j = int(np.argmin(np.abs(np.log(lv) - math.log(v))))
            nxt = lv[j + 1] if better_hi and j + 1 < len(lv) else None
            nxt = lv[j - 1] if not better_hi and j > 0 else nxt
        else:
            nxt = v * (1.01 if better_hi else 1 / 1.01)
            nxt = nxt if k.lo <= nxt <= k.hi else None
        if nxt is None:
            out.append(f"knob bound: {k.path} at {'HI' if better_hi else 'LO'}")
        else:
            movable.append((k.path, nxt))
    if bud is not None and movable:
        over = [float(log_improvement_budget({**g.knobs, p: nxt}, bud)) > 0 for p, nxt in movable]
        if all(over):
            out.append("budget")
    return out


def _print(con, sc, out: dict) -> None:
    from rich.table import Table

    from search.cli import report

    title = (
        f"{sc.model_name} on {sc.system_name} ({sc.precision_name}): co-designed "
        f"hardware and split, {out['objective']}"
    )
    con.print(report.summary_table(out["result"], out["parallelism"], title=title))
    t = Table(title="Hardware numbers (factor: chosen / database)", title_justify="left")
    for c in ("knob", "database", "chosen", "factor", "range"):
        t.add_column(c, justify="left" if c == "knob" else "right")
    for k in out["knobs"]:
        unit = report.unit_of(k["path"])
        rng = f"{report.fmt_si(k['lo'], unit)} … {report.fmt_si(k['hi'], unit)}"
        if k["levels"]:
            rng += f" ({k['levels']} levels)"
        t.add_row(
            k["path"],
            report.fmt_si(k["database"], unit),
            report.fmt_si(k["value"], unit),
            f"×{k['factor']:.3g}",
            rng,
        )
    con.print(t)
    bud = f"; budget: improvement product ≤ {out['budget']:g}" if out["budget"] else ""
    binds = ", ".join(out["binding"]) or "none (interior optimum)"
    con.print(f"binding: {binds}{bud}")
    con.print(f"[dim]{out['splits']} valid splits; {out['evaluations']} evaluations[/dim]")
