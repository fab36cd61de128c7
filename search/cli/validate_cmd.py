"""``tpsopt validate``: predicted vs measured decode step times, error tables, plot."""

from __future__ import annotations

from search.cli import report
from search.errors import UserError

GRADES = ("A", "B", "C")
LEVELS = ("six", "kernels", "e2e")
SETS = ("serving", "published", "extra")


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
    p.add_argument(
        "--level",
        choices=LEVELS,
        default="six",
        help="six: the six-scalar calibrated mode on measurements.csv (default); kernels: "
        "the stored kernel microbenchmark fits (held-out every fifth shape); e2e: the "
        "kernel-level mode on the serving measurements (<= 8 users)",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="--level e2e: full leave-one-model-out refit (minutes) instead of the stored fit",
    )
    p.add_argument(
        "--set",
        dest="set_name",
        choices=SETS,
        default="serving",
        help="--level e2e: serving (the 2026 serving measurements the fit uses, default) or "
        "published (hardware_db/data/measurements.csv, never fitted: out of sample, MAPE "
        "per family) or extra (hardware_db/data/extra_measurements.csv, offline-batch "
        "benchmarks with prefill in the TPOT: MAPE per source and family, as-is and "
        "leave-one-family-out; --measurements picks another CSV of that format)",
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
    level = getattr(a, "level", "six")
    if getattr(a, "set_name", "serving") != "serving" and level != "e2e":
        raise UserError("--set applies to --level e2e only")
    if level != "six":
        return _run_level(a, level)
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


def _run_level(a, level: str) -> int:
    if a.plot:
        raise UserError("--plot applies to --level six only")
    if a.refit and level != "e2e":
        raise UserError("--refit applies to --level e2e only")
    set_name = getattr(a, "set_name", "serving")
    if set_name != "serving" and a.refit:
        raise UserError(f"--refit applies to --set serving only, not --set {set_name}")
    if level == "kernels":
        from search.fidelity.levels import kernel_level_report

        rep = kernel_level_report()
    else:
        from search.fidelity.levels import e2e_level_report, published_level_report
        from search.jit import enable_cache

        enable_cache()
        if set_name == "published":
            rep = published_level_report(a.measurements)
        elif set_name == "extra":
            from search.fidelity.extra_set import extra_level_report

            rep = extra_level_report(a.measurements)
        else:
            rep = e2e_level_report(refit=a.refit)
    if a.json:
        print(report.dumps(rep))
        return 0
    if level == "kernels":
        print_kernels(rep)
    else:
        printer = {"published": print_published, "extra": print_extra}.get(set_name, print_e2e)
        printer(rep)
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


def _f(x, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_kernels(rep: dict) -> None:
    """Print the kernel-level table: one row per hardware x kernel class, then per class."""
    from rich.table import Table

    con = report.console()
    con.width = max(con.width, 140)
    t = Table(
        title="Kernel microbenchmark fits per hardware x kernel class (MAPE %, held out = "
        "every fifth shape; median/min/max over frameworks x precisions x kernel variants, "
        "pooled over points; decode: <= 256 tokens / sequences)",
        title_justify="left",
    )
    cols = ("hardware", "class", "groups", "points", "held-out pts", "held-out median",
            "min", "max", "held-out pooled", "held-out decode", "in-sample pooled",
            "SOL viol.", "in L2")  # fmt: skip
    for col in cols:
        left = col in ("hardware", "class")
        t.add_column(col, justify="left" if left else "right", no_wrap=left)

    def cells(s):
        return [
            str(s["groups"]), str(s["n_points"]), str(s["n_holdout"]),
            _f(s["holdout_median_pct"]), _f(s["holdout_min_pct"]), _f(s["holdout_max_pct"]),
            _f(s["holdout_pooled_pct"]), _f(s["holdout_decode_pooled_pct"]),
            _f(s["in_pooled_pct"]), str(s["sol_violations"]),
            str(s["sol_violations_l2"]),
        ]  # fmt: skip

    prev = None
    for s in rep["by_hardware_class"]:
        t.add_row("" if s["system"] == prev else s["system"], s["class"], *cells(s))
        prev = s["system"]
    t.add_section()
    for s in rep["by_class"]:
        t.add_row("all", s["name"], *cells(s))
    t.add_row("[b]all[/b]", "[b]all[/b]", *cells(rep["overall"]))
    con.print(t)
    src = rep["source"]
    con.print(
        f"Stored fit {src['toml']} ({src.get('date', '?')}; no refit, regenerate: "
        f"{src.get('regenerate', 'python -m search.fidelity.kernel_fit --write')}); "
        "per framework x precision: --json (groups)."
    )


def print_e2e(rep: dict) -> None:
    """Print the end-to-end tables: per stack, per model, the interval, the worst rows."""
    from rich.table import Table

    con = report.console()
    con.width = max(con.width, 140)
    src, st = rep["source"], rep["stored"]
    con.print(f"[b]Kernel-level mode vs serving measurements[/b] (<= {rep['max_users']} users, "
              f"{rep['rows']} rows): {src['note']}.")  # fmt: skip
    for key, label in (("by_stack", "stack (hardware/software)"), ("by_model", "model")):
        t = Table(title=f"TPOT MAPE % per {label}", title_justify="left")
        for col in (label.split(" ")[0], "rows", "LOMO", "in-sample", "six scalars",
                    "SOL viol."):  # fmt: skip
            t.add_column(col, justify="right" if col != label.split(" ")[0] else "left")
        for name, s in rep[key].items():
            t.add_row(name, str(s["rows"]), _f(s["mape_lomo_pct"]), _f(s["mape_in_pct"]),
                      _f(s["six_scalar_mape_pct"]), str(s["sol_violations"]))  # fmt: skip
        t.add_section()
        t.add_row("[b]all[/b]", str(rep["rows"]), _f(rep["mape_lomo_pct"]),
                  _f(rep["mape_in_pct"]), _f(rep["six_scalar_mape_pct"]),
                  str(len(rep["sol_violations"])))  # fmt: skip
        con.print(t)
    iv = rep["interval"]
    con.print(
        f"80 % interval: log residual quantiles [{iv['log_q'][0]:+.3f}, {iv['log_q'][1]:+.3f}] "
        f"(x{iv['ratio'][0]:.2f} ... x{iv['ratio'][1]:.2f}); held-out coverage "
        f"{_f(iv['coverage_lomo'], '{:.1%}')}, coverage of this run's residuals "
        f"{iv['coverage_in']:.1%}."
    )
    con.print(
        f"Stored fit ({src['date']}, prior scale {st['prior_scale']}): {st['rows']} rows, "
        f"LOMO {_f(st['mape_lomo_pct'], '{:.2f}')} %, "
        f"in-sample {_f(st['mape_in_pct'], '{:.2f}')} %. "
        f"Measured below SOL: {len(rep['sol_violations'])} rows; calibrated below SOL: "
        f"{rep['calibrated_below_sol']}. Six-scalar column: not exposed by e2e_fit."
    )
    if rep["stale"]:
        con.print(f"[yellow]e2e_calibration.toml is stale: {rep['stale']}[/yellow]")
    w = Table(title=f"10 worst rows ({rep['worst_by']})", title_justify="left")
    for col in ("id", "stack", "model", "recipe", "users", "split", "meas ms", "pred ms",
                "SOL ms", "err"):  # fmt: skip
        w.add_column(col, justify="left" if col in ("id", "stack", "model", "recipe",
                                                    "split") else "right")  # fmt: skip
    for r in rep["worst"]:
        w.add_row(str(r["id"]), r["stack"], r["model"], r["recipe"], str(r["users"]), r["split"],
                  f"{r['measured_ms']:.3g}", f"{r['predicted_ms']:.3g}", f"{r['sol_ms']:.3g}",
                  f"{r['err_pct']:+.0f}%")  # fmt: skip
    con.print(w)


def print_published(rep: dict) -> None:
    """Print the kernel-level mode on the published set: MAPE per family, per primary source
    (kernel-level and transferred rows) and per mode kind."""
    from rich.table import Table

    con = report.console()
    con.print(f"[b]Kernel-level calibrated mode vs published measurements[/b]: {rep['note']}.")
    for key, label in (("by_family", "family"), ("by_source", "source"),
                       ("by_mode_kind", "mode")):  # fmt: skip
        t = Table(title=f"step-time error per {label}", title_justify="left")
        for col in (label, "rows", "MAPE %", "median err %", "SOL viol."):
            t.add_column(col, justify="left" if col == label else "right")
        for name, s in rep[key].items():
            t.add_row(name, str(s["rows"]), _f(s.get("mape_pct")),
                      _f(s.get("median_err_pct")), str(s.get("sol_violations", 0)))  # fmt: skip
        con.print(t)
    o = rep["overall"]["kernel_level"]
    con.print(
        f"Kernel-level and transferred rows: {o['rows']}, MAPE {_f(o.get('mape_pct'))} %; "
        f"rows measured below SOL: {len(rep['sol_violations'])}."
    )
    floored = [r for r in rep["rows"] if "build_floor_s" in r]
    if floored:
        o = rep["overall"]["kernel_level_without_build_floor"]
        builds = sorted({(r["mode"].split("+build_floor:")[1], r["build_floor_ms_per_layer"])
                         for r in floored})  # fmt: skip
        con.print(
            f"At least their build's one-user floor: {', '.join(r['id'] for r in floored)} "
            f"({'; '.join(f'{b}: {f} ms per layer' for b, f in builds)}, from the build's "
            f"other hardware in the extra set); without it MAPE {_f(o.get('mape_pct'))} %."
        )


def print_extra(rep: dict) -> None:
    """Print the extra set: MAPE per source, family and mode kind (as-is and LOFO), the SOL
    check and the worst rows."""
    from rich.table import Table

    con = report.console()
    con.width = max(con.width, 140)
    con.print(f"[b]Calibrated mode vs offline-batch benchmarks[/b] ({rep['rows_used']} of "
              f"{rep['rows_total']} rows): {rep['note']}.")  # fmt: skip
    for key, label in (("by_source", "source"), ("by_family", "family"),
                       ("by_mode_kind", "mode")):  # fmt: skip
        t = Table(title=f"TPOT error per {label} (%)", title_justify="left")
        for col in (label, "rows", "MAPE as-is", "median as-is", "MAPE LOFO", "median LOFO",
                    "SOL viol."):  # fmt: skip
            t.add_column(col, justify="left" if col == label else "right")
        items = list(rep[key].items())
        if key == "by_source":
            items += [(f"{n}, <= 8 users", v["le8_users"]) for n, v in rep[key].items()]
            items.append(("[b]all[/b]", rep["overall"]))
            items.append(("all, batch in one wave", rep["overall_fits_hbm"]))
            items.append(("all, <= 8 users", rep["overall_le8_users"]))
        for name, s in items:
            a, lo = s["as_is"], s["lofo"]
            t.add_row(name, str(a["rows"]), _f(a.get("mape_pct")), _f(a.get("median_err_pct")),
                      _f(lo.get("mape_pct")), _f(lo.get("median_err_pct")),
                      str(a.get("sol_violations", 0)))  # fmt: skip
        con.print(t)
    if rep["skipped"]:
        con.print("Skipped (no database entry): " + "; ".join(
            f"{why} ({n})" for why, n in rep["skipped"].items()))  # fmt: skip
    v = rep["sol_violations"]
    con.print(f"Rows measured below SOL: {len(v)}.")
    for e in v:
        con.print(f"  {e['id']} ({e['family']}, measured/SOL {e['measured_over_sol']}): "
                  f"{e['reason']}")  # fmt: skip
    w = Table(title="10 worst rows (LOFO)", title_justify="left")
    for col in ("id", "family", "model", "gpus", "users", "isl/osl", "meas ms", "LOFO ms",
                "as-is ms", "SOL ms", "prefill", "waves", "err"):  # fmt: skip
        w.add_column(col, justify="left" if col in ("id", "family", "model") else "right")
    for r in rep["worst"]:
        w.add_row(r["id"], r["family"], r["model"], str(r["gpus"]), str(r["users"]),
                  f"{r['isl']}/{r['osl']}", f"{r['measured_ms']:.4g}", f"{r['lofo_ms']:.4g}",
                  f"{r['as_is_ms']:.4g}", f"{r['sol_ms']:.4g}", f"{r['prefill_share']:.0%}",
                  str(r["waves"]), f"{r['err_lofo_pct']:+.0f}%")  # fmt: skip
    con.print(w)
