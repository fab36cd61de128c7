"""``tpsopt validate``: predicted vs measured decode step times, error tables, plot."""

from __future__ import annotations

import io

from search import report
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
    from search.jit import enable_cache
    from search.validate import validation_report

    grades = parse_grades(a.grade)
    if a.plot:
        from search.io import check_plot_path

        check_plot_path(a.plot)
    enable_cache()
    rep = validation_report(grades, a.measurements, a.calibration)
    if not rep["rows"]:
        raise UserError(f"--grade {a.grade}: no usable measurement rows of these grades")
    if a.plot:
        from search.io import atomic_write

        atomic_write(a.plot, plot_bytes(rep, a.plot), flag="--plot")
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


def _mape(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def print_report(rep: dict) -> None:
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
        f.add_row(s["name"], str(s["n"]), _mape(s["sol_mape"]), _mape(s["in_sample_mape"]),
                  _mape(s["loo_row_mape"]), _mape(s["loo_family_mape"]))  # fmt: skip
    f.add_section()
    for s in rep["overall"].values():
        f.add_row(f"[b]{s['name']}[/b]", str(s["n"]), _mape(s["sol_mape"]),
                  _mape(s["in_sample_mape"]), _mape(s["loo_row_mape"]),
                  _mape(s["loo_family_mape"]))  # fmt: skip
    con.print(f)

    n = len(rep["rows"])
    if rep["sol_exceptions"]:
        con.print(f"[red]SOL exceeds the measurement on {len(rep['sol_exceptions'])} rows:[/red]")
        for e in rep["sol_exceptions"]:
            con.print(f"  {e['id']} ({e['family']}): {e['cause']}")
    else:
        con.print(f"SOL is a lower bound: SOL step time ≤ measured on all {n} rows.")

    c = Table(
        title="Collective latency (measurements.md §2): model vs measured",
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


# ----------------------------------------------------------------------------- plot


def plot_bytes(rep: dict, path: str) -> bytes:
    """The scatter plot (log-log, y = x, one colour per family) as file bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({r["family"] for r in rep["rows"]})
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(8.5, 7))
    lo, hi = 1e9, 0.0
    for i, fam in enumerate(fams):
        rs = [r for r in rep["rows"] if r["family"] == fam]
        meas = [r["measured_s"] * 1e3 for r in rs]
        loo = [r["loo_row_s"] * 1e3 for r in rs]
        sol = [r["sol_s"] * 1e3 for r in rs]
        col = cmap(i % 20)
        ax.scatter(meas, loo, color=col, s=36, label=fam, zorder=3)
        ax.scatter(meas, sol, facecolors="none", edgecolors=col, s=36, marker="o", zorder=2)
        lo, hi = min(lo, *meas, *loo, *sol), max(hi, *meas, *loo, *sol)
    lim = (lo / 1.5, hi * 1.5)
    ax.plot(lim, lim, color="black", lw=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_xlabel("measured decode step time (ms)")
    ax.set_ylabel("predicted decode step time (ms)")
    ov = rep["overall"]["selected"]
    ax.set_title(
        "Filled: calibrated, leave-one-row-out; hollow: SOL\n"
        f"MAPE leave-row-out {_mape(ov['loo_row_mape'])}, leave-family-out "
        f"{_mape(ov['loo_family_mape'])}, SOL {_mape(ov['sol_mape'])} ({ov['n']} rows)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=1, framealpha=0.9)
    buf = io.BytesIO()
    fig.savefig(buf, format=str(path).rsplit(".", 1)[-1].lower(), dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
