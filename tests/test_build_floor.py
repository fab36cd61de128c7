"""The one-user floor of a shared software build (:mod:`search.fidelity.build_floor`): closed
form, the held-out family never sets its own floor, and the floor in the LOFO fit."""

import numpy as np
import pytest
from test_extra_set import synthetic_families

from hardware_db.extra_e2e import BUILDS, load_extra
from search.fidelity.build_floor import floor_tpot_s, one_user_floors, transferred_floors


def test_floor_tpot_closed_form():
    # 2 waves of (3 ms of weights + 32 layers × 0.25 ms) + 1 ms of prefill = 23 ms
    assert floor_tpot_s(3e-3, 32, 0.25e-3, 2, 1e-3) == pytest.approx(23e-3)
    got = floor_tpot_s(np.array([1e-3, 2e-3]), np.array([32, 80]), 1e-4, 1, 0.0)
    np.testing.assert_allclose(got, [1e-3 + 32e-4, 2e-3 + 80e-4])


def _subset():
    """Two one-user rows of each build family: MI250 (chip only, not evaluated) and MI300X,
    plus one H100 vLLM row (no shared build)."""
    rows = load_extra()
    out, count = [], {}
    for r in rows:
        if r.concurrency == 1 and r.model == "llama-2-7b" and r.isl >= 256:
            if r.build and count.get(r.family, 0) < 2:
                out.append(r)
                count[r.family] = count.get(r.family, 0) + 1
            elif r.family == "h100/vllm" and "h100/vllm" not in count:
                out.append(r)
                count["h100/vllm"] = 1
    assert count == {"mi250/vllm": 2, "mi300x/vllm": 2, "h100/vllm": 1}
    return out


def test_one_user_floor_closed_form():
    """f = (TPOT − W_chip/BW)/L: Llama-2-7B FP16 on one MI250 GCD, W from the parameter
    count (6.74e9 × 2 bytes, embeddings and LM head included) at 1.6 TB/s, 32 layers."""
    rows = _subset()
    assert {b for b, _, _ in one_user_floors(rows)} == {"vllm-0.6.1-rocm"}  # not H100's
    r = next(r for r in rows if r.hardware == "mi250" and r.tp == 1)
    [(build, fam, f)] = one_user_floors([r])
    assert (build, fam, r.usable) == ("vllm-0.6.1-rocm", "mi250/vllm", False)
    w_s = 6.738e9 * 2 / 1.6e12
    assert f == pytest.approx((r.tpot_s - w_s) / 32, rel=5e-3)


def test_transferred_floor_excludes_own_family():
    """A family's floor is the median of the other build family's rows: scaling its own
    rows' TPOT leaves it unchanged and moves the other family's floor."""
    rows = _subset()
    fams = ["mi250/vllm", "mi300x/vllm", "h100/vllm"]
    base = transferred_floors(rows, fams)
    assert base["h100/vllm"] is None
    mi250 = [f for b, fam, f in one_user_floors(rows) if fam == "mi250/vllm"]
    assert base["mi300x/vllm"] == pytest.approx(float(np.median(mi250)))
    slow = [r._replace(tpot_s=r.tpot_s * 2) if r.family == "mi300x/vllm" else r for r in rows]
    moved = transferred_floors(slow, fams)
    assert moved["mi300x/vllm"] == base["mi300x/vllm"]
    assert moved["mi250/vllm"] > base["mi250/vllm"]


def test_builds_name_two_families():
    """Each build in the table is shared by at least two families (a floor needs one other)."""
    for b in set(BUILDS.values()):
        assert sum(v == b for v in BUILDS.values()) >= 2


def test_lofo_floor_binds_only_where_above():
    """With a floor for family 'a' the LOFO prediction is max(fit, floor) on its one-user
    rows; its batch rows and the other families' predictions and fits do not change."""
    from search.fidelity.extra_set import build_floor_s, lofo

    rng, ev, fams = synthetic_families(3)
    n = len(fams)
    ev["n_layers"] = np.full(n, 32.0)
    ev["users"] = np.r_[np.ones(6), np.full(n - 6, 16.0)]
    ev["weights_one_token_s"] = 0.8 * ev["weights_s"]
    ev["meas_s"] = ev["step_s"] * rng.uniform(1.1, 1.6, n) + 2e-3
    pred, fitted = lofo(ev, fams)
    f_s = 1e-3  # 32 ms per step: binds on some rows of 'a'
    pred_f, fitted_f = lofo(ev, fams, {"a": f_s, "b": None})
    np.testing.assert_array_equal(pred_f[6:], pred[6:])
    assert fitted_f["b"] == fitted["b"] and fitted_f["a"]["build_floor_ms_per_layer"] == 1.0
    one = np.arange(n) < 6
    g = {"reserve_b": 0.0, "eta_p": fitted["a"]["eta_p"]}
    floor = build_floor_s(ev, g, f_s, one)
    w1, w, osl = (ev[k][:6] for k in ("weights_one_token_s", "weights_s", "osl"))
    pre = np.maximum(ev["compute_s"][:6] / g["eta_p"], w) / osl
    np.testing.assert_allclose(floor, w1 + 32 * f_s + pre)  # closed form
    np.testing.assert_allclose(pred_f[:6], np.maximum(pred[:6], floor))
    assert np.any(floor > pred[:6]) and np.any(floor < pred[:6])


def _published(*ids):
    from hardware_db.measurements import load_measurements

    rows = {m.id: m for m in load_measurements(usable_only=True)}
    return [rows[i] for i in ids]


