"""Bounded resources: grids beyond int64 indexing, flat memory, Ctrl-C and time limits.

Covered elsewhere: grids beyond 2^31 candidates (``tests/test_grid.py::
test_huge_space_runs_partially``), ``time_limit_s`` / ``--time-limit`` giving a partial
result marked as partial (``tests/test_grid.py::test_time_limit_gives_partial_result_and_
progress``, ``tests/test_grid_cli.py::test_time_limit_marks_partial``), Ctrl-C during a
grid returning the best so far (``tests/test_grid.py::test_keyboard_interrupt_returns_
best_so_far``, ``tests/test_grid_cli.py::test_ctrl_c_prints_best_so_far``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search import param_sweep
from search.cli import main
from search.cli.report import dumps
from search.grid import grid
from search.scenario import scenario
from search.space import make_space

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "db" / "models" / "tiny-moe.toml")
HUGE_AXES = {  # 10^20 × 37 splits > 2^63 candidates
    "tiers.nvlink.hop_latency_s": "1e-8:1e-5:100000:log",
    "tiers.nvlink.overhead_s": "0:1e-5:100000",
    "tiers.nvlink.bw_bytes_per_s": "1e11:1e12:100000",
    "chip.hbm_bw_bytes_per_s": "1e12:1e13:100000",
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def huge():
    sp = make_space(TINY, "hgx-h100-8", axes=HUGE_AXES)
    assert sp.size > 2**63
    return sp


def test_grid_beyond_int64_keeps_memory_flat_and_stops_on_ctrl_c(huge):
    """More than 2^63 candidates: swept in int32 digits chunk by chunk; resident memory
    does not grow while millions of candidates go by; Ctrl-C (here raised from the
    progress callback after 16 host calls) returns the best so far, marked partial."""
    rss = []

    def progress(done, total):
        assert total == huge.size
        rss.append((done, _rss_mib()))
        if len(rss) >= 16:
            raise KeyboardInterrupt

    res = grid(huge, top=5, pareto=True, progress=progress)
    assert res.partial and res.info["interrupted"]
    assert res.total == huge.size and 0 < res.evaluated < 2**31
    assert len(res.top) == 5 and all(r["index"] < res.evaluated for r in res.top)
    warm = rss[3:]  # after compilation and the first adaptive calls
    assert warm[-1][0] >= 3 * warm[0][0], rss  # millions of candidates swept meanwhile
    growth = max(m for _, m in warm) - min(m for _, m in warm)
    assert growth < 64, rss


def test_grid_beyond_int64_cli_json_is_partial(capsys, huge):
    """The CLI reports the exact candidate count (a JSON integer beyond int64) and marks
    the time-limited result partial."""
    argv = ["grid", "--model", TINY, "--system", "hgx-h100-8", "--time-limit", "0", "--json"]
    argv += ["--pareto"]  # the plan of the test above: its compiled sweep is reused
    for k, v in HUGE_AXES.items():
        argv += ["--axis", f"{k}={v}"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == huge.size and doc["partial"] is True
    assert 0 < doc["evaluated"] < doc["total"] and doc["top"]


def test_sweep_points_in_bounded_calls_give_the_same_answer(monkeypatch):
    """``sweep_param`` evaluates points in calls of at most ``CALL_CANDIDATES`` (point,
    split) pairs (the last one padded): the answer is identical to one call."""
    sc = scenario("llama-3.1-8b", "hgx-h100-8", context=4096)
    values = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
    ref = param_sweep.sweep_param(sc, "latency_scale", values)
    monkeypatch.setattr(param_sweep, "CALL_CANDIDATES", 2 * ref["splits"])  # 2 points a call
    assert dumps(param_sweep.sweep_param(sc, "latency_scale", values)) == dumps(ref)


def _sweep_maxrss_mib(n: int) -> float:
    code = (
        "import resource, sys; from search.cli import main; "
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(sys.argv[1:])\n"
        "print('RSS', rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    argv = ["sweep", "--model", "kimi-k2.5", "--system", "reticle-die", "--chips", "4096"]
    argv += ["--context", "4096", "--param", "latency_scale", "--range", f"0.1:10:{n}", "--json"]
    env = dict(os.environ, TPSOPT_CACHE="off")
    p = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RSS")]
    assert p.returncode == 0 and line, p.stderr[-2000:]
    _, rc, kib = line[-1].split()
    assert rc == "0"
    return int(kib) / 1024


@pytest.mark.slow
def test_sweep_memory_does_not_grow_with_points():
    """100x more sweep points over Kimi-K2.5's 4389 splits on 4096 dies: peak memory
    stays within 1.5x (it grew ~4x per 10x points before the points were chunked)."""
    small, large = _sweep_maxrss_mib(20), _sweep_maxrss_mib(2000)
    assert large < 1.5 * small, (small, large)


@pytest.mark.parametrize(
    "argv, target",
    [
        (["optimize", "--model", "llama-3.1-8b", "--system", "hgx-h100-8"], "exhaustive_best"),
        (
            ["sweep", "--model", "llama-3.1-8b", "--system", "hgx-h100-8"]
            + ["--param", "latency_scale", "--range", "0.5:2:3", "--plot", "{out}/p.png"],
            "sweep_param",
        ),
    ],
    ids=["optimize", "sweep"],
)
def test_ctrl_c_ends_cleanly(capsys, monkeypatch, tmp_path, argv, target):
    """Ctrl-C in ``optimize`` (one vectorised evaluation of every split: there is no
    partial answer to give) or ``sweep`` ends with exit status 130 and one line, writes
    no file, and prints no traceback."""
    import search.optimize
    import search.param_sweep

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    for mod in (search.optimize, search.param_sweep):
        if hasattr(mod, target):
            monkeypatch.setattr(mod, target, interrupted)
    rc = main([a.format(out=tmp_path) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 130
    assert err.strip().splitlines() == [f"tpsopt {argv[0]}: interrupted"]
    assert list(tmp_path.iterdir()) == []
