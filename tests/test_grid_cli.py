"""``tpsopt grid``: runs, JSON, CSV, plots, partial results, and bad input (exit 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import grid_cmd, main

TINY = "tests/data/db/models/tiny-moe.toml"
BASE = ["grid", "--model", TINY, "--system", "hgx-h100-8", "--batch", "1,2,4"]
ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *args):
    code = main([*BASE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_and_explains_the_winner(capsys):
    code, out, err = _run(capsys, "--top", "3", "--pareto")
    assert code == 0, err
    assert "Best configurations" in out
    assert "Why: time per step of the best" in out and "weight read" in out
    assert "feasible" in out and "infeasible" in out
    assert "Pareto front: UTPS vs chips" in out


def test_json_is_parseable(capsys):
    code, out, _ = _run(capsys, "--top", "3", "--json", "--pareto")
    assert code == 0
    doc = json.loads(out)
    assert doc["partial"] is False and doc["evaluated"] == doc["total"] > 0
    assert len(doc["top"]) == 3 and doc["top"][0]["rank"] == 1
    assert set(doc["top"][0]["parallelism"]) == {"attn_tp", "attn_dp", "kvp", "ep", "moe_tp", "pp"}
    assert doc["counts"]["feasible"] + doc["counts"]["infeasible"] == doc["evaluated"]
    assert doc["pareto"]["utps_vs_chips"]
    assert "elapsed_s" not in doc  # deterministic document
    code, out2, _ = _run(capsys, "--top", "3", "--json", "--pareto")
    assert out2 == out


def test_csv_and_plots_written(capsys, tmp_path):
    out_csv, png, svg = tmp_path / "r.csv", tmp_path / "p.png", tmp_path / "p.svg"
    code, _, err = _run(capsys, "--top", "4", "--csv", str(out_csv), "--plot", str(png))
    assert code == 0, err
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["set"] for r in rows[:4]] == ["top"] * 4
    assert {"attn_tp", "utps", "breakdown_weight_read_s", "workload.batch"} <= set(rows[0])
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    code, _, _ = _run(capsys, "--top", "4", "--plot", str(svg))
    assert code == 0 and b"<svg" in svg.read_bytes()[:500]
    assert not list(tmp_path.glob(".*.tmp"))


def test_time_limit_marks_partial(capsys):
    code, out, _ = _run(
        capsys, "--axis", "tiers.nvlink.hop_latency_s=1e-8:1e-5:3000:log", "--chunk", "64",
        "--time-limit", "0", "--json",
    )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["partial"] is True and 0 < doc["evaluated"] < doc["total"]
    code, out, _ = _run(
        capsys, "--axis", "tiers.nvlink.hop_latency_s=1e-8:1e-5:3000:log", "--chunk", "64",
        "--time-limit", "0",
    )  # fmt: skip
    assert "PARTIAL" in out and "Best configurations" in out


def test_ctrl_c_prints_best_so_far(capsys, monkeypatch):
    def interrupt(self, done, total):
        raise KeyboardInterrupt

    monkeypatch.setattr(grid_cmd._Progress, "__call__", interrupt)
    code, out, _ = _run(
        capsys, "--axis", "tiers.nvlink.hop_latency_s=1e-8:1e-5:3000:log", "--chunk", "64"
    )
    assert code == 130
    assert "interrupted" in out and "Best configurations" in out and "PARTIAL" in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--axis", "tiers.nvlnk.hop_latency_s=1e-7"], "did you mean"),
        (["--axis", "batch="], "empty"),
        (["--axis", "workload.context_tokens=abc"], "not a number"),
        (["--axis", "tp=3"], "zero valid splits"),
        (["--axis", "noequals"], "NAME=VALUES"),
        (["--chips-max", "0"], "--chips-max"),
        (["--chips-max", "many"], "--chips-max"),
        (["--top", "0"], "--top"),
        (["--chunk", "x"], "--chunk"),
        (["--time-limit", "-1"], "--time-limit"),
        (["--objective", "speed"], "--objective"),
        (["--plot", "out.txt"], "--plot"),
        (["--csv", "/nonexistent-dir/x.csv"], "does not exist"),
        (["--batch", "1,,2"], "empty"),
        (["--axis", "chip.hbm_bw_bytes_per_s=-1"], "out of range"),
        (["--layout", "medha"], "--layout 'medha': must be one of helix, shared, any"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, tmp_path, args, words):
    out_csv = tmp_path / "never.csv"
    code = main([*BASE, *args, "--csv", str(out_csv)] if "--csv" not in args else [*BASE, *args])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert words in lines[0]
    assert not out_csv.exists() and not list(tmp_path.iterdir())


def test_layout_shared_json(capsys):
    """--layout shared: every reported split has the FFN on the attention layout."""
    code, out, err = _run(capsys, "--layout", "shared", "--top", "50", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["space"]["layout"] == "shared"
    pars = [r["parallelism"] for r in doc["top"]]
    assert any(p["kvp"] > 1 for p in pars)
    for p in pars:
        ffn = p["ep"] * p["moe_tp"]
        assert ffn == p["attn_tp"] * p["attn_dp"] or p["kvp"] == 1, p


def test_unbounded_system_needs_chips_max(capsys):
    code = main(["grid", "--model", TINY, "--system", "reticle-die"])
    _, err = capsys.readouterr()
    assert code == 2 and "--chips-max" in err


def test_console_script_bad_input_subprocess():
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from search.cli import main; sys.exit(main())"]
        + ["grid", "--axis", "model.n_expert=8"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "model.n_experts" in p.stderr


def test_kimi_on_gb200_finds_best_split(capsys):
    code = main(["grid", "--model", "kimi-k2.5", "--system", "gb200-nvl72", "--top", "3", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    best = doc["top"][0]
    assert best["result"]["fits"] and best["result"]["chips"] <= 72
    assert best["result"]["utps"] >= doc["top"][1]["result"]["utps"]
    assert sum(best["result"]["breakdown_s"].values()) == pytest.approx(
        best["result"]["step_time_s"], rel=1e-9
    )
