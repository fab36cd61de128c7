"""Plots of the command line, written with matplotlib's Agg backend (no display needed).

Each function draws one figure and writes it atomically as PNG, SVG or PDF (the format
from the file name, checked before drawing by :func:`search.cli.io.check_plot_path`):

* :func:`plot_grid` — ``tpsopt grid --plot``: UTPS against chips, one colour per
  composition family; the line is the Pareto front (the best UTPS reachable with at most
  that many chips);
* :func:`plot_sweep` — ``tpsopt sweep --plot``: UTPS and the stacked breakdown against
  the swept value;
* :func:`plot_targets` — ``tpsopt target --plot``: the required factor or chip count
  against the target UTPS;
* :func:`plot_validation` — ``tpsopt validate --plot``: predicted against measured step
  time.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from search.cli.io import atomic_write, check_plot_path
from search.cli.report import fmt_mape, unit_of
from search.grid_result import GridResult
from search.results import BREAKDOWN
from search.scenario import Scenario


def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(fig, path, **savefig) -> Path:
    """Save ``fig`` in the format of ``path``'s suffix, close it, write atomically."""
    fmt = check_plot_path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **savefig)
    _pyplot().close(fig)
    return atomic_write(path, buf.getvalue(), flag="--plot")


def plot_grid(res: GridResult, path, title: str = "") -> Path:
    """Draw the UTPS-vs-chips scatter and front of ``res`` and write it atomically."""
    plt = _pyplot()

    check_plot_path(path)
    groups = res.groups or []
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    families = sorted({g["family"] for g in groups}, key=lambda s: (s.count("+"), s))
    cmap = plt.get_cmap("tab20" if len(families) > 10 else "tab10")
    for i, fam in enumerate(families):
        pts = [g for g in groups if g["family"] == fam]
        ax.scatter(
            [g["result"]["chips"] for g in pts],
            [g["result"]["utps"] for g in pts],
            s=18,
            alpha=0.75,
            color=cmap(i % cmap.N),
            label=fam,
        )
    front = (res.pareto or {}).get("utps_vs_chips", [])
    if front:
        ax.step(
            [g["result"]["chips"] for g in front],
            [g["result"]["utps"] for g in front],
            where="post",
            color="black",
            linewidth=1.5,
            label="Pareto front (best UTPS)",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chips (count, log scale)")
    ax.set_ylabel("user tokens/s, UTPS (tokens/s)")
    note = " (partial)" if res.partial else ""
    ax.set_title((title or "Grid search: UTPS against chips") + note, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if groups:
        ax.legend(
            fontsize=7,
            title="composition",
            title_fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
    else:
        ax.text(0.5, 0.5, "no feasible configuration", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return _write(fig, path)


def plot_sweep(path_out, sc: Scenario, sweep: dict, log_x: bool = False) -> Path:
    """UTPS against the swept value (top) and the breakdown as a stacked area (bottom)."""
    plt = _pyplot()

    check_plot_path(path_out)
    ok = [i for i, r in enumerate(sweep["results"]) if r is not None]
    x = np.asarray(sweep["values"])[ok]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    ax1.plot(x, [sweep["results"][i]["utps"] for i in ok], "o-", color="C0")
    ax1.set_ylabel("single-user tokens/s (tok/s)")
    ax1.set_title(f"{sc.model_name} on {sc.system_name}: best split at each point")
    ax1.grid(True, alpha=0.3)
    stack = np.array([[sweep["results"][i]["breakdown_s"][k] * 1e6 for i in ok] for k in BREAKDOWN])
    ax2.stackplot(x, stack, labels=[k.replace("_", " ") for k in BREAKDOWN], alpha=0.85)
    ax2.set_ylabel("time per step (µs)")
    unit = unit_of(sweep["path"])
    ax2.set_xlabel(f"{sweep['path']}" + (f" ({unit})" if unit else ""))
    ax2.legend(loc="upper left", fontsize=8, ncol=2)
    ax2.grid(True, alpha=0.3)
    if log_x:
        ax1.set_xscale("log")
    fig.tight_layout()
    return _write(fig, path_out, dpi=120)


def plot_targets(path, sc, answers, knob) -> Path:
    """Required factor (or chips) against target UTPS, log-log; written atomically."""
    plt = _pyplot()

    check_plot_path(path)
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
    return _write(fig, path, bbox_inches="tight", dpi=120)


def plot_validation(rep: dict, path) -> Path:
    """Predicted against measured step time (log-log, y = x, one colour per family)."""
    check_plot_path(path)
    plt = _pyplot()

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
        f"MAPE leave-row-out {fmt_mape(ov['loo_row_mape'])}, leave-family-out "
        f"{fmt_mape(ov['loo_family_mape'])}, SOL {fmt_mape(ov['sol_mape'])} ({ov['n']} rows)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=1, framealpha=0.9)
    return _write(fig, path, dpi=120, bbox_inches="tight")