ARGONNE = "argonne-lcf/LLM-Inference-Bench"


def test_published_step_floor_closed_form():
    """D37 (Llama-3.1-70B FP16, one MI300X, one user, LLM-Inference-Bench's vLLM v0.6.1
    ``Dockerfile.rocm``): floor = W_1/BW + L·f with W_1 = 70.55e9 parameters × 2 bytes at
    5.3 TB/s, L = 80 and f the median (here: mean of two) of the MI250 rows' one-user time
    per layer, (TPOT − 6.738e9 × 2 B / (tp × 1.6 TB/s)) / 32 — no prefill term (the row's
    step time has its TTFT taken out). The extra set's MI300X copies never set it."""
    from search.fidelity.build_floor import published_step_floors

    extra = _subset()
    mi250 = [r for r in extra if r.family == "mi250/vllm"]
    f_hand = float(np.mean([(r.tpot_s - 6.738e9 * 2 / (r.tp * 1.6e12)) / 32 for r in mi250]))
    [m] = _published("D37")
    assert (m.system, m.software, m.batch, m.attn_tp) == ("mi300x-8", "vllm", 1, 1)
    [(build, f, floor)] = published_step_floors([m], [ARGONNE], extra)
    assert build == "vllm-0.6.1-rocm" and f == pytest.approx(f_hand, rel=2e-4)
    # 2e-4: a prefill term (26.6 ms of weights over 128 tokens) would be 4e-3 of the floor
    assert floor == pytest.approx(70.55e9 * 2 / 5.3e12 + 80 * f_hand, rel=2e-4)
    assert m.step_time_s > floor  # a floor, below this row's measurement
    copies = [r._replace(tpot_s=r.tpot_s * 3) if r.family == "mi300x/vllm" else r for r in extra]
    assert published_step_floors([m], [ARGONNE], copies)[0] == (build, f, floor)
    slower = [r._replace(tpot_s=r.tpot_s * 2) if r.family == "mi250/vllm" else r for r in extra]
    assert published_step_floors([m], [ARGONNE], slower)[0][2] > floor


def test_published_rows_without_build_get_no_floor():
    """Only one-user rows keyed in BUILDS get a floor: not the same row at batch 4, not the
    same hardware and software from another source (dstack's 0.6.3.dev116, Oracle's
    unstated build), not another system of the same source."""
    from search.fidelity.build_floor import published_step_floors
    from search.fidelity.levels import source_label

    extra = _subset()
    d37, d61, d62, d36 = _published("D37", "D61", "D62", "D36")
    rows = [d37._replace(batch=4.0), d61, d62, d36]
    labels = [source_label(m.source) for m in rows]
    assert labels == [ARGONNE, "blogs.oracle.com", "dstackai/benchmarks", ARGONNE]
    assert published_step_floors(rows, labels, extra) == [None] * 4
    # a build without another family on other hardware gives no floor either
    only_copies = [r for r in extra if r.family != "mi250/vllm"]
    assert published_step_floors([d37], [ARGONNE], only_copies) == [None]


def test_published_report_floor(tmp_path):
    """``published_level_report`` on D40 (floored) and D61, D62 (no build): D40 is
    max(calibrated, floor) with the extra set's LOFO floor of the MI300X family (the same
    f), marked in its mode; D61 and D62 are the plain calibrated mode, unmarked."""
    from hardware_db.loader import DATA_ROOT
    from search.fidelity.levels import published_level_report
    from search.fidelity.problem import row_config
    from search.scenario import calibrated_mode
    from search.stacking import Config, evaluate

    src = (DATA_ROOT / "measurements.csv").read_text(encoding="utf-8").splitlines(True)
    keep = [line for line in src if line.split(",")[0] in ("D40", "D61", "D62")]
    path = tmp_path / "m.csv"
    path.write_text(src[0] + "".join(keep), encoding="utf-8")
    rep = published_level_report(path)
    rows = {r["id"]: r for r in rep["rows"]}
    d40 = rows["D40"]
    f_lofo = transferred_floors(load_extra(), ["mi300x/vllm"])["mi300x/vllm"]
    assert d40["mode"] == "transferred:h200_sxm/vllm+build_floor:vllm-0.6.1-rocm"
    assert d40["kind"] == "transferred"
    assert d40["build_floor_ms_per_layer"] == round(f_lofo * 1e3, 4)
    plain = d40["measured_s"] * (1 + d40["err_without_build_floor_pct"] / 100)
    assert d40["calibrated_s"] == pytest.approx(max(plain, d40["build_floor_s"]), rel=1e-4)
    assert d40["sol_s"] <= d40["measured_s"] and d40["calibrated_s"] > plain
    for m in _published("D61", "D62"):
        r = rows[m.id]
        assert r["mode"] == "transferred:h200_sxm/vllm" and "build_floor_s" not in r
        spec, prec, system, par, wl = row_config(m)
        mode = calibrated_mode(m.system, m.software, prec)[0]
        t = float(evaluate([Config(spec, prec, system, par, wl, mode)]).step_time_s[0])
        assert r["calibrated_s"] == pytest.approx(t, rel=1e-6)
    o = rep["overall"]
    assert o["kernel_level"]["rows"] == o["kernel_level_without_build_floor"]["rows"] == 3
    assert o["kernel_level"]["mape_pct"] < o["kernel_level_without_build_floor"]["mape_pct"]
