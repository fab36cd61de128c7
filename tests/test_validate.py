"""``tpsopt validate``: JSON report, plot file, SOL lower bound, collective checks, bad flags."""

import json

import pytest

from search.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("validate")
    plot = d / "scatter.png"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["validate", "--json", "--plot", str(plot)])
    assert rc == 0
    return json.loads(buf.getvalue()), plot


def test_json_report(report):
    rep, _ = report
    assert rep["grades"] == ["A", "B"]
    assert rep["calibration"]["stale"] == "", rep["calibration"]["stale"]
    ids = [r["id"] for r in rep["rows"]]
    assert len(ids) == rep["calibration"]["rows_fitted"] >= 50
    for r in rep["rows"]:
        for k in ("measured_s", "sol_s", "calibrated_s", "loo_row_s", "loo_family_s"):
            assert 0 < r[k] < 1, (r["id"], k)
        assert abs(r["err_in_pct"]) <= abs(r["err_sol_pct"]) + 60
    fams = {f["name"] for f in rep["families"]}
    assert {"b200/trtllm", "h100-sxm/trtllm", "mi300x/vllm"} <= fams
    ov = rep["overall"]
    assert ov["selected"]["n"] == len(ids) and ov["grade_A"]["n"] < len(ids)
    # calibration is worth it: every leave-out score beats SOL
    for k in ("in_sample_mape", "loo_row_mape", "loo_family_mape"):
        assert ov["selected"][k] < ov["selected"]["sol_mape"]


def test_sol_is_a_lower_bound(report):
    rep, _ = report
    assert rep["sol_exceptions"] == []
    assert all(r["sol_lower_bound"] for r in rep["rows"])


def test_collective_checks(report):
    rep, _ = report
    coll = {c["id"]: c for c in rep["collectives"]}
    assert {"C01a", "C04b", "C07a", "C09-512-tp8", "C11a", "C13a"} <= set(coll)
    for c in coll.values():
        assert c["sol_s"] <= c["measured_s"], c["id"]  # SOL below every measurement
        assert c["calibrated_s"] > c["sol_s"]


def test_plot_written(report):
    _, plot = report
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_bad_flags(capsys, tmp_path):
    for argv, frag in (
        (["--grade", "A,D"], "'D' is not a grade"),
        (["--plot", str(tmp_path / "x.jpg")], "unsupported format"),
    ):
        assert main(["validate", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and frag in err and err.count("\n") == 1
    assert not (tmp_path / "x.jpg").exists()
