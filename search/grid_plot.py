"""``tpsopt grid --plot``: UTPS against chips, one colour per composition family.

Points are the best configuration of every (chips, composition, batch) group the sweep
tracked; the line is the Pareto front (the best UTPS reachable with at most that many
chips). Written with matplotlib's Agg backend (no display needed), PNG, SVG or PDF.
"""

from __future__ import annotations

from pathlib import Path

from search.grid_result import GridResult
from search.io import atomic_write, check_plot_path


def plot_grid(res: GridResult, path, title: str = "") -> Path:
    """Draw the UTPS-vs-chips scatter and front of ``res`` and write it atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmt = check_plot_path(path)
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
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return atomic_write(path, buf.getvalue(), flag="--plot")
