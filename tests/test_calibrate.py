"""Calibration: determinism, prior behaviour, leave-out bookkeeping, storage and lookup
(:mod:`search.fidelity`, :mod:`hardware_db.calibration`)."""

import math

import numpy as np
import pytest

from hardware_db import DbError
from hardware_db import calibration as cal
from search.errors import UserError
from search.fidelity import calibrate, leave_out, map_fit, problem
from search.scenario import scenario

# one system structure (switch tiers only) → one compilation for the whole module
SMALL = ("D35", "D46", "D47", "D48", "D55", "D49", "D27")


@pytest.fixture(scope="module")
def small():
    rows = [m for m in problem.fit_rows() if m.id in SMALL]
    pb = problem.build_problem(rows)
    assert len(pb.groups) == 1 and sorted(pb.ids) == sorted(SMALL)
    return pb


@pytest.fixture(scope="module")
def fitted(small):
    return leave_out.leave_out(small, 1.0)


def test_deterministic(small, fitted):
    again = leave_out.leave_out(small, 1.0)
    for k in ("g", "h", "s", "f"):
        np.testing.assert_array_equal(again.params[k], fitted.params[k])
    np.testing.assert_array_equal(again.row, fitted.row)
    # a problem built afresh from the same rows gives the same numbers
    pb2 = problem.build_problem([m for m in problem.fit_rows() if m.id in SMALL])
    np.testing.assert_array_equal(pb2.log_t, small.log_t)


def test_fit_reaches_the_rows(small, fitted):
    # 7 rows, 3 families: in-sample errors are small
    assert leave_out.mape(fitted.full, small.log_t) < 5.0


def test_unseen_parameter_stays_at_prior(small, fitted):
    # at batch 1 every operator is memory-bound: compute efficiency has no data
    theta = problem.row_theta(fitted.params, small)
    mu = cal.to_theta(map_fit.PRIOR_MEAN)
    i = cal.PARAMS.index("compute_efficiency")
    np.testing.assert_allclose(np.asarray(theta)[:, i], mu[i], atol=1e-3)


def test_one_row_family_stays_near_prior(small, fitted):
    """gh200/trtllm has one row: its own offsets stay within the prior, and with a strong
    prior its θ equals the trtllm software level (what an unseen family would get)."""
    f = small.fam_names.index("gh200/trtllm")
    h = small.hw_names.index("gh200")
    sd = map_fit._sd(map_fit.PRIOR_SD_LEVEL)
    assert np.all(np.abs(fitted.params["f"][f]) < 1.5 * sd)
    assert np.all(np.abs(fitted.params["h"][h]) < 1.5 * sd)
    strong = leave_out.leave_out(small, 0.01)
    s = small.sw_names.index("trtllm")
    fam_theta = strong.params["g"] + strong.params["h"][h] + strong.params["s"][s]
    fam_theta = fam_theta + strong.params["f"][f]
    level = strong.params["g"] + strong.params["s"][s]
    np.testing.assert_allclose(fam_theta, level, atol=0.05)
    # the weakly constrained fit follows its one row much more closely than the strong one
    i = small.ids.index("D49")
    assert abs(fitted.full[i] - small.log_t[i]) < abs(strong.full[i] - small.log_t[i])


def test_leave_out_masks(small):
    w = leave_out.leave_out_masks(small)
    n, nf = len(small.ids), len(small.fam_names)
    assert w.shape == (1 + n + nf, n)
    assert np.all(w[0] == 1)
    assert np.array_equal(w[1:1 + n], 1 - np.eye(n))  # fmt: skip
    for f in range(nf):
        assert np.array_equal(w[1 + n + f] == 0, small.fam == f)


def test_leave_out_ignores_the_left_out_measurement(small, fitted):
    """A row's leave-one-out and leave-family-out predictions must not move when only its
    own measurement changes; its in-sample prediction does."""
    for rid in ("D47", "D49"):
        j = small.ids.index(rid)
        log_t = small.log_t.copy()
        log_t[j] += 0.5
        moved = leave_out.leave_out(small, 1.0, log_t=log_t)
        assert math.isclose(moved.row[j], fitted.row[j], abs_tol=1e-6)
        assert math.isclose(moved.family[j], fitted.family[j], abs_tol=1e-6)
        assert moved.full[j] > fitted.full[j] + 1e-3
        same = small.fam == small.fam[j]
        np.testing.assert_allclose(moved.family[same], fitted.family[same], atol=1e-6)


def test_toml_round_trip(tmp_path, small, fitted):
    c = calibrate.summarise(small, fitted.params, {"fit_date": "2000-01-01", "prior_scale": 1.0})
    p = tmp_path / "calibration.toml"
    p.write_text(cal.to_toml(c), encoding="utf-8")
    back = cal.load_calibration(p)
    assert set(back.families) == {"a100/fastertransformer", "gh200/trtllm", "h100-sxm/trtllm"}
    for name, vals in c.families.items():
        for k in cal.PARAMS:
            assert math.isclose(back.families[name][k], vals[k], rel_tol=1e-5)
    assert back.rows["families.gh200/trtllm"] == ("D49",)
    assert back.meta["prior_scale"] == 1.0


def test_bad_calibration_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[default]\nmem_efficiency = 1.5\n", encoding="utf-8")
    with pytest.raises(Exception, match="mem_efficiency"):
        cal.load_calibration(p)
    with pytest.raises(Exception, match="no calibration file"):
        cal.load_calibration(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "system,software,mode",
    [
        ("hgx-b200-8", "trtllm", "calibrated:b200/trtllm"),
        ("hgx-b200-8", "TensorRT-LLM", "calibrated:b200/trtllm"),
        ("hgx-h100-8", "sglang", "calibrated:h100-sxm/sglang*"),
        ("hgx-b200-8", None, "calibrated:b200/*"),
        ("gb200-nvl72", "trtllm", "calibrated:*/trtllm"),
        ("gb200-nvl72", None, "calibrated:default"),
    ],
)
def test_efficiency_for_levels(system, software, mode):
    eff, name, notes = cal.efficiency_for(system, software)
    assert name == mode and notes and notes[0]
    assert cal.EFF_FLOOR <= eff.mem_efficiency <= 1 and eff.link_efficiency == 1.0
    assert 0 < eff.kernel_overhead_s < 1e-3 and 0 < eff.collective_overhead_s < 1e-3


def test_efficiency_for_unknown_software():
    with pytest.raises(DbError, match="did you mean vllm"):
        cal.efficiency_for("hgx-h100-8", "vlm")
    with pytest.raises(UserError, match="^software: .*did you mean vllm"):
        scenario("llama-3.1-70b", "hgx-h100-8", mode="calibrated", software="vlm")


def test_scenario_calibrated_mode():
    """A stack of the kernel-level fit gets the kernel-level mode (tests/test_e2e_calibration
    .py); other software keeps the six scalars of its family."""
    sc = scenario("llama-3.1-70b", "hgx-h100-8", mode="calibrated", software="trtllm")
    assert sc.mode_name == "kernel:h100_sxm/trtllm"
    sc = scenario("llama-3.1-70b", "mi300x-8", mode="calibrated", software="mlc")
    assert sc.mode_name.startswith("calibrated:") and "six-scalar" in sc.notes[0]
    assert 0.2 < float(sc.mode.mem_efficiency) <= 1
