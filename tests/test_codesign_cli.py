"""``tpsopt codesign``: bad input is one line and exit 2; a small --json run."""

from __future__ import annotations

import json

import pytest

from search.cli import main

L8 = ["codesign", "--model", "llama-3.1-8b", "--system", "hgx-h100-8"]
LAT = "tiers.nvlink.hop_latency_s"


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ([], "--knob: give at least one"),
        (["--knob", "chip.hbm_bw_bytes_per_s"], "expected PATH=LO:HI"),
        (["--knob", "chip.nope=1:2"], "no chip field 'nope'"),
        (["--knob", "tiers.warp.hop_latency_s=0.1:1"], "no tier 'warp'"),
        (["--knob", "tiers.*.hop_latency_s=0.1:1"], "name one tier"),
        (["--knob", f"{LAT}=1:0.1"], "LO must be ≤ HI"),
        (["--knob", f"{LAT}=0:1"], "out of range"),
        (["--knob", f"{LAT}=0.1:1:1"], "out of range"),
        (["--knob", f"{LAT}=0.1:1:2.5"], "must be an integer"),
        (["--knob", f"{LAT}=a:1"], "not a number"),
        (["--knob", f"{LAT}=0.1:1", "--knob", f"{LAT}=0.2:1"], "at most once"),
        (["--knob", f"{LAT}=0.1:1", "--budget", "0.5"], "--budget"),
        (["--knob", f"{LAT}=0.1:1", "--starts", "0"], "--starts"),
        (["--knob", f"{LAT}=0.1:1", "--steps", "x"], "--steps"),
    ],
)
def test_bad_input_is_one_line_exit_2(extra, fragment, capsys):
    assert main(L8 + extra) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tpsopt codesign: error:")
    assert fragment in lines[0]


def test_json_run_respects_budget_and_reports_binding(capsys):
    args = ["--knob", f"{LAT}=0.1:1:8", "--knob", "chip.hbm_bw_bytes_per_s=1:4:8"]
    args += ["--budget", "4", "--starts", "4", "--steps", "20", "--json"]
    assert main(L8 + args) == 0
    d = json.loads(capsys.readouterr().out)
    factors = {k["path"]: k["factor"] for k in d["knobs"]}
    # improvement product: lower latency and higher bandwidth both count
    gain = max(1.0, 1 / factors[LAT]) * max(1.0, factors["chip.hbm_bw_bytes_per_s"])
    assert gain <= 4 * (1 + 1e-9)
    assert d["score"] == pytest.approx(d["result"]["utps"])
    assert d["parallelism"]["attn_tp"] * d["parallelism"]["pp"] <= 8
    assert d["binding"] and all(isinstance(b, str) for b in d["binding"])
    assert d["evaluations"] > 0


def test_help_states_the_library_search_defaults(capsys):
    """``--starts``/``--steps`` default to :class:`search.gradient.SearchSettings`; the
    help (which must not import JAX) names those numbers."""
    from search.gradient import SearchSettings

    with pytest.raises(SystemExit):
        main(["codesign", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"library's, {SearchSettings.n_starts})" in text
    assert f"library's, {SearchSettings.steps})" in text
