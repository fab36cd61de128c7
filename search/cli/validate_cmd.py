"""``tpsopt validate``: predicted vs measured decode step times, error tables, plot."""

from __future__ import annotations

from search.cli import report
from search.errors import UserError

GRADES = ("A", "B", "C")


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="predicted vs measured decode speed: errors per row and family (SOL, "
        "calibrated, leave-one-out), collective latencies",
        description="Compare the cost model with the published measurements in "
        "hardware_db/data/measurements.csv: per-step decode time in SOL mode and "
        "calibrated (in-sample, leave-one-row-out, leave-one-family-out), MAPE per "
        "hardware x software family and overall, and small-message collective latencies.",
    )
    p.add_argument(
        "--grade",
        default="A,B",
        help="comma-separated trust grades of the rows to report (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument(
        "--plot", default=None, help="write a predicted-vs-measured scatter plot (.png/.pdf/.svg)"
    )
    p.add_argument("--measurements", default=None, help="measurements CSV (default: packaged)")
    p.add_argument("--calibration", default=None, help="calibration TOML (default: packaged)")
    p.set_defaults(func=run)


def parse_grades(text: str) -> tuple[str, ...]:
    """``"A,B"`` → ``("A", "B")``; one-line error for anything else."""
    out = []
    for g in str(text).split(","):
        g = g.strip().upper()
        if g not in GRADES:
            raise UserError(f"--grade {text!r}: {g!r} is not a grade; allowed: A, B, C")
        if g not in out:
            out.append(g)
    return tuple(out)


def run(a) -> int:
    from search.fidelity.validate import validation_report
    from search.jit import enable_cache

    grades = parse_grades(a.grade)
    if a.plot:
        from search.cli.io import check_plot_path

        check_plot_path(a.plot)
    enable_cache()
    rep = validation_report(grades, a.measurements, a.calibration)
    if not rep["rows"]:
        raise UserError(f"--grade {a.grade}: no usable measurement rows of these grades")
    if a.plot:
        from search.cli.plots import plot_validation

        plot_validation(rep, a.plot)
    if a.json:
        print(report.dumps(rep))
        return 0
    print_report(rep)
    return 0


# ----------------------------------------------------------------------------- text


def _ms(s: float) -> str:
    return f"{s * 1e3:.3g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.0f}%"


def _mapes(s: dict) -> list[str]:
    """The four MAPE cells of a family or overall score row."""
    keys = ("sol_mape", "in_sample_mape", "loo_row_mape", "loo_family_mape")
    return [report.fmt_mape(s[k]) for k in keys]


def print_report(rep: dict) -> None:
    """Print the validation report as three tables.

    *Length:* three tables printed in order; their layout is the function.
    """
    from rich.table import Table

    con = report.console()
    con.width = max(con.width, 160)  # wide tables stay readable when piped
    cal = rep["calibration"]
    t = Table(
        title=f"Decode step time, predicted vs measured (grades {','.join(rep['grades'])}; "
        "errors = (pred - meas)/meas)",
        title_justify="left",
    )
    for col in ("id", "family", "grade", "meas ms", "SOL ms", "SOL err", "calib ms", "in-sample",
                "leave-row-out", "leave-family-out"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("id", "family") else "right")
    for r in rep["rows"]:
        t.add_row(
            r["id"], r["family"], r["grade"], _ms(r["measured_s"]), _ms(r["sol_s"]),
            _pct(r["err_sol_pct"]), _ms(r["calibrated_s"]), _pct(r["err_in_pct"]),
            _pct(r["err_loo_pct"]), _pct(r["err_lofo_pct"]),
        )  # fmt: skip
    con.print(t)

    f = Table(title="MAPE per hardware x software family", title_justify="left")
    for col in ("family", "rows", "SOL", "calibrated in-sample", "leave-row-out",
                "leave-family-out"):  # fmt: skip
        f.add_column(col, justify="left" if col == "family" else "right")
    for s in rep["families"]:
        f.add_row(s["name"], str(s["n"]), *_mapes(s))
    f.add_section()
    for s in rep["overall"].values():
        f.add_row(f"[b]{s['name']}[/b]", str(s["n"]), *_mapes(s))
    con.print(f)

    n = len(rep["rows"])
    if rep["sol_exceptions"]:
        con.print(f"[red]SOL exceeds the measurement on {len(rep['sol_exceptions'])} rows:[/red]")
        for e in rep["sol_exceptions"]:
            con.print(f"  {e['id']} ({e['family']}): {e['cause']}")
    else:
        con.print(f"SOL is a lower bound: SOL step time ≤ measured on all {n} rows.")

    c = Table(
        title="Collective latency (published measurements): model vs measured",
        title_justify="left",
    )
    for col in ("id", "operation", "system", "ranks", "bytes", "graph", "meas µs", "SOL µs",
                "SOL err", "calib µs", "calib err", "calibration"):  # fmt: skip
        c.add_column(col, justify="left" if col in ("id", "operation", "system") else "right")
    for r in rep["collectives"]:
        c.add_row(
            r["id"], r["operation"], r["system"], str(r["ranks"]), str(r["msg_bytes"]),
            r["cuda_graph"], f"{r['measured_s'] * 1e6:.3g}", f"{r['sol_s'] * 1e6:.3g}",
            _pct(r["err_sol_pct"]), f"{r['calibrated_s'] * 1e6:.3g}",
            _pct(r["err_calibrated_pct"]), r["calibration"],
        )  # fmt: skip
    con.print(c)
    note = f"Calibration: prior scale {cal['prior_scale']:g}, fitted {cal['fit_date']}"
    note += f" on {cal['rows_fitted']} rows (regenerate: {cal['command']})."
    con.print(note)
    if cal["stale"]:
        con.print(f"[yellow]calibration.toml is stale: {cal['stale']}[/yellow]")
