"""``tpsopt validate --level kernels|e2e``: JSON keys, finite numbers, figures as stored."""

import contextlib
import io
import json
import math
import tomllib

import pytest

from hardware_db.e2e_calibration import E2E_TOML
from hardware_db.loader import DATA_ROOT
from search.cli import main

KERNEL_TOML = DATA_ROOT / "kernel_calibration.toml"


def _json(argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["validate", *argv, "--json"]) == 0
    return json.loads(buf.getvalue())


def _finite(x):
    return isinstance(x, int | float) and math.isfinite(x)


def test_kernels_level():
    rep = _json(["--level", "kernels"])
    assert rep["level"] == "kernels" and rep["source"]["refit"] is False
    assert {"source", "groups", "by_hardware_class", "by_class", "overall"} <= set(rep)
    doc = tomllib.loads(KERNEL_TOML.read_text(encoding="utf-8"))
    stored = {e["name"]: e for e in doc["kernel"] + doc["collective"]}
    assert len(rep["groups"]) == len(stored)
    for g in rep["groups"]:
        e = stored[g["name"]]
        for k in ("n_points", "n_holdout", "n_holdout_decode", "mape_in_pct",
                  "mape_holdout_pct", "sol_violations"):  # fmt: skip
            assert g[k] == e[k], (g["name"], k)
    keys = ("groups", "n_points", "n_holdout", "holdout_median_pct", "holdout_pooled_pct",
            "holdout_decode_pooled_pct", "in_pooled_pct", "sol_violations")  # fmt: skip
    for s in [*rep["by_hardware_class"], *rep["by_class"], rep["overall"]]:
        assert all(_finite(s[k]) for k in keys), s
    assert {s["system"] for s in rep["by_hardware_class"]} >= {"h100_sxm", "b200_sxm"}
    assert rep["overall"]["n_points"] == sum(e["n_points"] for e in stored.values())
    # pooled = point-weighted: the overall held-out MAPE lies within the groups' range
    o = rep["overall"]
    assert o["holdout_min_pct"] <= o["holdout_pooled_pct"] <= o["holdout_max_pct"]
    assert o["n_holdout"] >= sum(e["n_holdout_decode"] for e in stored.values()) > 0


@pytest.fixture(scope="module")
def e2e():
    return _json(["--level", "e2e"])


def test_e2e_level(e2e):
    rep = e2e
    for k in ("source", "stored", "rows", "mape_in_pct", "mape_lomo_pct", "by_stack",
              "by_model", "sol_violations", "calibrated_below_sol", "interval", "worst",
              "stale"):  # fmt: skip
        assert k in rep, k
    doc = tomllib.loads(E2E_TOML.read_text(encoding="utf-8"))
    assert rep["rows"] == doc["meta"]["rows"] == rep["stored"]["rows"]
    assert rep["mape_lomo_pct"] == doc["meta"]["mape_lomo_pct"]
    assert rep["stored"]["mape_in_pct"] == doc["meta"]["mape_in_pct"]
    iv = rep["interval"]
    assert iv["log_q"] == [doc["interval"]["log_q_low"], doc["interval"]["log_q_high"]]
    assert iv["coverage_lomo"] == doc["interval"]["coverage_lomo"]
    assert _finite(rep["mape_in_pct"]) and 0 <= iv["coverage_in"] <= 1
    for table in ("by_stack", "by_model"):
        assert sum(s["rows"] for s in rep[table].values()) == rep["rows"]
        assert all(_finite(s["mape_in_pct"]) for s in rep[table].values())
    assert {"h100_sxm/trtllm", "b200_sxm/vllm"} <= set(rep["by_stack"])
    assert len(rep["worst"]) == 10
    assert all(_finite(w["measured_ms"]) and _finite(w["predicted_ms"]) for w in rep["worst"])
    # staleness is reported exactly when the stored offsets miss the stored in-sample MAPE
    assert bool(rep["stale"]) == (abs(rep["mape_in_pct"] - doc["meta"]["mape_in_pct"]) > 0.5)


def test_bad_level(capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate", "--level", "bogus"])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "invalid choice" in err and err.count("\n") == 1
    assert main(["validate", "--level", "kernels", "--refit"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    for argv in (["--set", "published"], ["--level", "e2e", "--set", "published", "--refit"]):
        assert main(["validate", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and ("--set" in err or "--refit" in err)


def test_published_set_out_of_sample(tmp_path):
    """``--level e2e --set published`` on three rows of the packaged published set: one per
    mode kind (kernel-level, transferred, six-scalar), errors consistent with the times,
    SOL below every measured row."""
    src = (DATA_ROOT / "measurements.csv").read_text(encoding="utf-8").splitlines(True)
    import hardware_db as db
    from hardware_db.measurements import load_measurements
    from search.scenario import calibrated_mode

    picked, kinds = [], set()
    for m in load_measurements(usable_only=True):
        kind = calibrated_mode(m.system, m.software, db.load_precision(m.precision))[1]
        kind = kind.split(":")[0]
        if kind not in kinds:
            kinds.add(kind)
            picked += [line for line in src if line.startswith(f"{m.id},")]
    path = tmp_path / "m.csv"
    path.write_text(src[0] + "".join(picked), encoding="utf-8")
    rep = _json(["--level", "e2e", "--set", "published", "--measurements", str(path)])
    assert rep["set"] == "published" and len(rep["rows"]) == len(picked) >= 2
    for r in rep["rows"]:
        assert r["err_pct"] == pytest.approx(
            (r["calibrated_s"] / r["measured_s"] - 1) * 100, abs=0.01
        )
        assert r["sol_s"] <= r["calibrated_s"] and r["sol_lower_bound"]
    assert sum(s["rows"] for s in rep["by_mode_kind"].values()) == len(picked)
    # per primary source: the kernel-level and transferred rows only, each row once
    kernel_rows = [r for r in rep["rows"] if r["kind"] != "six_scalar_in_sample"]
    assert sum(s["rows"] for s in rep["by_source"].values()) == len(kernel_rows)
    for name, s in rep["by_source"].items():
        mine = [r for r in kernel_rows if r["source"] == name]
        assert s["families"] == sorted({r["family"] for r in mine})
        assert s["mape_pct"] == pytest.approx(
            sum(abs(r["err_pct"]) for r in mine) / len(mine), abs=0.02
        )


def test_source_label():
    """GitHub URLs name their repository, other URLs their host."""
    from search.fidelity.levels import source_label

    gh = "https://github.com/argonne-lcf/LLM-Inference-Bench/blob/main/Plots/All_results.csv"
    assert source_label(gh) == "argonne-lcf/LLM-Inference-Bench"
    assert source_label("https://github.com/mlc-ai/llm-perf-bench") == "mlc-ai/llm-perf-bench"
    assert source_label(" https://blogs.oracle.com/cloud-infrastructure/x ") == "blogs.oracle.com"
    assert source_label("https://github.com/NVIDIA") == "github.com"
