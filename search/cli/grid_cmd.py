"""``tpsopt grid``: exhaustive search over parallel splits and any spec field.

::

    tpsopt grid --model kimi-k2.5 --system gb200-nvl72 --top 5
    tpsopt grid --system reticle-die --chips-max 4096 --pareto --plot dies.png
    tpsopt grid --batch 1,8,64 --axis tiers.nvlink.hop_latency_s=50ns:2us:16:log --json

A progress bar (candidates/s, ETA) appears on runs longer than ~2 s when stderr is a
terminal; Ctrl-C prints the best so far, marked partial (exit status 130);
``--time-limit`` stops cleanly with a partial result (exit status 0).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import time

from search.cli import report
from search.cli.common import add_json_arg, add_scenario_args, scenario_dict
from search.errors import UserError, check_number
from search.grid_result import flat_row
from search.objectives import OBJECTIVES, check_objective

LIST_FLAGS = (("batch", "batch"), ("context", "context"), ("mtp", "mtp"))
"""Scenario flags that may also be lists or ranges (then they become axes)."""


def register(sub) -> None:
    p = sub.add_parser(
        "grid",
        help="exhaustive search over parallel splits (and any spec field): best configurations",
        description="Evaluate every valid parallel split (× the values of every --axis) "
        "with the cost model and report the best configurations, why the others were "
        "rejected, and optionally the Pareto fronts. --model/--system/--batch/--context/"
        "--mtp accept comma-separated lists; ranges lo:hi:n or lo:hi:n:log.",
    )
    add_scenario_args(p)
    g = p.add_argument_group("search space")
    g.add_argument(
        "--chips-max",
        default=None,
        help="chip budget (required for systems without a chip limit, e.g. reticle-die)",
    )
    g.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="an axis: a degree (tp, ep, pp, attn_dp, kvp, moe_tp), chips (exact chip "
        "counts), model, system, or a spec path (e.g. tiers.nvlink.hop_latency_s, "
        "chip.hbm_bw_bytes_per_s, model.n_experts, precision.kv_bytes, latency_scale); "
        "VALUES: v1,v2,... or lo:hi:n[:log]; repeatable",
    )
    g.add_argument(
        "--layout",
        default="helix",
        help="FFN layout of KV-parallel splits: helix (default; the FFN over all "
        "attn_tp·kvp·attn_dp chips), shared (Medha-style: the FFN on the attention TP group, "
        "replicated over kvp; Helix's baseline) or any (both)",
    )
    g.add_argument("--min-system-tps", default=None, help="reject below this system tokens/s")
    g.add_argument("--min-utps", default=None, help="reject below this tokens/s per user")
    o = p.add_argument_group("search and output")
    o.add_argument(
        "--objective", default="utps", help=f"one of {', '.join(OBJECTIVES)} (default utps)"
    )
    o.add_argument("--top", default="10", help="configurations to report (default 10)")
    o.add_argument("--pareto", action="store_true", help="also report the Pareto fronts")
    add_json_arg(p)
    o.add_argument("--csv", default=None, metavar="FILE", help="write the results as CSV")
    o.add_argument("--plot", default=None, metavar="FILE", help="UTPS vs chips plot (.png/.svg)")
    o.add_argument("--time-limit", default=None, metavar="SECONDS", help="stop after this long")
    o.add_argument("--chunk", default=None, help="candidates per device per chunk (static)")
    o.add_argument(
        "--distributed",
        default=os.environ.get("TPSOPT_DISTRIBUTED"),
        metavar="COORD:PORT,N,ID",
        help="join a jax.distributed job: coordinator address, number of processes, "
        "this process's id (or env TPSOPT_DISTRIBUTED)",
    )
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- parsing


def _axes(a) -> list[tuple[str, str]]:
    items = []
    for text in a.axis:
        name, sep, vals = text.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--axis {text!r}: expected NAME=VALUES (e.g. tp=1,2,4)")
        if not vals.strip():
            raise UserError(f"--axis {text!r}: empty list of values")
        items.append((name.strip(), vals))
    return items


def _is_list(text) -> bool:
    return isinstance(text, str) and ("," in text or ":" in text)


def _init_distributed(spec: str | None) -> None:
    if not spec:
        return
    parts = spec.split(",")
    if len(parts) != 3:
        raise UserError(f"--distributed {spec!r}: expected COORD:PORT,NUM_PROCESSES,PROCESS_ID")
    import jax

    try:
        n, i = int(parts[1]), int(parts[2])
    except ValueError:
        raise UserError(f"--distributed {spec!r}: process counts must be integers") from None
    if not 0 <= i < n:
        raise UserError(f"--distributed {spec!r}: need 0 ≤ PROCESS_ID < NUM_PROCESSES")
    jax.distributed.initialize(coordinator_address=parts[0], num_processes=n, process_id=i)


def _number(flag: str, text, lo, integer=False):
    """A flag's number (an int if ``integer``; ``None`` if not given), checked by
    :func:`search.errors.check_number`."""
    if text is None:
        return None
    v = check_number(flag, text, lo, integer=integer)
    return int(v) if integer else v


def build_space(a):
    """The :class:`~search.space.Space` of the parsed flags."""
    from search.space import make_space

    axes = _axes(a)
    kw = {}
    for flag, key in LIST_FLAGS:
        text = getattr(a, flag)
        if _is_list(text):
            axes.insert(0, (key, text))
        else:
            kw[key] = text
    models = [m.strip() for m in a.model.split(",")]
    systems = [s.strip() for s in a.system.split(",")]
    if any(not m for m in models) or any(not s for s in systems):
        raise UserError("--model/--system: empty name in the list")
    return make_space(
        models,
        systems,
        axes=axes,
        chips_max=_number("--chips-max", a.chips_max, lo=1, integer=True),
        min_system_tps=_number("--min-system-tps", a.min_system_tps, lo=0),
        min_utps=_number("--min-utps", a.min_utps, lo=0),
        layout=a.layout,
        precision=a.precision,
        chips=a.chips,
        acceptance=a.acceptance,
        overlap=a.overlap,
        imbalance=a.imbalance,
        mode=a.mode,
        software=a.software,
        latency_scale=a.latency_scale,
        **kw,
    )


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress bar on stderr that appears once a run is longer than ~2 s."""

    def __init__(self, enabled: bool, delay_s: float = 2.0):
        self.enabled, self.delay = enabled, delay_s
        self.t0 = time.perf_counter()
        self.bar = self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.t0 < self.delay or done >= total:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("grid"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("grid", total=total, rate="")
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, completed=done, rate=f"{done / elapsed:,.3g} cand/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# --------------------------------------------------------------------------- output


def _split_text(par: dict) -> str:
    short = {"attn_tp": "tp", "attn_dp": "dp", "kvp": "kvp", "ep": "ep", "moe_tp": "moe_tp"}
    short["pp"] = "pp"
    txt = " ".join(f"{short[k]}{v}" for k, v in par.items() if v != 1)
    return txt or "1 chip"


def _top_table(res, objective: str):
    from rich.table import Table

    t = Table(title=f"Best configurations (by {OBJECTIVES[objective]})", title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("split", no_wrap=True)
    t.add_column("chips", justify="right")
    axis_names = list(res.top[0]["axes"]) if res.top else []
    multi = res.top and any(r["model"] != res.top[0]["model"] for r in res.top)
    multi_s = res.top and any(r["system"] != res.top[0]["system"] for r in res.top)
    if multi:
        t.add_column("model")
    if multi_s:
        t.add_column("system")
    for n in axis_names:
        t.add_column(n.split(".")[-1], justify="right")
    for col in ("UTPS", "TPOT", "tok/s/chip", "mem/chip"):
        t.add_column(col, justify="right")
    t.add_column("time share", no_wrap=True)
    for r in res.top:
        d = r["result"]
        cells = [str(r["rank"]), _split_text(r["parallelism"]), f"{d['chips']:.0f}"]
        if multi:
            cells.append(r["model"])
        if multi_s:
            cells.append(r["system"])
        cells += [f"{r['axes'][n]:.4g}" for n in axis_names]
        cells += [
            f"{d['utps']:,.1f}",
            report.fmt_time(d["tpot_s"]),
            f"{d['tps_per_chip']:,.2f}",
            report.fmt_bytes(d["memory_per_chip_bytes"]),
            _shares(d["breakdown_s"]),
        ]
        t.add_row(*cells)
    return t


_TERMS = {
    "compute": "compute",
    "weight_read": "W",
    "kv_read": "KV",
    "activation": "act",
    "comm_latency": "α",
    "comm_bandwidth": "BW",
    "overhead": "ovh",
}


def _shares(bd: dict, n: int = 3) -> str:
    """The largest breakdown terms and their shares of the step: 'W 80% α 14% KV 4%'
    (W weights, KV cache, act activations, α communication latency, BW communication
    bandwidth)."""
    total = sum(bd.values()) or 1.0
    top = sorted(bd.items(), key=lambda kv: -kv[1])[:n]
    return " ".join(f"{_TERMS.get(k, k)} {100 * v / total:.0f}%" for k, v in top if v > 0)


def _counts_table(res):
    from rich.table import Table

    c = res.counts
    t = Table(title="Candidates", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_row("in the space", f"{res.total:,}")
    t.add_row("evaluated" + (" (partial)" if res.partial else ""), f"{res.evaluated:,}")
    t.add_row("feasible", f"{c['feasible']:,}")
    t.add_row("infeasible", f"{c['infeasible']:,}")
    for why, n in c["rejected"].items():
        t.add_row(f"  {why}", f"{n:,}")
    splits = sum(s["splits"] for s in res.info.get("sub_grids", []))
    t.add_row("valid splits (host-enumerated)", f"{splits:,}")
    return t


def _front_table(rows, title: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("split", "chips", "UTPS", "tok/s/chip", "sys tok/s"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for r in rows:
        d = r["result"]
        axes = " ".join(f"{k.split('.')[-1]}={v:g}" for k, v in r["axes"].items())
        t.add_row(
            _split_text(r["parallelism"]) + (f" ({axes})" if axes else ""),
            f"{d['chips']:.0f}",
            f"{d['utps']:,.1f}",
            f"{d['tps_per_chip']:,.2f}",
            f"{d['system_tps']:,.1f}",
        )
    return t


def _csv_text(res) -> str:
    rows = [dict(set="top", **flat_row(r)) for r in res.top]
    for name, front in (res.pareto or {}).items():
        rows += [dict(set=name, **flat_row(r)) for r in front]
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _json_doc(sp, res) -> dict:
    d = res.to_json_dict()
    for k in ("elapsed_s", "candidates_per_s"):  # keep the document deterministic
        d.pop(k, None)
    d["info"] = {k: v for k, v in d["info"].items() if k != "rate_measured"}
    d["scenarios"] = [scenario_dict(sc) for sc in sp.scenarios]
    d["space"] = {
        "axes": [{"name": n, "values": list(v)} for n, v in sp.axes],
        "degrees": {k: list(v) for k, v in sp.degrees.items()},
        "chips": list(sp.chips) if sp.chips else None,
        "chips_max": sp.chips_max,
        "min_system_tps": sp.min_system_tps,
        "min_utps": sp.min_utps,
    }
    if sp.layout != "helix":  # the default is left out: documents of older runs unchanged
        d["space"]["layout"] = sp.layout
    return d


# --------------------------------------------------------------------------- run


@contextlib.contextmanager
def _native_stdout_to_stderr(active: bool):
    """Send file descriptor 1 to stderr while active: gloo (the CPU cross-process
    collectives) prints connection messages on stdout, which would corrupt --json."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _console():
    """stdout console; when piped, 160 columns wide so the tables stay readable."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def run(a) -> int:
    """Run ``tpsopt grid``.

    *Length:* the command's sequence (check flags, build the space, sweep with progress,
    print or write each output) reads top to bottom; each output is its own function.
    """
    _init_distributed(a.distributed)
    from search.cli.io import check_output_path, check_plot_path
    from search.cli.plots import plot_grid
    from search.grid import grid

    objective = a.objective
    check_objective(objective)
    top = _number("--top", a.top, lo=1, integer=True)
    chunk = _number("--chunk", a.chunk, lo=1, integer=True)
    limit = _number("--time-limit", a.time_limit, lo=0)
    if a.csv:
        check_output_path(a.csv, "--csv")
    if a.plot:
        check_plot_path(a.plot)
    sp = build_space(a)
    import jax

    lead = jax.process_index() == 0
    show = lead and not a.json and sys.stderr.isatty()
    prog = _Progress(show)
    try:
        with _native_stdout_to_stderr(jax.process_count() > 1):
            res = grid(
                sp,
                objective=objective,
                top=top,
                pareto=bool(a.pareto or a.plot),
                chunk=chunk,
                time_limit_s=limit,
                progress=prog,
            )
    finally:
        prog.close()
    if not lead:
        return 0
    if a.csv:
        from search.cli.io import atomic_write

        atomic_write(a.csv, _csv_text(res), flag="--csv")
    if a.plot:
        names = f"{sp.scenarios[0].model_name} on {sp.scenarios[0].system_name}"
        plot_grid(res, a.plot, title=f"{names}: UTPS against chips ({sp.scenarios[0].mode_name})")
    interrupted = bool(res.info.get("interrupted"))
    if a.json:
        print(report.dumps(_json_doc(sp, res)))
        return 130 if interrupted else 0
    con = _console()
    sc = sp.scenarios[0]
    state = "[yellow]PARTIAL[/yellow] " if res.partial else ""
    if res.info.get("engine") == "interpreter":  # small space: no compilation
        rate = "evaluated by the NumPy interpreter, no compilation"
    elif res.info.get("rate_measured"):
        rate = f"{res.rate:,.3g} candidates/s after compilation, {res.info['devices']} device(s)"
    else:
        rate = f"mostly compilation, {res.info['devices']} device(s)"
    con.print(
        f"{state}grid: {res.evaluated:,} of {res.total:,} candidates in {res.elapsed_s:.1f} s "
        f"({rate}); "
        f"{sc.precision_name}, {sc.mode_name.upper()}, batch {sc.workload.batch:g}, "
        f"context {sc.workload.context_tokens:g}"
    )
    if interrupted:
        con.print("[yellow]interrupted: best configurations found so far[/yellow]")
    if res.top:
        con.print(_top_table(res, objective))
        best = res.top[0]
        con.print(
            report.summary_table(
                best["result"],
                best["parallelism"],
                title=f"Best: {best['model']} on {best['system']} "
                + " ".join(f"{k}={v:g}" for k, v in best["axes"].items()),
            )
        )
        con.print(report.breakdown_table(best["result"], title="Why: time per step of the best"))
    else:
        con.print("[red]no feasible configuration[/red] (see the rejection counts below)")
    con.print(_counts_table(res))
    if a.pareto and res.pareto:
        con.print(_front_table(res.pareto["utps_vs_chips"], "Pareto front: UTPS vs chips"))
        con.print(
            _front_table(
                res.pareto["utps_vs_tps_per_chip"], "Pareto front: UTPS vs tokens/s per chip"
            )
        )
    return 130 if interrupted else 0
